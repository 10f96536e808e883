//! The `bcvk` binary: parse options, set up logging, run, and map the result to an exit code.

use std::process::ExitCode;

use bcvk::cli::{self, Command};
use bcvk::commands;
use bcvk::exit::Exit;
use bcvk::run;
use bcvk::usage::{self, Refusal};

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(format!("bcvk={level},warn")).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // stderr, so `podman logs` shows it and stdout stays the command's (or the console's).
    // Colour only on a terminal: not in `podman logs`, journald or CI logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .compact()
        .init();
}

fn main() -> ExitCode {
    let cli = match usage::parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(refusal) => {
            match &refusal {
                Refusal::Display(e) => {
                    let _ = e.print();
                }
                Refusal::Usage(line) => eprintln!("bcvk: error: {line}"),
            }
            return ExitCode::from(refusal.code() as u8);
        }
    };
    init_logging(&cli.log_level);
    let code = match cli.command {
        Command::Run(mut args) => match args.apply_log_dir() {
            Err(e) => {
                eprintln!("bcvk: error: {e}");
                Exit::Usage.code()
            }
            Ok(()) => match run::run(*args) {
                Ok(code) => code,
                Err(e) => {
                    let tail = e.console_tail();
                    if !tail.is_empty() {
                        eprintln!("--- last {} lines of the guest console ---", tail.len());
                        for l in tail {
                            eprintln!("{l}");
                        }
                        eprintln!("---");
                    }
                    eprintln!("bcvk: error: {e}");
                    e.exit_code()
                }
            },
        },
        Command::Ssh(args) => commands::ssh(&args),
        Command::ToDisk(args) => bcvk::to_disk::to_disk_subcommand(&args),
        Command::Status(args) => commands::status(&args),
        Command::Man { dir, host } => match write_man_pages(&dir, host) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!(
                    "bcvk: error: cannot write man pages to {}: {e}",
                    dir.display()
                );
                Exit::Internal.code()
            }
        },
        Command::InstallHostCli => {
            print!("{}", bcvk::host_cli());
            0
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn write_man_pages(dir: &std::path::Path, host: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let pages = if host {
        bcvk::host_cmd::man_pages()?
    } else {
        cli::man_pages()?
    };
    for (name, page) in pages {
        std::fs::write(dir.join(name), page)?;
    }
    Ok(())
}
