//! Compile-fail tests: every class of description mistake is one spanned error with a
//! reviewed message (snapshots in `tests/ui/*.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
