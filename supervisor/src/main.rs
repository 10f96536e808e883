//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
// Nothing calls the store and rootfs modules yet; the CLI wiring comes later.
#![allow(dead_code)]

mod rootfs;
mod store;

fn main() {}
