//! Keeps the README and the guide pages true to the examples' command lines: finds every
//! `cargo run ... --example NAME` the pages name, and every flag the README gives to an
//! example, so that the example's tests can compare them with its `--help`.
//!
//! A flag belongs to an example when it stands in a README command line that runs it, or
//! anywhere in backquotes in a README `##` section whose first command runs it, such as the
//! main job's flag table.

use std::path::{Path, PathBuf};

/// One flag a page names for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFlag {
    /// `README.md:12`: where the flag is named.
    pub place: String,
    /// The example it is given to.
    pub example: String,
    /// The subcommand before it in a command line (`score` in `classify -- score ...`), if
    /// the first argument is a word.
    pub subcommand: Option<String>,
    /// The flag, e.g. `--batch-size`.
    pub flag: String,
}

/// One example a page runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedExample {
    /// Where the command stands.
    pub place: String,
    /// The example's name.
    pub example: String,
}

/// The repository root (the facade crate's manifest folder).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages checked: the README and every `docs/*.md`.
pub fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The command lines of `text`: each line holding `--example NAME`, joined with the lines
/// it continues onto (a trailing `\`), as (line number, command).
fn command_lines(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let mut line = lines[i].trim_end().to_string();
        while line.ends_with('\\') && i + 1 < lines.len() {
            line.pop();
            i += 1;
            line.push(' ');
            line.push_str(lines[i].trim());
        }
        if line.contains("--example ") {
            out.push((start + 1, line));
        }
        i += 1;
    }
    out
}

/// The commands of one line: (example, arguments after ` -- `), a command ending at a
/// backquote, a `#` comment or the end of the line.
fn commands_in(line: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (at, _) in line.match_indices("--example ") {
        let rest = &line[at + "--example ".len()..];
        let end = rest.find(['`', '#']).unwrap_or(rest.len());
        let mut words = rest[..end].split_whitespace();
        let Some(example) = words.next() else {
            continue;
        };
        let args: Vec<String> = words
            .skip_while(|w| *w != "--")
            .skip(1)
            .map(str::to_string)
            .collect();
        out.push((example.to_string(), args));
    }
    out
}

/// The words of `args` that are flags (`--name`, `--name=value`), without values.
fn flags_of(args: &[String]) -> impl Iterator<Item = String> + '_ {
    args.iter()
        .map(|w| w.trim_start_matches('['))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(']')
                .split('=')
                .next()
                .unwrap_or(w)
                .to_string()
        })
}

/// Flags in backquotes on a line: `` `--name` `` or `` `--name VALUE` ``.
fn quoted_flags(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| !quoted.contains("--example"))
        .flat_map(|quoted| {
            quoted
                .split(|c: char| c.is_whitespace() || c == ',' || c == '|')
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| {
                    w.trim_end_matches(|c: char| !c.is_alphanumeric())
                        .split('=')
                        .next()
                        .unwrap_or(w)
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn display(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every example the pages run, with where.
pub fn named_examples() -> Vec<NamedExample> {
    let mut out = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page is readable");
        for (line_no, line) in command_lines(&text) {
            for (example, _) in commands_in(&line) {
                out.push(NamedExample {
                    place: format!("{}:{line_no}", display(&page)),
                    example,
                });
            }
        }
    }
    out
}

/// Every flag the README gives to an example (see the module's doc for the rules). The
/// guide pages' commands are checked for their examples only: the benchmarks parse their own
/// arguments.
pub fn named_flags() -> Vec<NamedFlag> {
    let mut out = Vec::new();
    {
        let page = repo_root().join("README.md");
        let text = std::fs::read_to_string(&page).expect("README.md is readable");
        let name = display(&page);
        for (line_no, line) in command_lines(&text) {
            for (example, args) in commands_in(&line) {
                let subcommand = args
                    .first()
                    .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                    .cloned();
                for flag in flags_of(&args) {
                    out.push(NamedFlag {
                        place: format!("{name}:{line_no}"),
                        example: example.clone(),
                        subcommand: subcommand.clone(),
                        flag,
                    });
                }
            }
        }
        out.extend(section_flags(&name, &text));
    }
    out
}

/// Backquoted flags in prose and tables, given to the first example a `##` section runs.
fn section_flags(name: &str, text: &str) -> Vec<NamedFlag> {
    let lines: Vec<&str> = text.lines().collect();
    let mut starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("## "))
        .collect();
    starts.insert(0, 0);
    starts.push(lines.len());
    let mut out = Vec::new();
    for pair in starts.windows(2) {
        let section = &lines[pair[0]..pair[1]];
        let example = command_lines(&section.join("\n"))
            .into_iter()
            .flat_map(|(_, l)| commands_in(&l))
            .map(|(example, _)| example)
            .next();
        let Some(example) = example else { continue };
        for (offset, line) in section.iter().enumerate() {
            if line.contains("--example ") {
                continue;
            }
            for flag in quoted_flags(line) {
                out.push(NamedFlag {
                    place: format!("{name}:{}", pair[0] + offset + 1),
                    example: example.clone(),
                    subcommand: None,
                    flag,
                });
            }
        }
    }
    out
}

/// Panics listing every flag the README gives to `example` that `command` (its clap
/// definition) does not accept, or that its `--help` does not show. A flag named after a
/// subcommand is looked up in that subcommand; one named in prose, in any of them.
#[cfg(test)]
pub fn assert_flags_exist(example: &str, command: clap::Command) {
    let mut missing = Vec::new();
    let named: Vec<NamedFlag> = named_flags()
        .into_iter()
        .filter(|f| f.example == example)
        .collect();
    let help_of = |c: &mut clap::Command| c.render_long_help().to_string();
    for flag in &named {
        let long = flag.flag.trim_start_matches("--");
        let mut scopes: Vec<clap::Command> = match &flag.subcommand {
            Some(sub) => command.find_subcommand(sub).cloned().into_iter().collect(),
            None => std::iter::once(command.clone())
                .chain(command.get_subcommands().cloned())
                .collect(),
        };
        let known = scopes.iter_mut().any(|scope| {
            let defined =
                long == "help" || scope.get_arguments().any(|a| a.get_long() == Some(long));
            let shown = help_of(scope)
                .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .any(|w| w == flag.flag);
            defined && shown
        });
        if !known {
            missing.push(format!(
                "{}: `{}` is not a flag of `{example}{}` (see its --help)",
                flag.place,
                flag.flag,
                flag.subcommand
                    .as_ref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
