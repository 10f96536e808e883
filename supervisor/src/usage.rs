//! Reading the command line as `main` does: clap parses it, and every refusal becomes one
//! `bcvk: error: ...` line naming the problem and the fix, instead of clap's several lines
//! (whose tip "to pass '-1' as a value, use '-- -1'" is wrong here: `--` starts the guest's
//! command). Values are escaped and cut to a readable length. `--help` and `--version` are
//! left to clap.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cli::{self, Cli};
use crate::config::{shown, MAX_SHOWN};
use crate::exit::Exit;

/// Why the command line did not give a [`Cli`] to run.
#[derive(Debug)]
pub enum Refusal {
    /// `--help`, `--version`: clap prints them (stdout, exit 0).
    Display(clap::Error),
    /// A mistake in the options: the line after `bcvk: error: ` (exit 64).
    Usage(String),
}

impl Refusal {
    /// The exit code, from the one table.
    pub fn code(&self) -> i32 {
        match self {
            Refusal::Display(_) => 0,
            Refusal::Usage(_) => Exit::Usage.code(),
        }
    }
}

/// Parse `argv` (with the program name first) as `main` does: `bcvk IMAGE` is `bcvk run
/// IMAGE`, upstream spellings are refused with what to use instead, and every other refusal
/// is one line.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, Refusal> {
    let argv = cli::with_default_subcommand(argv);
    let mut cmd = Cli::command();
    let err = match cmd.try_get_matches_from_mut(&argv) {
        Ok(mut m) => match Cli::from_arg_matches_mut(&mut m) {
            Ok(cli) => return Ok(cli),
            Err(e) => e,
        },
        Err(e) => e,
    };
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return Err(Refusal::Display(err));
    }
    if let Some(line) = cli::upstream_spelling_in(&argv) {
        return Err(Refusal::Usage(line));
    }
    Err(Refusal::Usage(one_line(&err, &argv)))
}

fn text(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) if !v.is_empty() => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

fn list(err: &clap::Error, kind: ContextKind) -> Vec<String> {
    match err.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    }
}

/// `--vcpus <N>` -> `--vcpus`, `<IMAGE>` -> `IMAGE`, `[COMMAND]...` -> `-- COMMAND`: the
/// option as the user spells it.
fn option_name(arg: &str) -> String {
    let name = arg.split_once(' ').map_or(arg, |(n, _)| n);
    let name = name
        .trim_end_matches("...")
        .trim_matches(|c| matches!(c, '<' | '>' | '[' | ']'));
    if name == "COMMAND" {
        return "-- COMMAND".into();
    }
    shown(name)
}

/// The subcommand `argv` runs (after [`cli::with_default_subcommand`]), for the help hint.
fn subcommand(argv: &[OsString]) -> &'static str {
    argv.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .find_map(|a| cli::SUBCOMMANDS.iter().find(|s| **s == a).copied())
        .filter(|s| !matches!(*s, "help" | "man"))
        .unwrap_or("run")
}

/// " (did you mean 'x'?)" from clap's suggestions, or nothing.
fn did_you_mean(err: &clap::Error) -> String {
    let mut names = list(err, ContextKind::SuggestedArg);
    names.extend(list(err, ContextKind::SuggestedValue));
    names.extend(list(err, ContextKind::SuggestedSubcommand));
    match names.first() {
        Some(n) => format!(" (did you mean '{}'?)", shown(n)),
        None => String::new(),
    }
}

