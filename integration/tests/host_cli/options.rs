//! Every option of `bcvk run` passed through, and the refused ones.

use std::fs;

use super::harness::*;

/// Every option of `bcvk run`, read from its clap definition, passes through the host
/// command, in both the `--opt VALUE` and `--opt=VALUE` forms: the script has no list of
/// its own to drift (`bcvk install-host-cli` writes clap's into it).
#[test]
fn every_option_of_bcvk_run_passes_through() {
    use clap::CommandFactory;
    let root = bcvk::cli::Cli::command();
    let run = root.find_subcommand("run").unwrap();
    let globals = root.get_arguments().filter(|a| a.is_global_set());
    let args: Vec<_> = run
        .get_arguments()
        .chain(globals)
        .filter(|a| a.get_long().is_some())
        .filter(|a| {
            !matches!(
                a.get_action(),
                clap::ArgAction::Help | clap::ArgAction::Version
            )
        })
        .cloned()
        .collect();
    assert!(args.len() > 25, "{} options", args.len());
    for sh in shells() {
        let f = Fake::new(&sh);
        let host = f.dir.path().join("host");
        fs::create_dir(&host).unwrap();
        let file = host.join("file");
        fs::write(&file, "x").unwrap();
        let (host, file) = (host.display().to_string(), file.display().to_string());
        for arg in &args {
            let long = format!("--{}", arg.get_long().unwrap());
            // A value the host command accepts, and what reaches `bcvk run` (a prefix).
            let (value, passed): (String, String) = match long.as_str() {
                _ if !arg.get_action().takes_values() => (String::new(), long.clone()),
                "--storage" => (host.clone(), format!("{host}:/run/host-storage:ro")),
                "--bind" | "--ro-bind" => {
                    (format!("{host}:n"), format!("{long}=/run/bcvk-host/1:n"))
                }
                "--mount-disk-file" => (file.clone(), format!("{long}=/run/bcvk-host/1/file")),
                "--virtio-serial-out" => (
                    format!("out:{file}"),
                    format!("{long}=out:/run/bcvk-host/1/file"),
                ),
                "--port" => ("8080:80".into(), "--port=8080:80".into()),
                _ => match arg.get_value_hint() {
                    clap::ValueHint::FilePath => {
                        (file.clone(), format!("{long}=/run/bcvk-host/1/file"))
                    }
                    clap::ValueHint::DirPath => (host.clone(), format!("{long}=/run/bcvk-host/1")),
                    _ => {
                        let v = arg
                            .get_possible_values()
                            .first()
                            .map(|p| p.get_name().to_string())
                            .unwrap_or_else(|| "7".into());
                        (v.clone(), format!("{long}={v}"))
                    }
                },
            };
            let forms: Vec<Vec<String>> = if value.is_empty() {
                vec![vec![long.clone()]]
            } else {
                vec![
                    vec![long.clone(), value.clone()],
                    vec![format!("{long}={value}")],
                ]
            };
            for form in forms {
                let mut argv = vec!["ephemeral", "run", "-d"];
                argv.extend(form.iter().map(String::as_str));
                // A disk image takes the place of IMAGE.
                if long != "--disk-image" {
                    argv.push("localhost/img");
                }
                let r = f.run(&argv);
                r.assert_code(0);
                let call = r
                    .calls
                    .iter()
                    .find(|c| c.first().map(String::as_str) == Some("run"));
                let call = call.unwrap_or_else(|| panic!("{form:?}: no podman run: {}", r.show()));
                assert!(
                    call.iter().any(|a| a.starts_with(&passed)),
                    "{form:?}: podman run lacks {passed:?}: {}",
                    r.show()
                );
            }
        }
    }
}

