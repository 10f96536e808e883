//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
//!
//! One module per concern: `store` reads the podman store, `rootfs` stacks the layers,
//! `kernel` finds the kernel, `credentials` and `guestfs` configure the guest, `qemu` and
//! `virtiofsd` build command lines, `spawn` starts processes, `init` reaps them and takes
//! signals, `vm` runs one VM's life, `readiness`, `ssh`, `console` and `status` serve it,
//! `run` ties a `bcvk run` together, and `cli` and `config` read the options.

pub mod cli;
pub mod config;
pub mod console;
pub mod credentials;
pub mod exit;
pub mod guestfs;
pub mod init;
pub mod kernel;
pub mod opaque;
pub mod qemu;
pub mod readiness;
pub mod rootfs;
pub mod run;
pub mod spawn;
pub mod ssh;
pub mod state;
pub mod status;
pub mod store;
pub mod userns;
pub mod virtiofsd;
pub mod vm;

/// The host-side command (POSIX sh), printed by `bcvk install-host-cli`.
pub const HOST_CLI: &str = include_str!("../../entrypoint/bcvk-host");