/// clap's refusal `err` of `argv` as one line (without the `bcvk: error: ` prefix).
pub fn one_line(err: &clap::Error, argv: &[OsString]) -> String {
    let help = format!("see bcvk {} --help", subcommand(argv));
    let arg = text(err, ContextKind::InvalidArg)
        .map(|a| option_name(&a))
        .unwrap_or_else(|| "an option".into());
    let value = text(err, ContextKind::InvalidValue).map(|v| shown(&v));
    let line = match err.kind() {
        ErrorKind::ValueValidation => {
            let reason = std::error::Error::source(err)
                .map(|s| s.to_string())
                .unwrap_or_default();
            // bcvk's own parsers name the value, the option and what to give instead.
            if reason.contains(&format!("for {arg}")) {
                reason
            } else {
                format!(
                    "invalid value '{}' for {arg}: {reason}",
                    value.unwrap_or_default()
                )
            }
        }
        ErrorKind::InvalidValue => {
            let valid = list(err, ContextKind::ValidValue);
            match value.as_deref() {
                Some("") | None if valid.is_empty() => {
                    let spec = text(err, ContextKind::InvalidArg).unwrap_or_default();
                    format!("{arg} needs a value: {}", shown(&spec))
                }
                Some("") | None => format!("{arg} needs a value: one of {}", valid.join(", ")),
                Some(v) => format!(
                    "invalid value '{v}' for {arg}: use one of {}{}",
                    valid.join(", "),
                    did_you_mean(err)
                ),
            }
        }
        ErrorKind::UnknownArgument => unknown_argument(err, argv, &help),
        ErrorKind::ArgumentConflict => {
            let prior: Vec<String> = list(err, ContextKind::PriorArg)
                .iter()
                .map(|p| option_name(p))
                .collect();
            if prior.is_empty() || prior == [arg.clone()] {
                format!("{arg} is given more than once: give it once")
            } else {
                format!(
                    "{arg} cannot be used with {}: drop one of them",
                    prior.join(", ")
                )
            }
        }
        ErrorKind::MissingRequiredArgument => {
            let missing: Vec<String> = list(err, ContextKind::InvalidArg)
                .iter()
                .map(|a| option_name(a))
                .collect();
            format!("{} is missing: {help}", missing.join(", "))
        }
        ErrorKind::NoEquals => format!("{arg} takes its value after '=': {arg}=VALUE"),
        ErrorKind::TooManyValues => format!(
            "unexpected value '{}' for {arg}: it takes one value",
            value.unwrap_or_default()
        ),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("{arg} has the wrong number of values: {help}")
        }
        ErrorKind::InvalidUtf8 => {
            "an argument is not valid UTF-8: give options and values as UTF-8 text".into()
        }
        ErrorKind::InvalidSubcommand => format!(
            "unknown subcommand '{}'{}: see bcvk --help",
            shown(&text(err, ContextKind::InvalidSubcommand).unwrap_or_default()),
            did_you_mean(err)
        ),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            "no image given: bcvk IMAGE [OPTIONS] [-- COMMAND...] (see bcvk --help)".into()
        }
        _ => format!("{}: {help}", first_line(err)),
    };
    line.replace(|c: char| c.is_control(), " ")
}

/// clap's own first line, without its `error: ` prefix, cut to a readable length.
fn first_line(err: &clap::Error) -> String {
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or("");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.char_indices().nth(2 * MAX_SHOWN) {
        Some((cut, _)) => format!("{}...", &first[..cut]),
        None => first.to_string(),
    }
}

/// An argument clap does not know. When it follows an option that takes a value (`--vcpus
/// -1`), clap took it for an option: the two are parsed again joined (`--vcpus=-1`), so the
/// line says what is wrong with the value, or how to pass it (`--karg=-x`).
fn unknown_argument(err: &clap::Error, argv: &[OsString], help: &str) -> String {
    let mut unknown = text(err, ContextKind::InvalidArg).unwrap_or_default();
    // `-svm` is refused as its first short flag, `-s`: the word is what was meant.
    let at = argv
        .iter()
        .position(|a| a.to_str() == Some(&unknown))
        .or_else(|| {
            argv.iter().position(|a| {
                a.to_str().is_some_and(|w| {
                    unknown.len() == 2 && !w.starts_with("--") && w.starts_with(&unknown)
                })
            })
        });
    if let Some(word) = at.and_then(|i| argv[i].to_str()) {
        unknown = word.to_string();
    }
    let option = at
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| argv[i].to_str())
        .filter(|o| takes_value(argv, o));
    if let (Some(at), Some(option)) = (at, option) {
        let joined = format!("{option}={unknown}");
        let mut again = argv[..at - 1].to_vec();
        again.push(OsString::from(&joined));
        again.extend_from_slice(&argv[at + 1..]);
        if let Err(e) = Cli::try_parse_from(&again) {
            let about_it =
                text(&e, ContextKind::InvalidArg).is_some_and(|a| option_name(&a) == option);
            if about_it
                && matches!(
                    e.kind(),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                )
            {
                return one_line(&e, &again);
            }
        }
        return format!(
            "{option} needs a value, and '{}' was taken for an option: write {}",
            shown(&unknown),
            shown(&joined)
        );
    }
    if !unknown.starts_with('-') && subcommand(argv) == "run" {
        return format!(
            "unexpected argument '{}': bcvk run takes one IMAGE; a command for the guest goes after --",
            shown(&unknown)
        );
    }
    let what = if unknown.starts_with('-') {
        "unknown option"
    } else {
        "unexpected argument"
    };
    format!("{what} '{}'{}: {help}", shown(&unknown), did_you_mean(err))
}

