//! Compile-fail tests: every class of description mistake is one spanned error with a
//! reviewed message (snapshots in `tests/ui/*.stderr`); `tests/ui_pass` holds programs that
//! must compile and run (API hygiene such as the prelude leaving `std`'s `Result` alone).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui_pass/*.rs");
}
