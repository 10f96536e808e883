//! Option value parsers: total on any string, exact on the values they document, and
//! their errors fit on one line and name the flag once told it.

use std::path::{Component, Path};

use bcvk::config::{
    parse_bind, parse_hostname, parse_instance_type, parse_karg, parse_size_bytes, parse_size_mib,
    BindTarget, ConfigError, DiskFileSpec, PortSpec, SerialOutSpec,
};
use proptest::prelude::*;

use crate::{assert_one_line, cases};

/// 16 TiB, the documented maximum, in MiB.
const MAX_MIB: u64 = 16 << 20;

/// Strings that look like option values, or anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[0-9a-zA-Z .:/_,=\"-]{0,24}",
        1 => "[0-9]{0,25}(\\.[0-9]{0,20})? ?[kKmMgGtTbBiI]{0,3}",
        1 => "/[a-z/.]{0,12}(:[a-z/.]{0,12}){0,3}",
        1 => "[ -~\n\t\r\u{0}\u{85}\u{2028}]{0,40}",
        1 => (any::<char>(), 100..3000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn check_err(err: ConfigError) {
    assert_one_line(&err.to_string());
    let flagged = err.for_flag("--some-flag").to_string();
    assert_one_line(&flagged);
    assert!(flagged.contains(" for --some-flag:"), "{flagged}");
}

fn check<T>(result: Result<T, ConfigError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            check_err(err);
            None
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn parsers_are_total_and_errors_one_line(s in value(), readonly in any::<bool>()) {
        if let Some(mib) = check(parse_size_mib(&s)) {
            prop_assert!((1..=MAX_MIB).contains(&mib), "{s:?} -> {mib}");
        }
        if let Some(bytes) = check(parse_size_bytes(&s)) {
            prop_assert!((1..=MAX_MIB << 20).contains(&bytes), "{s:?} -> {bytes}");
        }
        check(parse_instance_type(&s));
        if let Some(port) = check(s.parse::<PortSpec>()) {
            prop_assert!(port.host_port != 0 && port.guest_port != 0);
        }
        if let Some(bind) = check(parse_bind(&s, readonly)) {
            prop_assert_eq!(bind.readonly, readonly);
            prop_assert!(bind.source.is_absolute());
            match bind.target {
                BindTarget::Named(name) => prop_assert!(
                    (1..=30).contains(&name.len())
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                    "{:?}", name
                ),
                BindTarget::Path(path) => prop_assert!(
                    path.is_absolute()
                        && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
                        && path != Path::new("/"),
                    "{:?}", path
                ),
            }
        }
        if let Some(disk) = check(s.parse::<DiskFileSpec>()) {
            prop_assert!(
                (1..=20).contains(&disk.name.len())
                    && disk.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)),
                "{:?}", disk.name
            );
        }
        if let Some(serial) = check(s.parse::<SerialOutSpec>()) {
            prop_assert!(serial.file.is_absolute());
            prop_assert!(!serial.name.is_empty() && serial.name.len() <= 64);
        }
        if let Some(karg) = check(parse_karg(&s)) {
            prop_assert_eq!(&karg, &s);
            prop_assert!(!karg.chars().any(char::is_control));
        }
        if let Some(host) = check(parse_hostname(&s)) {
            prop_assert!(host.len() <= 64);
            prop_assert!(host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        }
    }

    #[test]
    fn sizes_in_mib_and_gib_are_exact(
        n in 1..=MAX_MIB,
        g in 1..=(MAX_MIB >> 10),
        unit in prop::sample::select(&["M", "m", "MB", "MiB", "mib", " M", ""][..]),
        gunit in prop::sample::select(&["G", "g", "GB", "GiB", " gib"][..]),
    ) {
        prop_assert_eq!(parse_size_mib(&format!("{n}{unit}")).unwrap(), n);
        prop_assert_eq!(parse_size_bytes(&format!("{n}{unit}")).unwrap(), n << 20);
        prop_assert_eq!(parse_size_mib(&format!("{g}{gunit}")).unwrap(), g * 1024);
        prop_assert_eq!(parse_size_mib(&format!(" {g}G ")).unwrap(), g * 1024);
    }

    #[test]
    fn sizes_out_of_range_are_refused(n in (MAX_MIB + 1)..u64::MAX / 2) {
        for s in [format!("{n}M"), format!("{n}"), format!("-{n}M"), format!("{}G", n)] {
            check_err(parse_size_mib(&s).unwrap_err());
        }
    }

    #[test]
    fn fractional_sizes_round_up(int in 0..1000u64, frac in 1..1000u64) {
        // "I.FFFG" is never less than asked for, and less than one MiB more.
        let s = format!("{int}.{frac:03}G");
        let mib = parse_size_mib(&s).unwrap();
        let exact = (int * 1000 + frac) as f64 * 1024.0 / 1000.0;
        prop_assert!(mib as f64 >= exact && (mib as f64) < exact + 1.0, "{s} -> {mib}");
    }

    #[test]
    fn port_specs_round_trip(host in 1..=65535u16, guest in 1..=65535u16) {
        let spec = PortSpec { host_port: host, guest_port: guest };
        let shown = spec.to_string();
        prop_assert_eq!(shown.parse::<PortSpec>().unwrap(), spec.clone());
        prop_assert_eq!(format!("{host}").parse::<PortSpec>().unwrap(),
            PortSpec { host_port: host, guest_port: host });
    }

    #[test]
    fn parsed_port_specs_round_trip(s in "[0-9+ :-]{0,12}") {
        if let Some(spec) = check(s.parse::<PortSpec>()) {
            prop_assert_eq!(spec.to_string().parse::<PortSpec>().unwrap(), spec);
        }
    }

    #[test]
    fn ports_out_of_range_are_refused(port in prop_oneof![Just(0u32), 65536..100_000u32]) {
        check_err(format!("{port}").parse::<PortSpec>().unwrap_err());
        check_err(format!("80:{port}").parse::<PortSpec>().unwrap_err());
        check_err(format!("{port}:80").parse::<PortSpec>().unwrap_err());
    }
}
