//! bcvk: boot a bootable container image as a throwaway VM, from inside a container.
// The modules below are library code used by the supervisor as it grows; until
// everything is wired up some items have no caller yet.
#![allow(dead_code)]

mod config;
mod kernel;

fn main() {}
