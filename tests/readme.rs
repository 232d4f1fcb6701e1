//! The README and the guide pages name only examples that exist, and every example the
//! README gives flags to checks them against its `--help` in its own tests
//! (`examples/readme_check`).

#[path = "../examples/readme_check/mod.rs"]
#[allow(dead_code)]
mod readme_check;

use readme_check::{named_examples, named_flags, repo_root};
use std::collections::BTreeSet;

#[test]
fn every_example_the_pages_run_exists() {
    let examples = named_examples();
    assert!(
        examples.iter().any(|e| e.example == "cats_vs_dogs"),
        "the README's main-job command was not found: the parser is broken"
    );
    let missing: Vec<String> = examples
        .iter()
        .filter(|e| {
            let dir = repo_root().join("examples");
            !dir.join(format!("{}.rs", e.example)).is_file()
                && !dir.join(&e.example).join("main.rs").is_file()
        })
        .map(|e| format!("{}: no example `{}`", e.place, e.example))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_example_given_flags_checks_them_in_its_tests() {
    let flags = named_flags();
    assert!(
        flags.iter().filter(|f| f.example == "cats_vs_dogs").count() >= 10,
        "the main job's flag table was not found in README.md: the parser is broken"
    );
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let examples: BTreeSet<&str> = flags.iter().map(|f| f.example.as_str()).collect();
    for example in examples {
        let source = std::fs::read_to_string(repo_root().join(format!("examples/{example}.rs")))
            .unwrap_or_else(|e| panic!("examples/{example}.rs: {e}"));
        assert!(
            source.contains(&format!("readme_check::assert_flags_exist(\"{example}\"")),
            "examples/{example}.rs takes flags in README.md but no test checks them: add \
             `readme_check::assert_flags_exist(\"{example}\", Args::command())` to its tests"
        );
        assert!(
            manifest.contains(&format!("name = \"{example}\"\ntest = true")),
            "Cargo.toml: example `{example}` needs `test = true` so that its flag check runs"
        );
    }
}
