//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
#![allow(dead_code)]

mod credentials;
mod qemu;
mod virtiofsd;

fn main() {}
