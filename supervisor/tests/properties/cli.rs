//! The command line and the pure steps that turn it into a plan: any argv, any option value
//! (sizes, timeouts, ports, paths, names, image references) either parses or is refused in
//! one line as a usage error (64), or a "not found" (66) by the plan; nothing panics,
//! nothing is an internal error.

use std::ffi::OsString;

use bcvk::cli::{with_default_subcommand, Cli, Command, RunArgs};
use bcvk::exit::{self, Exit};
use bcvk::guestfs::{self, GuestConfig};
use bcvk::plan::{self, HostCaps, HostFacts};
use bcvk::run::{RunError, NET_PROBE_PORT, SSH_PORT};
use bcvk::store::Store;
use bcvk::usage::{self, Refusal};
use clap::{CommandFactory, Parser};
use proptest::prelude::*;

use crate::cases;

/// Every spelling `bcvk run` takes, read from its clap definition (so new options are fed
/// too), and those of the other subcommands.
fn spellings() -> Vec<String> {
    let mut out = vec![
        "--".to_string(),
        "run".into(),
        "ssh".into(),
        "status".into(),
    ];
    for sub in Cli::command().get_subcommands() {
        for arg in sub.get_arguments() {
            if let Some(l) = arg.get_long() {
                out.push(format!("--{l}"));
            }
            if let Some(s) = arg.get_short() {
                out.push(format!("-{s}"));
            }
        }
    }
    out.push("--log-level".into());
    out
}

/// Values of the kinds the options take, at their edges and beyond.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        2 => "[0-9]{1,30}",
        1 => Just(u64::MAX.to_string()),
        1 => Just((u64::MAX / 1000).to_string()),
        1 => "-?[0-9]{0,6}[kKmMgGtT]?",
        1 => "[0-9]{0,6}:[0-9]{0,6}",
        1 => "/[a-z/.]{0,12}(:[a-z/.]{0,12}){0,3}",
        1 => "[a-z0-9./:@_-]{0,40}",
        1 => "u1\\.[a-z0-9]{0,8}",
        1 => Just("sha256:".to_string() + &"a".repeat(64)),
    ]
}

fn word(options: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(options.clone()),
        2 => value(),
        1 => (proptest::sample::select(options), value()).prop_map(|(o, v)| format!("{o}={v}")),
    ]
}

/// An empty overlay store: every reference is either malformed or not found in it.
fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = crate::tempdir();
    for d in ["overlay-images", "overlay-layers"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join("overlay-images/images.json"), "[]").unwrap();
    std::fs::write(dir.path().join("overlay-layers/layers.json"), "[]").unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// The pure planning steps of `bcvk run` on parsed options; every error they return must be
/// one the user can fix.
fn plan(args: &RunArgs, store: &Store) {
    let mut codes = Vec::new();
    if let Some(Err(e)) = args.image.as_deref().map(|i| store.resolve(i)) {
        codes.push((
            e.to_string(),
            RunError::from(bcvk::root::RootError::from(e)).exit_code(),
        ));
    }
    let host = HostFacts {
        caps: HostCaps {
            kvm_device: Err("no /dev/kvm".into()),
            cpu_virt_flags: false,
        },
        container_name: None,
        terminal: false,
        cpus: 2,
    };
    if let Err(e) = plan::make(args, &host) {
        codes.push((e.to_string(), RunError::from(e).exit_code()));
    }
    let cfg = GuestConfig {
        binds: args.bind.iter().chain(&args.ro_bind).cloned().collect(),
        bind_storage: None,
        systemd_units: args.systemd_units.clone(),
        swap: args.add_swap.is_some(),
        ports: args.ports.clone(),
        ssh_port: SSH_PORT,
        probe_port: NET_PROBE_PORT,
    };
    if let Err(e) = guestfs::plan(&cfg) {
        codes.push((e.to_string(), RunError::from(e).exit_code()));
    }
    for (msg, code) in codes {
        assert!(
            [
                Exit::Usage.code(),
                Exit::NotFound.code(),
                Exit::Unavailable.code()
            ]
            .contains(&code),
            "exit {code} for a mistake in the options: {msg}"
        );
        assert!(!msg.contains('\n'), "{msg:?}");
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// What `main` does with any argv: it runs, or clap shows help/version (exit 0), or it
    /// is refused in one `bcvk: error:` line with a code from the table; never a panic.
    #[test]
    fn any_argv_parses_or_is_a_usage_error(
        words in proptest::collection::vec(word(spellings()), 0..8),
        image_first in any::<bool>(),
        image in "[a-z0-9./:@_-]{1,30}",
        raw in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
    ) {
        let mut argv: Vec<OsString> = vec!["bcvk".into()];
        if image_first {
            argv.push(image.clone().into());
        }
        argv.extend(words.iter().map(OsString::from));
        if let Some(bytes) = raw {
            // Not necessarily UTF-8, as an argv may be.
            argv.push(std::os::unix::ffi::OsStringExt::from_vec(bytes));
        }
        match usage::parse(argv.clone()) {
            Ok(cli) => {
                if let Command::Run(args) = cli.command {
                    let (_dir, store) = empty_store();
                    plan(&args, &store);
                }
            }
            Err(Refusal::Display(e)) => prop_assert!(
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ),
                "{e}"
            ),
            Err(refusal @ Refusal::Usage(_)) => {
                let Refusal::Usage(line) = &refusal else { unreachable!() };
                crate::assert_one_line(line);
                prop_assert!(!line.is_empty());
                prop_assert!(line.chars().count() < 1000, "{} characters: {line}", line.len());
                // clap's tip for values starting with '-' is wrong here: `--` starts the
                // guest's command.
                prop_assert!(!line.contains("use '-- "), "{line}");
                let code = refusal.code().to_string();
                prop_assert!(exit::table().iter().any(|(c, _)| *c == code), "exit {code}");
                prop_assert_eq!(refusal.code(), Exit::Usage.code());
            }
        }
    }

    /// Timeouts of any size are taken up to the documented limit and refused above it:
    /// never an overflowing deadline.
    #[test]
    fn timeouts_are_bounded(secs in any::<u64>(), which in 0..3usize) {
        let flag = ["--ready-timeout", "--stop-timeout", "--timeout"][which];
        let argv: Vec<String> = if which == 2 {
            vec!["bcvk".into(), "ssh".into(), format!("{flag}={secs}")]
        } else {
            vec!["bcvk".into(), "img".into(), format!("{flag}={secs}")]
        };
        let parsed = Cli::try_parse_from(with_default_subcommand(argv.iter().map(OsString::from).collect()));
        if secs <= bcvk::cli::MAX_TIMEOUT_SECS {
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
            prop_assert!(std::time::Instant::now()
                .checked_add(std::time::Duration::from_secs(secs))
                .is_some());
        } else {
            let e = parsed.expect_err("refused");
            prop_assert!(e.use_stderr());
            prop_assert!(e.to_string().contains(flag), "{e}");
        }
    }
}
