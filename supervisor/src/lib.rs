//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
//!
//! One module per concern: `store` reads the podman store, `rootfs` stacks the layers,
//! `arch` knows the architectures, `kernel` finds the kernel, `credentials` and `guestfs` configure the guest, `qemu` and
//! `virtiofsd` build command lines, `spawn` starts processes, `init` reaps them and takes
//! signals, `vm` runs one VM's life, `readiness`, `ssh`, `console` and `status` serve it,
//! `run` ties a `bcvk run` together, `to_disk` installs a bootc image onto a disk file through one, and `cli` and `config` read the options. `beneath`
//! opens paths inside what an image or a guest wrote without following their symlinks.

pub mod arch;
pub mod beneath;
pub mod boot;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod credentials;
pub mod disk;
pub mod error;
pub mod exit;
pub mod firstboot;
pub mod guestfs;
pub mod host_cmd;
pub mod init;
pub mod kernel;
pub mod logdir;
pub mod opaque;
pub mod partitions;
pub mod plan;
pub mod qemu;
pub mod readiness;
pub mod root;
pub mod rootfs;
pub mod run;
pub mod spawn;
pub mod ssh;
pub mod status;
pub mod store;
pub mod to_disk;
pub mod usage;
pub mod userns;
pub mod virtiofsd;
pub mod vm;

/// The host-side command (POSIX sh) as kept in the source tree: one script kept in parts by
/// concern under `entrypoint/bcvk-host/` (helpers, help texts, the run options, the ephemeral
/// commands, the persistent VMs, to-disk and the dispatch), joined in order: a template whose
/// option table line [`HOST_CLI_TABLE_MARK`] [`host_cli`] replaces.
pub const HOST_CLI_TEMPLATE: &str = concat!(
    include_str!("../../entrypoint/bcvk-host/1-helpers.sh"),
    include_str!("../../entrypoint/bcvk-host/2-help.sh"),
    include_str!("../../entrypoint/bcvk-host/3-run-options.sh"),
    include_str!("../../entrypoint/bcvk-host/4-ephemeral.sh"),
    include_str!("../../entrypoint/bcvk-host/5-vm.sh"),
    include_str!("../../entrypoint/bcvk-host/6-to-disk-and-main.sh"),
);

/// The line of the template that becomes `bcvk run`'s option table.
pub const HOST_CLI_TABLE_MARK: &str = "# @BCVK_RUN_OPTION_TABLE@\n";

/// The host-side command, printed by `bcvk install-host-cli`: the template with its option
/// and command lists written in from their clap definitions ([`host_cmd::shell_table`]).
pub fn host_cli() -> String {
    HOST_CLI_TEMPLATE.replacen(HOST_CLI_TABLE_MARK, &host_cmd::shell_table(), 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_cli_gets_the_option_table() {
        assert_eq!(
            super::HOST_CLI_TEMPLATE
                .matches(super::HOST_CLI_TABLE_MARK)
                .count(),
            1
        );
        let script = super::host_cli();
        assert!(!script.contains("@BCVK_RUN_OPTION_TABLE@"));
        assert!(script.contains("RUN_VALUE_OPTS=' "));
        assert!(script.contains(" --initrd "), "{script}");
    }
}
