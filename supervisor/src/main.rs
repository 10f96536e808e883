//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
fn main() {}
