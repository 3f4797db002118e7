//! `cargo test` runs every conformance case, exactly as `onedoor conformance` does.

use std::path::Path;

#[test]
fn every_conformance_case_passes_and_every_mapping_has_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let result =
        onedoor::conformance::run_suite(&root.join("conformance"), &root.join("mappings"), true);
    let report = onedoor::conformance::report::text(&result);
    assert!(
        result.cases.len() >= 25,
        "expected the shipped cases, found {}:\n{report}",
        result.cases.len()
    );
    assert!(!result.failed(), "conformance failures:\n{report}");
}
