//! The ecosystem examples under `examples/`, for the tests that check them: where they are, and
//! the commands in them that the end-to-end suite runs as documented.
//!
//! - [`github_actions_command`]: the `podman run` line of the GitHub Actions workflow, marked in
//!   the YAML by `# bcvk-command-begin` / `# bcvk-command-end`, split into arguments.
//! - [`quadlet_unit_path`]: the Quadlet unit; `integration/quadlet-check.sh OUT.json` writes the
//!   `podman run` command Quadlet generates from it, which [`quadlet_argv`] reads back.

use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `integration/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

pub fn github_actions_workflow_path() -> PathBuf {
    repo_root().join("examples/github-actions/bcvk-test.yml")
}

pub fn quadlet_unit_path() -> PathBuf {
    repo_root().join("examples/quadlet/bcvk-demo.container")
}

/// The bootc image the workflow's command boots; substitute the test image for it.
pub const GITHUB_ACTIONS_TARGET: &str = "localhost/my-bootc";

pub const COMMAND_BEGIN: &str = "# bcvk-command-begin";
pub const COMMAND_END: &str = "# bcvk-command-end";

/// The single line between the markers in `text`, trimmed.
pub fn marked_line(text: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let find = |marker: &str| {
        let at: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == marker).collect();
        match at[..] {
            [i] => Ok(i),
            _ => Err(format!("expected one `{marker}` line, found {}", at.len())),
        }
    };
    let (begin, end) = (find(COMMAND_BEGIN)?, find(COMMAND_END)?);
    let inner: Vec<&str> = lines
        .get(begin + 1..end)
        .ok_or_else(|| format!("`{COMMAND_END}` comes before `{COMMAND_BEGIN}`"))?
        .iter()
        .copied()
        .filter(|l| !l.is_empty())
        .collect();
    match inner[..] {
        [line] => Ok(line.to_string()),
        _ => Err(format!(
            "expected exactly one command line between the markers, found {}",
            inner.len()
        )),
    }
}

/// Split a command line the way a POSIX shell splits a plain command: words separated by
/// blanks, 'single' and "double" quotes, backslash escapes. Anything the shell would expand or
/// interpret ($, backquotes, globs, pipes, redirections, `;`, `&`, comments, line continuations)
/// is refused: the caller runs the words without a shell, so they must mean the same thing.
pub fn shell_split(line: &str) -> Result<Vec<String>, String> {
    let refuse = |c: char| {
        Err(format!(
            "{c:?} needs a shell to mean what it says in: {line}"
        ))
    };
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated ' in: {line}")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("unterminated \" in: {line}")),
                        },
                        Some(c @ ('$' | '`')) => return refuse(c),
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated \" in: {line}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return refuse('\\'),
            },
            '$' | '`' | '*' | '?' | '[' | '|' | '&' | ';' | '<' | '>' | '(' | ')' => {
                return refuse(c)
            }
            '#' if word.is_none() => return refuse('#'),
            '~' if word.is_none() => return refuse('~'),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The workflow's marked `podman run` command as arguments, starting with `podman`: the leading
/// `sudo` of the workflow is dropped (the suite runs as root, and sudo would drop its
/// environment, CONTAINERS_CONF among it). The image booted is [`GITHUB_ACTIONS_TARGET`].
/// Panics, naming the problem, when the file does not hold one plain command between the markers.
pub fn github_actions_command() -> Vec<String> {
    let path = github_actions_workflow_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let line = marked_line(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut argv = shell_split(&line).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if argv.first().map(String::as_str) == Some("sudo") {
        argv.remove(0);
    }
    assert!(
        argv.first().map(String::as_str) == Some("podman"),
        "{}: the marked command is not a podman command: {line}",
        path.display()
    );
    argv
}

/// The argv `integration/quadlet-check.sh OUT.json` wrote to `json` (the generated ExecStart=),
/// with the systemd specifiers it uses expanded as systemd would for `unit` (e.g.
/// "bcvk-demo.service"), %t as `runtime_dir`. The options that only make sense under systemd
/// (--cgroups=split, -d, --replace, --cidfile) are left in: callers drop what they must.
pub fn quadlet_argv(json: &Path, runtime_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(json)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", json.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    let unit = v["unit"].as_str().expect("a \"unit\" string");
    let argv = v["argv"].as_array().expect("an \"argv\" array");
    argv.iter()
        .map(|a| {
            let a = a.as_str().expect("argv holds strings");
            expand_specifiers(a, unit, runtime_dir)
                .unwrap_or_else(|e| panic!("{}: {e}", json.display()))
        })
        .collect()
}

/// systemd's %n (unit name), %N (without its suffix), %t (runtime directory) and %%.
pub fn expand_specifiers(s: &str, unit: &str, runtime_dir: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push_str(unit),
            Some('N') => out.push_str(unit.rsplit_once('.').map_or(unit, |(n, _)| n)),
            Some('t') => out.push_str(&runtime_dir.to_string_lossy()),
            Some('%') => out.push('%'),
            other => return Err(format!("unexpected systemd specifier %{other:?} in {s}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        let w = shell_split(r#"a  'b c' "d \"e\" \x \$" f\ g -v x:y:ro"#).unwrap();
        assert_eq!(w, ["a", "b c", r#"d "e" \x $"#, "f g", "-v", "x:y:ro"]);
        assert_eq!(shell_split("a '' b").unwrap(), ["a", "", "b"]);
        for bad in [
            "a $HOME", "a | b", "a; b", "a \\", "a 'b", "x *", "a # c", "a \"$x\"",
        ] {
            assert!(shell_split(bad).is_err(), "{bad}");
        }
        assert_eq!(shell_split("a#b").unwrap(), ["a#b"]);
    }

    #[test]
    fn finds_the_marked_line() {
        let t = "x\n  # bcvk-command-begin\n\n  run it\n  # bcvk-command-end\n";
        assert_eq!(marked_line(t).unwrap(), "run it");
        assert!(marked_line("# bcvk-command-begin\na\nb\n# bcvk-command-end").is_err());
        assert!(marked_line("# bcvk-command-end\na\n# bcvk-command-begin").is_err());
        assert!(marked_line("a").is_err());
    }

    #[test]
    fn expands_specifiers() {
        let run = Path::new("/run");
        assert_eq!(
            expand_specifiers("systemd-%N", "bcvk-demo.service", run).unwrap(),
            "systemd-bcvk-demo"
        );
        assert_eq!(
            expand_specifiers("--cidfile=%t/%N.cid", "a.service", run).unwrap(),
            "--cidfile=/run/a.cid"
        );
        assert_eq!(
            expand_specifiers("100%%", "a.service", run).unwrap(),
            "100%"
        );
        assert!(expand_specifiers("%Z", "a.service", run).is_err());
    }
}
