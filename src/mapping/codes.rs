//! Code tables: CSV files under `mappings/<adapter>/codes/` with the columns
//! `source_code,system,code,display`, used by the `code('table')` filter to turn a source code into a FHIR
//! Coding. Source codes match without regard to case or surrounding spaces.

use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One Coding a source code maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coding {
    /// The code system URI (may be empty for plain FHIR codes such as `gender`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system: String,
    /// The code.
    pub code: String,
    /// The display text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display: String,
}

/// A loaded code table. Its keys come from the mapping's own files, so the fast hasher is safe here (a
/// lookup is one per coded field of every record).
#[derive(Debug, Clone, Default)]
pub struct CodeTable {
    entries: FxHashMap<String, Coding>,
    source_codes: Vec<String>,
}

impl CodeTable {
    /// The Coding for a source code.
    pub fn lookup(&self, source_code: &str) -> Option<&Coding> {
        let code = crate::text::trim(source_code);
        // Most codes are already lower-case ASCII: looked up as they are, without a lower-cased copy.
        if code
            .bytes()
            .all(|byte| byte.is_ascii() && !byte.is_ascii_uppercase())
        {
            return self.entries.get(code);
        }
        self.entries.get(&normalize(code))
    }

    /// The source codes, in file order (for error messages).
    pub fn source_codes(&self) -> &[String] {
        &self.source_codes
    }
}

/// Why a code table cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct CodeTableError {
    /// The file.
    pub file: String,
    /// The line, when one is at fault.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// All code tables of one adapter folder, by name (file stem).
pub type CodeTables = BTreeMap<String, CodeTable>;

/// Load every `codes/*.csv` of a mapping folder. Problems are collected, not stopped at.
pub fn load_dir(dir: &Path) -> (CodeTables, Vec<CodeTableError>) {
    let mut tables = CodeTables::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("codes")) else {
        return (tables, errors);
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load(&path) {
            Ok(table) => {
                tables.insert(name, table);
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    (tables, errors)
}

/// Load one code table.
pub fn load(path: &Path) -> Result<CodeTable, Vec<CodeTableError>> {
    let file = path.display().to_string();
    let err = |line, message: String| CodeTableError {
        file: file.clone(),
        line,
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| vec![err(None, e.to_string())])?;
    let headers = reader
        .headers()
        .map_err(|e| vec![err(Some(1), e.to_string())])?
        .clone();
    let expected = ["source_code", "system", "code", "display"];
    if headers.iter().map(str::trim).collect::<Vec<_>>() != expected {
        return Err(vec![err(
            Some(1),
            format!(
                "header must be {} (found {})",
                expected.join(","),
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )]);
    }
    let mut table = CodeTable::default();
    let mut errors = Vec::new();
    for record in reader.records() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map(|p| p.line());
        match record {
            Err(e) => errors.push(err(line, e.to_string())),
            Ok(r) if r.len() != 4 || r[0].trim().is_empty() || r[2].trim().is_empty() => errors
                .push(err(
                    line,
                    "expected source_code,system,code,display with source_code and code filled"
                        .into(),
                )),
            Ok(r) => {
                let key = normalize(&r[0]);
                if table.entries.contains_key(&key) {
                    errors.push(err(
                        line,
                        format!("duplicate source_code '{}'", r[0].trim()),
                    ));
                    continue;
                }
                table.source_codes.push(r[0].trim().to_owned());
                let coding = Coding {
                    system: r[1].trim().to_owned(),
                    code: r[2].trim().to_owned(),
                    display: r[3].trim().to_owned(),
                };
                table.entries.insert(key, coding);
            }
        }
    }
    if errors.is_empty() {
        Ok(table)
    } else {
        Err(errors)
    }
}

fn normalize(code: &str) -> String {
    code.trim().to_lowercase()
}