/// --disk-image takes the place of IMAGE: the file alone is mounted, read-only unless
/// --persistent (then the guest writes into it); run-ssh's command follows directly.
#[test]
fn disk_image_mounts_the_file_alone() {
    for sh in shells() {
        let f = Fake::new(&sh);
        let host = f.dir.path().join("imgs");
        fs::create_dir(&host).unwrap();
        let disk = host.join("d.qcow2");
        fs::write(&disk, "x").unwrap();
        let d = disk.display().to_string();
        for (extra, mount) in [
            (None, format!("{d}:/run/bcvk-host/1/d.qcow2:ro")),
            (
                Some("--persistent"),
                format!("{d}:/run/bcvk-host/1/d.qcow2"),
            ),
        ] {
            let mut argv = vec!["ephemeral", "run", "-d", "--disk-image", &d];
            argv.extend(extra);
            let r = f.run(&argv);
            r.assert_code(0);
            let call = r.calls.iter().find(|c| c[0] == "run").unwrap();
            assert!(call.contains(&mount), "{mount}: {}", r.show());
            let at = call.iter().position(|a| a == "run").unwrap();
            let bcvk_run = call[at + 1..].iter().position(|a| a == "run").unwrap() + at + 1;
            assert_eq!(
                call[bcvk_run + 1],
                "--disk-image=/run/bcvk-host/1/d.qcow2",
                "{}",
                r.show()
            );
        }
        let r = f.run(&["ephemeral", "run", "--disk-image", &d, "extra"]);
        r.assert_usage_error("no IMAGE; put the guest command after '--'");
        let r = f.run(&["ephemeral", "run", "--disk-image", "/no/such.qcow2"]);
        r.assert_usage_error("no such file on this host");
    }
}

/// An option bcvk does not have is refused on the host, before podman runs; upstream
/// spellings name bcvk's equivalent.
#[test]
fn unknown_and_upstream_options_are_refused_with_the_equivalent() {
    for sh in shells() {
        let f = Fake::new(&sh);
        let r = f.run(&["ephemeral", "run", "--future-flag=x", "img"]);
        r.assert_usage_error("unknown option --future-flag");
        for (spelling, hint) in bcvk::cli::UPSTREAM_SPELLINGS {
            let value_form = format!("{spelling}=x");
            let argv: Vec<&str> = if spelling.starts_with("--") {
                vec!["ephemeral", "run-ssh", &value_form, "img"]
            } else {
                vec!["ephemeral", "run", spelling, "x", "img"]
            };
            let r = f.run(&argv);
            r.assert_usage_error(hint);
        }
        let r = f.run(&["ephemeral", "run", "-de", "FOO=1", "img"]);
        r.assert_usage_error("use --execute");
    }
}

/// Every command of the host command's clap definitions (aliases too) and every flag of
/// each is the script's, and nothing else: its lists are generated from the same definitions
/// (`bcvk install-host-cli`). `CMD FLAG --help` shows the help only once FLAG is taken.
#[test]
fn every_host_command_and_flag_is_taken() {
    use clap::Args as _;
    let root = bcvk::host_cmd::command();
    let podman = bcvk::host_cmd::PodmanOptions::augment_args(clap::Command::new("podman"));
    let mut cases: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for cmd in root.get_subcommands() {
        let leaves: Vec<(Vec<String>, &clap::Command)> = if cmd.has_subcommands() {
            cmd.get_subcommands()
                .flat_map(|l| {
                    let names = std::iter::once(l.get_name()).chain(l.get_visible_aliases());
                    names.map(move |n| (vec![cmd.get_name().to_string(), n.to_string()], l))
                })
                .collect()
        } else {
            vec![(vec![cmd.get_name().to_string()], cmd)]
        };
        for (path, leaf) in leaves {
            // The run commands' options are bcvk run's (every one checked above) and podman's.
            // (to-disk sizes its installer VM with bcvk run's --memory but takes no podman option.)
            let run = leaf.get_arguments().any(|a| a.get_id() == "memory")
                && leaf.get_name() != "to-disk";
            let args: Vec<&clap::Arg> = if run {
                podman.get_arguments().collect()
            } else {
                leaf.get_arguments().collect()
            };
            cases.push((path.clone(), vec![]));
            for arg in args {
                let help = matches!(arg.get_action(), clap::ArgAction::Help);
                let (Some(long), false) = (arg.get_long(), help) else {
                    continue;
                };
                let short = arg.get_short().map(|s| format!("-{s}"));
                for spelling in std::iter::once(format!("--{long}")).chain(short) {
                    let mut option = vec![spelling];
                    if arg.get_action().takes_values() {
                        option.push("x".into());
                    }
                    cases.push((path.clone(), option));
                }
            }
        }
    }
    assert!(cases.len() > 30, "{cases:?}");
    for sh in shells() {
        let f = Fake::new(&sh);
        for (path, option) in &cases {
            let mut argv: Vec<&str> = path.iter().map(String::as_str).collect();
            argv.extend(option.iter().map(String::as_str));
            argv.push("--help");
            let r = f.run(&argv);
            r.assert_code(0);
            assert!(r.stdout.contains("Usage: bcvk"), "{argv:?}: {}", r.show());
            argv.pop();
            argv.push("--no-such-flag");
            let r = f.run(&argv);
            r.assert_code(64);
        }
    }
}
