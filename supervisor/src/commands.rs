//! The subcommands that serve a running VM from inside its container: `bcvk ssh` and `bcvk
//! status`. They read the status file the supervisor keeps (see `status`).

use std::path::Path;

use crate::cli::{SshArgs, StatusArgs};
use crate::ssh;
use crate::status;

/// `bcvk ssh [cmd...]` inside a bcvk container: wait for readiness if the VM is still
/// booting, then replace this process with ssh, so its exit code is the remote command's.
pub fn ssh(args: &SshArgs) -> i32 {
    use std::io::IsTerminal;
    let run_dir = Path::new(status::RUN_DIR);
    let timeout = std::time::Duration::from_secs(args.timeout);
    let st = match status::read(run_dir) {
        Ok(st) if st.state == status::State::Ready => st,
        Ok(st) => {
            if matches!(st.state, status::State::Starting | status::State::Booting) {
                eprintln!("bcvk: the VM is {}; waiting until it is ready...", st.state);
            }
            match status::wait_ready(run_dir, timeout) {
                Ok(st) if st.state == status::State::Ready => st,
                Ok(st) => {
                    eprintln!(
                        "bcvk: error: the VM is {} (not ready): see podman logs",
                        st.state
                    );
                    return 255;
                }
                Err(e) => {
                    eprintln!("bcvk: error: {e}");
                    return 255;
                }
            }
        }
        Err(e) => {
            eprintln!("bcvk: error: {e}");
            return 255;
        }
    };
    let target = ssh::SshTarget {
        host: st.ssh.host,
        port: st.ssh.port,
        // --as: bcvk's key is authorized for root and, on cloud-init guests, for the image's
        // default user; other users need their own authorization in the image.
        user: args.user.clone().unwrap_or(st.ssh.user),
        key: st.ssh.key,
    };
    let interactive = std::io::stdin().is_terminal();
    let tty = if args.tty {
        ssh::Tty::Force
    } else if args.no_tty || (!args.command.is_empty() && !interactive) {
        ssh::Tty::No
    } else if interactive {
        ssh::Tty::Yes
    } else {
        ssh::Tty::No
    };
    let remote = (!args.command.is_empty()).then(|| {
        // One word is taken as a shell string (`bcvk ssh 'systemctl status'`, as upstream's
        // man pages use it); several words keep their boundaries.
        if args.command.len() == 1 {
            args.command[0].clone()
        } else {
            ssh::remote_command(&args.command)
        }
    });
    let program = match crate::spawn::find_program("ssh") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bcvk: error: {e}");
            return 255;
        }
    };
    let err = crate::spawn::exec(
        crate::spawn::Role::SshExec,
        &program,
        &ssh::ssh_args(&target, tty, 10, remote.as_deref(), None),
    );
    eprintln!("bcvk: error: {err}");
    255
}

/// `bcvk status [--json] [--wait]`: exit 0 when ready, 1 otherwise (so scripts can poll).
pub fn status(args: &StatusArgs) -> i32 {
    let run_dir = Path::new(status::RUN_DIR);
    if args.health {
        return status::health(run_dir);
    }
    let res = if args.wait {
        let mut last = String::new();
        let res =
            status::wait_ready_watching(run_dir, std::time::Duration::from_secs(3600), |st| {
                if let Some(text) = args
                    .progress
                    .and_then(|mode| status::progress_text(st, mode, &mut last, status::now_unix()))
                {
                    eprint!("{text}");
                }
            });
        if args.progress == Some(status::Progress::Tty) && !last.is_empty() {
            eprint!("\r\x1b[K");
        }
        res
    } else {
        status::read(run_dir)
    };
    match res {
        Ok(mut st) => {
            if let Some(name) = &args.name {
                st.name = Some(name.clone());
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).expect("status serializes")
                );
            } else {
                print!("{}", status::render(&st));
            }
            if st.state == status::State::Ready {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("bcvk: error: {e}");
            match e {
                status::StatusError::Missing { .. } => crate::exit::Exit::NotFound,
                _ => crate::exit::Exit::Internal,
            }
            .code()
        }
    }
}
