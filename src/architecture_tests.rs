//! The flow is one-way: the module pairs that used to import each other no longer do, and the lower layers
//! (`record`, `store`, `mapping`, `config`) do not import the stages above them. Read from the sources under
//! `src/` at test time, so reintroducing a cycle fails `cargo test --lib`.

use std::path::{Path, PathBuf};

/// The `src/` folder of this crate.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file at `relative` (a file, or a folder walked recursively), with its text.
fn sources(relative: &str) -> Vec<(String, String)> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|entry| entry.expect("directory entry").path())
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path.to_owned());
        }
    }
    let root = src().join(relative);
    assert!(root.exists(), "{} does not exist", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = file
                .strip_prefix(src())
                .unwrap_or(&file)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

/// The lines of the code (comments left out) that name `path` (`crate::adapters`, `super::csv`), as
/// `file:line: text`. A path is named by a `use` (also grouped: `use crate::{adapters, ...}`) or written in
/// full in an expression or a type.
fn naming(relative: &str, path: &str) -> Vec<String> {
    // `crate::adapters` → (`crate::{`, `adapters`), to find it in grouped imports.
    let (parent, last) = path.rsplit_once("::").expect("a path with ::");
    let group = format!("{parent}::{{");
    let mut found = Vec::new();
    for (file, text) in sources(relative) {
        let code: Vec<&str> = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect();
        for (index, line) in code.iter().enumerate() {
            let mut named = names(line, path);
            if !named && line.contains(&group) {
                // The grouped import, to its `;`.
                let mut statement = String::new();
                for part in &code[index..] {
                    statement.push_str(part);
                    statement.push(' ');
                    if part.contains(';') {
                        break;
                    }
                }
                let inside = &statement[statement.find(&group).unwrap_or(0) + group.len()..];
                named = inside.split([',', '{', '}', ';']).any(|item| {
                    item.split_whitespace()
                        .next()
                        .and_then(|p| p.split("::").next())
                        == Some(last)
                });
            }
            if named {
                found.push(format!("{file}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    found
}

/// `code` holds `path` as a whole path (`crate::adapters`, not `crate::adapters_x`).
fn names(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| {
        !code[at + path.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// `relative` (a file or folder under `src/`) names none of `paths`.
fn assert_does_not_name(relative: &str, paths: &[&str], why: &str) {
    let found: Vec<String> = paths.iter().flat_map(|p| naming(relative, p)).collect();
    assert!(
        found.is_empty(),
        "src/{relative} must not import {paths:?} ({why}):\n{}",
        found.join("\n")
    );
}

#[test]
fn flow_is_one_way() {
    // The pairs that imported each other: each keeps one direction only.
    // validation → canonical (the profile rules); canonical never reaches validation.
    assert!(!naming("validation/mod.rs", "crate::canonical::profile").is_empty());
    assert_does_not_name(
        "canonical",
        &["crate::validation"],
        "profile::check returns its own violations; validation turns them into issues",
    );
    // HSDS: decode (JSON) → csv; both → records. csv never reaches decode.
    assert_does_not_name(
        "adapters/hsds/csv.rs",
        &["super::decode", "crate::adapters::hsds::decode"],
        "the records both build are in hsds/records.rs",
    );
    assert_does_not_name(
        "adapters/hsds/records.rs",
        &[
            "super::decode",
            "super::csv",
            "crate::adapters::hsds::decode",
            "crate::adapters::hsds::csv",
        ],
        "records.rs is below both readers",
    );
    // The lower layers do not import the stages above them.
    assert_does_not_name(
        "config.rs",
        &["crate::pipeline"],
        "OutputFormat is in crate::record",
    );
    assert_does_not_name(
        "store",
        &["crate::adapters"],
        "Sighting is in crate::record",
    );
    assert_does_not_name(
        "mapping",
        &["crate::adapters"],
        "the record types are in crate::record",
    );
    assert_does_not_name(
        "gateway",
        &["crate::delivery", "crate::http", "crate::cli"],
        "the outbox and the API call the gateway, never the reverse",
    );
    assert_does_not_name(
        "store",
        &["crate::gateway", "crate::delivery", "crate::http"],
        "the store is below every stage that uses it",
    );
    assert_does_not_name(
        "record",
        &[
            "crate::adapters",
            "crate::mapping",
            "crate::pipeline",
            "crate::store",
            "crate::config",
            "crate::validation",
            "crate::canonical",
        ],
        "record is below every stage",
    );
}
