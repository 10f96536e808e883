//! SMBIOS credentials: whatever the name and contents, each `-smbios` value parses back
//! (the QEMU way) into type 11 with exactly the credential's name and bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bcvk::credentials::{smbios_args, Credential};
use proptest::prelude::*;

use crate::{assert_one_line, cases, commas_all_doubled, qemu_opts};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z.,:@_-]{1,40}",
        1 => ",{1,5}",
        1 => any::<String>(),
        1 => "\\PC{1,300}",
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn smbios_values_carry_exactly_the_credential(
        creds in prop::collection::vec((name(), prop::collection::vec(any::<u8>(), 0..300)), 0..6),
    ) {
        let creds: Vec<Credential> = creds
            .into_iter()
            .filter_map(|(name, value)| match Credential::new(&name, value) {
                Ok(cred) => Some(cred),
                Err(err) => {
                    assert_one_line(&err.to_string());
                    None
                }
            })
            .collect();
        let args = smbios_args(&creds);
        prop_assert_eq!(args.len(), creds.len());
        for (arg, cred) in args.iter().zip(&creds) {
            let value = arg.strip_prefix("type=11,value=").unwrap();
            prop_assert!(commas_all_doubled(value.as_bytes()), "{}", arg);
            let opts = qemu_opts(arg.as_bytes());
            prop_assert_eq!(opts.len(), 2, "{}", arg);
            prop_assert_eq!(&opts[0], &(b"type".to_vec(), b"11".to_vec()));
            prop_assert_eq!(&opts[1].0, &b"value".to_vec());
            let oem = String::from_utf8(opts[1].1.clone()).unwrap();
            let rest = oem.strip_prefix("io.systemd.credential.binary:").unwrap();
            // systemd splits at the first '='; names cannot hold one.
            let (name, b64) = rest.split_once('=').unwrap();
            prop_assert_eq!(name, cred.name.as_str());
            prop_assert_eq!(BASE64.decode(b64).unwrap(), cred.value.clone());
        }
    }
}