/// Whether `word` is the long spelling of an option that takes a value, in the subcommand
/// `argv` runs (or a global one).
fn takes_value(argv: &[OsString], word: &str) -> bool {
    let Some(long) = word.strip_prefix("--") else {
        return false;
    };
    let root = Cli::command();
    let Some(sub) = root.find_subcommand(subcommand(argv)) else {
        return false;
    };
    let found = sub
        .get_arguments()
        .chain(root.get_arguments())
        .any(|a| a.get_long() == Some(long) && a.get_action().takes_values());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(args: &[&str]) -> String {
        let mut argv: Vec<OsString> = vec!["bcvk".into()];
        argv.extend(args.iter().map(OsString::from));
        match parse(argv) {
            Err(Refusal::Usage(line)) => line,
            other => panic!("{args:?} not refused: {other:?}"),
        }
    }

    fn assert_line(line: &str) {
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.len() < 600, "{} characters: {line}", line.len());
        assert!(!line.contains("'-- "), "clap's tip: {line}");
    }

    #[test]
    fn issue_cases_are_one_line_with_the_fix() {
        let long = "a".repeat(10_000);
        for (args, wanted) in [
            (&["img", "--vcpus", "-1"][..], "--vcpus"),
            (&["img", "--frobnicate"], "unknown option '--frobnicate'"),
            (&["img", "--ready-timeout", "-5"], "--ready-timeout"),
            (
                &["img", "--memory", "1G", "--memory", "2G"],
                "--memory is given more than once",
            ),
            (
                &["img", "--log-level", "verbose"],
                "use one of error, warn, info, debug, trace",
            ),
            (&["img", "--memory", "0"], "--memory"),
            (&["img", "--itype", "u9.huge"], "u1.small"),
            (&["img", "--hostname", "hôte"], "--hostname"),
            (&["img", "--karg", "a\nb"], "control characters"),
            (&["img", "--karg", &long], "2048-byte"),
        ] {
            let line = refuse(args);
            assert_line(&line);
            assert!(line.contains(wanted), "{args:?}: {line}");
        }
    }

    #[test]
    fn a_dash_value_is_checked_or_joined() {
        let line = refuse(&["img", "--vcpus", "-1"]);
        assert!(line.contains("1 to 255"), "{line}");
        let line = refuse(&["img", "--ready-timeout", "-5"]);
        assert!(line.contains("not a number of seconds"), "{line}");
        let line = refuse(&["img", "--karg", "-x"]);
        assert!(line.contains("write --karg=-x"), "{line}");
        let line = refuse(&["img", "--cpu", "-svm"]);
        assert!(line.contains("write --cpu=-svm"), "{line}");
    }

    #[test]
    fn suggestions_are_kept() {
        let line = refuse(&["img", "--memroy", "2G"]);
        assert!(line.contains("did you mean '--memory'?"), "{line}");
        let line = refuse(&["img", "--accel", "kv"]);
        assert!(line.contains("did you mean 'kvm'?"), "{line}");
    }

    #[test]
    fn missing_and_conflicting_options() {
        let line = refuse(&["run"]);
        assert!(
            line.contains("IMAGE is missing: see bcvk run --help"),
            "{line}"
        );
        let line = refuse(&["img", "--execute", "true", "--", "true"]);
        assert!(
            line.contains("--execute cannot be used with -- COMMAND"),
            "{line}"
        );
        let line = refuse(&["img", "sh", "-c"]);
        assert!(
            line.contains("a command for the guest goes after --"),
            "{line}"
        );
        let line = refuse(&["img", "--port"]);
        assert_eq!(line, "--port needs a value: --port <HOST:GUEST>");
        let line = refuse(&[]);
        assert!(line.starts_with("no image given"), "{line}");
        let line = refuse(&["ssh", "--timeout", "x"]);
        assert!(line.contains("--timeout"), "{line}");
    }

    #[test]
    fn help_and_version_are_clap_s() {
        for flag in ["--help", "--version"] {
            let r = parse(vec!["bcvk".into(), flag.into()]).unwrap_err();
            assert!(matches!(r, Refusal::Display(_)), "{r:?}");
            assert_eq!(r.code(), 0);
        }
        let r = parse(vec!["bcvk".into(), "img".into(), "--help".into()]).unwrap_err();
        assert!(matches!(r, Refusal::Display(_)));
    }

    #[test]
    fn upstream_spellings_keep_their_line() {
        let line = refuse(&["img", "--network", "host"]);
        assert!(
            line.starts_with("--network is upstream bcvk's spelling"),
            "{line}"
        );
    }
}
