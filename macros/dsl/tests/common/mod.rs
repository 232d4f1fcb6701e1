//! What the rule tests share: the messages of an expansion's `compile_error!`s.

use proc_macro2::TokenStream;

/// The messages of the `compile_error!`s in the expansion of `description`.
pub fn errors(description: TokenStream) -> Vec<String> {
    let out = convnet_dsl::expand(description).to_string();
    out.split("compile_error !")
        .skip(1)
        .map(|rest| {
            let start = rest.find('"').unwrap() + 1;
            let end = rest[start..]
                .find("\" ")
                .map(|e| start + e)
                .unwrap_or(rest.len());
            rest[start..end].replace("\\\"", "\"")
        })
        .collect()
}

/// Asserts that `description` expands to exactly one error containing every `expected` part.
#[track_caller]
#[allow(dead_code)] // not every test file uses it
pub fn one_error(description: TokenStream, expected: &[&str]) {
    let errs = errors(description);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    for part in expected {
        assert!(
            errs[0].contains(part),
            "`{}` does not contain `{part}`",
            errs[0]
        );
    }
}
