//! The host command's grammar (`bcvk ephemeral ...`, `bcvk vm ...`, `bcvk ssh`, `bcvk
//! status`), as clap definitions. The host command itself is a POSIX sh script
//! (`entrypoint/bcvk-host`) that needs only podman; these definitions are what its man pages
//! (`bcvk-ephemeral-run.8`, ...) are generated from, and `bcvk run`'s own options are
//! flattened in, so that each option is defined once. Nothing here runs a VM.

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cli::RunArgs;

#[derive(Debug, Parser)]
#[command(
    name = "bcvk",
    version,
    about = "Boot bootable container images as VMs, throwaway or persistent, through podman",
    long_about = "Boot bootable container images as VMs, throwaway or persistent, through \
        podman.\n\n\
        Each VM is a podman container of the bcvk image (BCVK_IMAGE, default \
        localhost/bcvk:latest), which reads the bootable image from the host's podman store, \
        read-only, and boots it with QEMU. This command needs only a POSIX shell and podman; \
        install it with: podman run --rm localhost/bcvk:latest install-host-cli > \
        ~/.local/bin/bcvk && chmod +x ~/.local/bin/bcvk",
    after_help = "Environment: BCVK_IMAGE (the bcvk image, default localhost/bcvk:latest), \
        BCVK_KVM_DEVICE (the KVM device given to the VM's container, default /dev/kvm)."
)]
pub struct HostCli {
    #[command(subcommand)]
    pub command: HostCommand,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Throwaway VMs: boot, use, remove (upstream bcvk's `ephemeral` commands).
    #[command(subcommand)]
    Ephemeral(Ephemeral),
    /// Persistent VMs, kept in a named volume across stop and start (podman-bootc's
    /// lifecycle; upstream bcvk's `libvirt` commands).
    #[command(subcommand)]
    Vm(Vm),
    /// Install a bootc image to a disk image file (upstream bcvk's `to-disk`): a container of
    /// the bcvk image boots SOURCE_IMAGE with the store read-only, attaches TARGET_DISK (its
    /// directory is mounted into the container), and runs the image's own `bootc install
    /// to-disk` onto it. The result boots with `bcvk ephemeral run --disk-image FILE`.
    #[command(name = "to-disk")]
    ToDisk(Box<crate::cli::ToDiskArgs>),
    /// Open a shell, or run COMMAND, in a running VM, ephemeral or persistent.
    Ssh(SshTarget),
    /// Show a VM's state, ephemeral or persistent (podman exec NAME bcvk status).
    Status(StatusTarget),
}

#[derive(Debug, Subcommand)]
pub enum Ephemeral {
    /// Boot IMAGE as a VM in a podman container of the bcvk image, labelled
    /// bcvk.ephemeral=1 (list it with `bcvk ephemeral ps`).
    ///
    /// Host paths given to --bind, --ro-bind, --mount-disk-file, --systemd-units,
    /// --virtio-serial-out, --log-dir, --ssh-key, --scratch, --storage, --disk-image,
    /// --cloud-init and --ignition are
    /// mounted into the container (relative paths are relative to the current directory);
    /// --port HOST:GUEST is also published on the host. The container gets podman's default
    /// capabilities (no --privileged) and --device /dev/kvm when the host has it.
    Run(Box<EphemeralRun>),
    /// Boot IMAGE in the background, wait until it is ready, open an ssh session (or run
    /// COMMAND) in it, then stop and remove it, also when ssh fails or on Ctrl-C.
    ///
    /// The exit code is the session's (COMMAND's); when the VM never became ready, the
    /// supervisor's own code (see bcvk run's exit codes), or 255. OPTIONS are those of
    /// `bcvk ephemeral run`, before IMAGE; everything after IMAGE is the COMMAND.
    #[command(name = "run-ssh")]
    RunSsh(Box<EphemeralRun>),
    /// Open a shell, or run COMMAND, in the running VM NAME (podman exec NAME bcvk ssh).
    Ssh(SshTarget),
    /// List the ephemeral VMs: the containers labelled bcvk.ephemeral=1, running or not.
    #[command(visible_alias = "list")]
    Ps(ListArgs),
    /// Remove (podman rm -f) every ephemeral VM; never another container or a persistent VM.
    #[command(name = "rm-all")]
    RmAll(RmAllArgs),
    /// Show the state of the VM NAME (podman exec NAME bcvk status).
    Status(StatusTarget),
}

#[derive(Debug, Subcommand)]
pub enum Vm {
    /// Boot IMAGE as a new persistent VM in the background; returns once it answers ssh.
    ///
    /// The VM is the container NAME plus the volume bcvk-vm-NAME at /cache holding its
    /// state, both labelled bcvk.vm=NAME; bcvk runs with --persistent. Options are those of
    /// `bcvk ephemeral run`; -d is implied; --rm, -i, -t, -- COMMAND and --execute are
    /// refused (run commands with `bcvk vm ssh NAME COMMAND`). Like `podman-bootc run` and
    /// upstream `bcvk libvirt run`.
    Run(Box<VmRun>),
    /// Open a shell, or run COMMAND, in the running VM NAME (its exit code is kept).
    Ssh(SshTarget),
    /// List the persistent VMs: NAME, IMAGE, STATE and the SIZE of each state volume.
    #[command(visible_aliases = ["ls", "ps"])]
    List(ListArgs),
    /// Power the VM NAME off gracefully (podman stop with the container's stop timeout);
    /// its state is kept.
    Stop(VmName),
    /// Boot the stopped VM NAME again from its state; returns once it answers ssh.
    Start(VmName),
    /// Remove the VM NAME: its container, then its state volume (-f: also when running).
    Rm(VmRm),
}

/// podman's own options that the host command takes for `bcvk ephemeral run`.
#[derive(Debug, Args)]
pub struct PodmanOptions {
    /// Run in the background and print the container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (with --console: the guest console). Without -d, COMMAND or
    /// --execute, -it is added when stdin is a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when the VM stops.
    #[arg(long)]
    pub rm: bool,
    /// Name the container (the VM); a name in use is refused.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Add a container label (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EphemeralRun {
    #[command(flatten)]
    pub podman: PodmanOptions,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct VmRun {
    /// The VM's name (default: IMAGE's last path component without tag or digest:
    /// quay.io/fedora/fedora-bootc:42 -> fedora-bootc).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Add a label to the VM's container (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct SshTarget {
    /// The VM (its container's name).
    pub name: String,
    /// The command to run; a login shell without one.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusTarget {
    /// The VM (its container's name).
    pub name: String,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait until the VM is ready (or has failed); exit 0 when ready.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A JSON array of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmAllArgs {
    /// Do not ask first (needed without a terminal to ask on).
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VmName {
    /// The VM's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VmRm {
    /// Also remove a running VM.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The VM's name.
    pub name: String,
}

/// How the host command treats `bcvk run`'s options that take paths: they are paths on the
/// host, which it mounts into the VM's container. (option, what the man page says)
pub const HOST_PATHS: &[(&str, &str)] = &[
    ("bind", "Share the host directory SRC read-write with the guest (mounted into the container first), at /run/virtiofs-mnt-NAME (NAME: the directory's name unless given) or at /guest/path"),
    ("ro_bind", "Like --bind, read-only end to end"),
    ("mount_disk_file", "The host FILE as a virtio disk /dev/disk/by-id/virtio-NAME (FILE's directory is mounted; a missing FILE is created)"),
    ("systemd_units", "Install the units of the host directory DIR in the guest (mounted read-only)"),
    ("virtio_serial_out", "Guest writes to /dev/virtio-ports/NAME land in the host FILE (its directory is mounted)"),
    ("log_dir", "The host directory DIR (created if missing, mounted) receives the guest's journal and console files"),
    ("ssh_key", "Also authorize the public key in the host FILE (mounted read-only)"),
    ("scratch", "Put the throwaway writable layer on the host directory DIR"),
    ("cloud_init", "A cloud-init NoCloud directory on the host (mounted read-only), merged with bcvk's first-boot data"),
    ("ignition", "An Ignition config FILE on the host (mounted read-only), handed to the guest over fw_cfg"),
    ("storage", "The host's podman store to read (default: the one `podman info` reports), mounted read-only at /run/host-storage"),
    ("disk_image", "Boot the host disk image FILE (its directory is mounted; read-only unless --persistent)"),
    ("ports", "Forward container port HOST to guest port GUEST, and publish HOST on the host (podman -p HOST:HOST): the guest port is reachable at localhost:HOST"),
];

/// The host command's clap tree, with the host meaning of the path options.
pub fn command() -> clap::Command {
    let mut root = HostCli::command();
    let host_paths = |mut c: clap::Command| {
        for (id, help) in HOST_PATHS {
            if c.get_arguments().any(|a| a.get_id() == *id) {
                c = c.mut_arg(*id, |a| a.help(*help));
            }
        }
        c
    };
    for path in RUN_COMMANDS {
        root = root.mut_subcommand(path[0], |p| p.mut_subcommand(path[1], host_paths));
    }
    root
}

/// The host command's commands that take `bcvk run`'s options (and podman's); their lists are
/// `RUN_*` and `PODMAN_*`, the other commands' `HOST_FLAGS_*`.
/// The commands besides [`RUN_COMMANDS`] that take options with values: the script gets their
/// list (`HOST_VALUE_OPTS_<command>`).
const VALUE_COMMANDS: [&str; 1] = ["to-disk"];

const RUN_COMMANDS: [[&str; 2]; 3] = [
    ["ephemeral", "run"],
    ["ephemeral", "run-ssh"],
    ["vm", "run"],
];

/// One command's options as the shell reads them: the long spellings (aliases too) of those
/// that take a value and of the flags, `s=--long` for the short spellings, and the options
/// whose value is a host file or directory (`value_hint`). Help and version are clap's own
/// (the script knows -h and --help).
#[derive(Default)]
struct ShellOptions {
    value: Vec<String>,
    flag: Vec<String>,
    shorts: Vec<(char, String)>,
    files: Vec<String>,
    dirs: Vec<String>,
}

impl ShellOptions {
    /// `s=--long` for each short spelling, as the script looks them up.
    fn short_map(&self) -> Vec<String> {
        self.shorts
            .iter()
            .map(|(s, long)| format!("{s}={long}"))
            .collect()
    }

    fn of<'a>(args: impl Iterator<Item = &'a clap::Arg>) -> ShellOptions {
        use clap::{ArgAction, ValueHint};
        let mut o = ShellOptions::default();
        for arg in args {
            let Some(long) = arg.get_long() else {
                continue; // positional: IMAGE, NAME, COMMAND
            };
            if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
                continue;
            }
            let list = if arg.get_action().takes_values() {
                &mut o.value
            } else {
                &mut o.flag
            };
            list.push(format!("--{long}"));
            list.extend(
                arg.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(|a| format!("--{a}")),
            );
            match arg.get_value_hint() {
                ValueHint::FilePath => o.files.push(format!("--{long}")),
                ValueHint::DirPath => o.dirs.push(format!("--{long}")),
                _ => {}
            }
            for short in arg.get_short_and_visible_aliases().into_iter().flatten() {
                o.shorts.push((short, format!("--{long}")));
            }
        }
        o
    }
}

/// A shell assignment `NAME=' a b '`: the words space-separated and space-padded, so that
/// `case $LIST in *" $word "*)` finds a word.
fn shell_list(name: &str, words: &[String]) -> String {
    format!("{name}=' {} '\n", words.join(" "))
}

/// A subcommand's name and visible aliases (`ps list`).
fn names(cmd: &clap::Command) -> Vec<String> {
    std::iter::once(cmd.get_name())
        .chain(cmd.get_visible_aliases())
        .map(String::from)
        .collect()
}

/// Every list the host command parses its arguments with, for the shell, from the clap
/// definitions: `bcvk run`'s options (`RUN_*`, with its global ones), podman's options of
/// `bcvk ephemeral run` (`PODMAN_*`), `bcvk`'s own subcommands (`BCVK_SUBCOMMANDS`), the host
/// command's commands (`HOST_COMMANDS`, `HOST_COMMANDS_<command>`) and the flags of each
/// of its other commands (`HOST_FLAGS_<command>_<subcommand>`, '-' made '_'), and the upstream
/// spellings to refuse (`upstream_hint`). `bcvk install-host-cli` writes it into the script
/// ([`crate::host_cli`]), so the script keeps no list of its own.
pub fn shell_table() -> String {
    let bcvk = crate::cli::Cli::command();
    let run = bcvk
        .find_subcommand("run")
        .expect("bcvk has a run subcommand");
    let globals = bcvk.get_arguments().filter(|a| a.is_global_set());
    let r = ShellOptions::of(run.get_arguments().chain(globals));
    let podman =
        ShellOptions::of(PodmanOptions::augment_args(clap::Command::new("p")).get_arguments());
    let mut out = String::from(
        "# The host command's lists, generated from the clap definitions of `bcvk run` and of\n\
         # the host command (supervisor/src/host_cmd.rs) by `bcvk install-host-cli`: do not\n\
         # edit (lists are space-separated and space-padded).\n",
    );
    out += &shell_list("RUN_VALUE_OPTS", &r.value);
    out += &shell_list("RUN_FLAG_OPTS", &r.flag);
    out += &shell_list("RUN_SHORT_OPTS", &r.short_map());
    out += &shell_list("RUN_HOST_FILE_OPTS", &r.files);
    out += &shell_list("RUN_HOST_DIR_OPTS", &r.dirs);
    out += &shell_list("PODMAN_VALUE_OPTS", &podman.value);
    out += &shell_list("PODMAN_FLAG_OPTS", &podman.flag);
    out += &shell_list("PODMAN_SHORT_OPTS", &podman.short_map());
    let subcommands: Vec<String> = crate::cli::SUBCOMMANDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    out += &shell_list("BCVK_SUBCOMMANDS", &subcommands);
    // As declared: command() moves the run commands last.
    let host = HostCli::command();
    let commands: Vec<String> = host.get_subcommands().flat_map(names).collect();
    out += &shell_list("HOST_COMMANDS", &commands);
    for cmd in host.get_subcommands() {
        let key = cmd.get_name().replace('-', "_");
        let leaves: Vec<&clap::Command> = cmd.get_subcommands().collect();
        if leaves.is_empty() {
            out += &shell_list(&format!("HOST_FLAGS_{key}"), &flags(cmd));
            if VALUE_COMMANDS.contains(&cmd.get_name()) {
                let values = ShellOptions::of(cmd.get_arguments()).value;
                out += &shell_list(&format!("HOST_VALUE_OPTS_{key}"), &values);
            }
            continue;
        }
        let verbs: Vec<String> = leaves.iter().flat_map(|l| names(l)).collect();
        out += &shell_list(&format!("HOST_COMMANDS_{key}"), &verbs);
        for leaf in leaves {
            if RUN_COMMANDS.contains(&[cmd.get_name(), leaf.get_name()]) {
                continue;
            }
            let leaf_key = leaf.get_name().replace('-', "_");
            out += &shell_list(&format!("HOST_FLAGS_{key}_{leaf_key}"), &flags(leaf));
        }
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    out.push_str("# upstream_hint OPTION: set REPLY to the line refusing an upstream spelling.\n");
    out.push_str("upstream_hint() {\n    case $1 in\n");
    for (spelling, _) in crate::cli::UPSTREAM_SPELLINGS {
        let line = crate::cli::upstream_spelling(spelling).expect("listed");
        out.push_str(&format!("    {spelling}) REPLY={} ;;\n", quote(&line)));
    }
    out.push_str("    *) return 1 ;;\n    esac\n}\n");
    out
}

/// A command's flags, long and short spellings (`-f --force`): the commands other than
/// [`RUN_COMMANDS`] take no option with a value (a unit test holds them to it).
fn flags(cmd: &clap::Command) -> Vec<String> {
    let o = ShellOptions::of(cmd.get_arguments());
    let shorts = o.shorts.iter().map(|(s, _)| format!("-{s}"));
    shorts.chain(o.flag.iter().cloned()).collect()
}

/// The man pages of the host command (section 8, as upstream bcvk's): `bcvk.8`, then one per
/// command, named for its path (`bcvk-ephemeral-run.8`, `bcvk-vm-start.8`, ...).
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = command();
    let mut pages = Vec::new();
    let mut render = |name: &str, cmd: clap::Command| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.name(name.to_string()))
            .section("8")
            .render(&mut buf)?;
        pages.push((format!("{name}.8"), buf));
        Ok(())
    };
    render("bcvk", root.clone())?;
    for sub in root.get_subcommands() {
        let name = format!("bcvk-{}", sub.get_name());
        render(&name, sub.clone())?;
        for leaf in sub.get_subcommands() {
            render(&format!("{name}-{}", leaf.get_name()), leaf.clone())?;
        }
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgAction;

    /// docs/man holds the pages as generated from these definitions, section 1 (the
    /// container's commands) and 8 (the host command's), so that they never drift.
    #[test]
    fn docs_man_pages_are_the_generated_ones() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man");
        for (dir, pages) in [
            ("man1", crate::cli::man_pages().unwrap()),
            ("man8", man_pages().unwrap()),
        ] {
            let dir = docs.join(dir);
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
            names.sort();
            let fix = "regenerate: cargo run -q -p bcvk -- man docs/man/man1 && \
                       cargo run -q -p bcvk -- man --host docs/man/man8";
            assert_eq!(on_disk, names, "{}: {fix}", dir.display());
            for (name, page) in pages {
                let have = std::fs::read(dir.join(&name)).unwrap();
                assert!(have == page, "{name} differs from its definitions: {fix}");
            }
        }
    }

