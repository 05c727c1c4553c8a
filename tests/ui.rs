//! Compile-time behaviour of the attributes: every supported form compiles, every mistake
//! is an error at the right token with a fix (reviewed `.stderr` files).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`, then read
//! every diff before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
