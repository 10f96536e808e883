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
    for path in [
        ["ephemeral", "run"],
        ["ephemeral", "run-ssh"],
        ["vm", "run"],
    ] {
        root = root.mut_subcommand(path[0], |p| p.mut_subcommand(path[1], host_paths));
    }
    root
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