    /// The script's lists are clap's: each command and alias, each option by the list that
    /// says how the script reads it.
    #[test]
    fn shell_table_lists_every_command_and_option() {
        let table = shell_table();
        let list = |name: &str| -> String {
            let line = table
                .lines()
                .find(|l| l.starts_with(&format!("{name}='")))
                .unwrap_or_else(|| panic!("no {name} in {table}"));
            line[name.len() + 1..].trim_matches('\'').to_string()
        };
        assert_eq!(list("HOST_COMMANDS"), " ephemeral vm to-disk ssh status ");
        assert!(list("HOST_VALUE_OPTS_to_disk").contains(" --disk-size "));
        assert_eq!(
            list("HOST_COMMANDS_ephemeral"),
            " run run-ssh ssh ps list rm-all status "
        );
        assert_eq!(
            list("HOST_COMMANDS_vm"),
            " run ssh list ls ps stop start rm "
        );
        assert_eq!(list("HOST_FLAGS_ephemeral_rm_all"), " -f --force ");
        assert_eq!(list("HOST_FLAGS_vm_rm"), " -f --force ");
        assert_eq!(list("HOST_FLAGS_status"), " --json --wait ");
        assert_eq!(list("HOST_FLAGS_vm_list"), " --json ");
        assert_eq!(list("HOST_FLAGS_vm_stop"), "  ");
        assert_eq!(list("PODMAN_VALUE_OPTS"), " --name --label ");
        assert_eq!(
            list("PODMAN_FLAG_OPTS"),
            " --detach --interactive --tty --rm "
        );
        assert_eq!(
            list("PODMAN_SHORT_OPTS"),
            " d=--detach i=--interactive t=--tty "
        );
        assert!(list("BCVK_SUBCOMMANDS").contains(" install-host-cli "));
        // Every option of bcvk run, global ones too, in the list of how it is read.
        let bcvk = crate::cli::Cli::command();
        let run = bcvk.find_subcommand("run").unwrap();
        let (value, flag) = (list("RUN_VALUE_OPTS"), list("RUN_FLAG_OPTS"));
        for arg in run.get_arguments().chain(bcvk.get_arguments()) {
            let own = matches!(arg.get_action(), ArgAction::Help | ArgAction::Version);
            let (Some(long), false) = (arg.get_long(), own) else {
                continue;
            };
            let want = if arg.get_action().takes_values() {
                &value
            } else {
                &flag
            };
            assert!(want.contains(&format!(" --{long} ")), "--{long}: {table}");
        }
        assert!(list("RUN_VALUE_OPTS").contains(" --log-level "), "{table}");
        assert!(
            list("RUN_HOST_FILE_OPTS").contains(" --ignition "),
            "{table}"
        );
    }

