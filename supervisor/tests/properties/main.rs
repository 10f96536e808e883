//! Property-based tests of the parsers that take untrusted or user-supplied input, through
//! the crate's public API. One module per concern.
//!
//! Each property runs a modest number of cases so the suite stays fast in every build;
//! set PROPTEST_CASES to run more (or fewer), e.g. `PROPTEST_CASES=10000 cargo test
//! --test properties`.

mod cli;
mod config;
mod credentials;
mod qemu;
mod store;

use proptest::test_runner::Config;

/// `default_cases` cases, unless PROPTEST_CASES says otherwise. (`Config::with_cases`
/// alone would ignore the variable: only `Config::default()` reads it.)
pub fn cases(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config::with_cases(cases)
}

/// A scratch directory, in memory where possible: the store properties create and delete
/// thousands of inodes, which is slow on some disk filesystems.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bcvk-proptest")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Splits a QEMU option value (QemuOpts / keyval syntax) the way QEMU does: on ',',
/// with ",," standing for one literal comma. Returns the unescaped pieces.
pub fn split_qemu_opts(value: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = vec![Vec::new()];
    let mut i = 0;
    while i < value.len() {
        if value[i] == b',' {
            if value.get(i + 1) == Some(&b',') {
                pieces.last_mut().unwrap().push(b',');
                i += 2;
                continue;
            }
            pieces.push(Vec::new());
        } else {
            pieces.last_mut().unwrap().push(value[i]);
        }
        i += 1;
    }
    pieces
}

/// Parsed QEMU option value: (key, value) pairs, unescaped.
pub type Opts = Vec<(Vec<u8>, Vec<u8>)>;

/// The unescaped `key=value` pairs of a QEMU option value, in order. A piece without
/// '=' (like the implied driver name "socket") is returned with an empty key.
pub fn qemu_opts(value: &[u8]) -> Opts {
    split_qemu_opts(value)
        .into_iter()
        .map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (piece[..eq].to_vec(), piece[eq + 1..].to_vec()),
            None => (Vec::new(), piece),
        })
        .collect()
}

/// Whether every run of commas in `s` has even length, i.e. no comma in it would end
/// a QEMU option value.
pub fn commas_all_doubled(s: &[u8]) -> bool {
    s.split(|&b| b != b',').all(|run| run.len() % 2 == 0)
}

/// An error message a user sees on one line: no newline or other control character.
pub fn assert_one_line(message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "message is not a single clean line: {message:?}"
    );
}

#[test]
fn qemu_opts_helper_unescapes() {
    assert_eq!(
        qemu_opts(b"socket,id=a,path=/x,,y,,,,z"),
        [
            (b"".to_vec(), b"socket".to_vec()),
            (b"id".to_vec(), b"a".to_vec()),
            (b"path".to_vec(), b"/x,y,,z".to_vec()),
        ]
    );
    assert!(commas_all_doubled(b"a,,b,,,,c"));
    assert!(!commas_all_doubled(b"a,,,b"));
}