    /// The script reads the commands other than the run commands as NAME and flags: an
    /// option with a value there would need a list of its own.
    #[test]
    fn only_the_run_commands_take_options_with_values() {
        let root = command();
        let mut leaves: Vec<(String, &clap::Command)> = Vec::new();
        for cmd in root.get_subcommands() {
            if !VALUE_COMMANDS.contains(&cmd.get_name()) {
                leaves.push((cmd.get_name().to_string(), cmd));
            }
            for leaf in cmd.get_subcommands() {
                if !RUN_COMMANDS.contains(&[cmd.get_name(), leaf.get_name()]) {
                    leaves.push((format!("{} {}", cmd.get_name(), leaf.get_name()), leaf));
                }
            }
        }
        for (name, cmd) in leaves {
            for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
                assert!(
                    !arg.get_action().takes_values(),
                    "bcvk {name} --{}: give the script a list of its options with values",
                    arg.get_long().unwrap()
                );
            }
        }
    }

    #[test]
    fn the_tree_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn every_host_path_option_exists_in_bcvk_run() {
        let cmd = crate::cli::Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        for (id, _) in HOST_PATHS {
            assert!(
                run.get_arguments().any(|a| a.get_id() == *id),
                "{id} is not an option of bcvk run"
            );
        }
    }

    #[test]
    fn man_pages_name_every_command_as_upstream_does() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "bcvk.8",
            "bcvk-ephemeral.8",
            "bcvk-ephemeral-run.8",
            "bcvk-ephemeral-run-ssh.8",
            "bcvk-ephemeral-ssh.8",
            "bcvk-ephemeral-ps.8",
            "bcvk-ephemeral-rm-all.8",
            "bcvk-vm-run.8",
            "bcvk-vm-start.8",
            "bcvk-vm-rm.8",
            "bcvk-ssh.8",
            "bcvk-status.8",
            "bcvk-to-disk.8",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        let run = String::from_utf8(
            pages
                .iter()
                .find(|(n, _)| n == "bcvk-ephemeral-run.8")
                .unwrap()
                .1
                .clone(),
        )
        .unwrap();
        // bcvk run's options, with the host meaning where the host command mounts paths.
        assert!(run.contains("\\-\\-memory"), "{run}");
        assert!(run.contains("\\-\\-detach"), "{run}");
        assert!(run.contains("mounted into the container first"), "{run}");
    }
}
