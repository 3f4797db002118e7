//! Finding and loading mapping files: `mappings/<adapter>/<mapping>.toml` with `codes/*.csv` beside them.

use super::codes::{self, CodeTableError, CodeTables};
use super::engine::MappingProblem;
use super::model::{MappingFile, line_of};
use std::path::{Path, PathBuf};

/// A mapping file read from disk, with its code tables.
#[derive(Debug, Clone)]
pub struct LoadedMapping {
    /// The file.
    pub path: PathBuf,
    /// Its text (for line numbers).
    pub text: String,
    /// Its parsed content.
    pub file: MappingFile,
    /// The code tables of its folder.
    pub codes: CodeTables,
    /// Problems found in those code tables.
    pub code_errors: Vec<CodeTableError>,
}

impl LoadedMapping {
    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.file.mapping.name
    }

    /// The path as shown in messages.
    pub fn display_path(&self) -> String {
        self.path.display().to_string()
    }
}

/// Why a mapping cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// No mapping has that name.
    #[error("no mapping named '{name}' under {dir} (known: {known})")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The folder searched.
        dir: String,
        /// The names found.
        known: String,
    },
    /// The mapping has problems.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<MappingProblem>),
}

/// Read and parse one mapping file. A TOML or schema error is a problem with its line.
pub fn load(path: &Path) -> Result<LoadedMapping, MappingProblem> {
    let (text, file) = read(path)?;
    Ok(with_codes(path, text, file))
}

/// A mapping file's text and parsed content (its code tables not read yet).
fn read(path: &Path) -> Result<(String, MappingFile), MappingProblem> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| MappingProblem {
        file: shown.clone(),
        line: 1,
        message: format!("cannot read: {err}"),
    })?;
    let file: MappingFile = toml::from_str(&text).map_err(|err| MappingProblem {
        file: shown.clone(),
        line: err.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
        message: err.message().to_owned(),
    })?;
    Ok((text, file))
}

/// A mapping read from `path`, with the code tables of its folder.
fn with_codes(path: &Path, text: String, file: MappingFile) -> LoadedMapping {
    let folder = path.parent().unwrap_or(Path::new("."));
    let (codes, code_errors) = codes::load_dir(folder);
    LoadedMapping {
        path: path.to_owned(),
        text,
        file,
        codes,
        code_errors,
    }
}

/// Every mapping file under a mappings folder (`<dir>/<adapter>/*.toml`), sorted.
pub fn mapping_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(adapters) = std::fs::read_dir(dir) else {
        return files;
    };
    for adapter in adapters
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
    {
        let Ok(entries) = std::fs::read_dir(&adapter) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml")),
        );
    }
    files.sort();
    files
}

/// Find a mapping by name and load it. A file named after the mapping (`student-referrals.toml`) is read
/// first, so a run reads no other mapping (nor other folders' code tables) when the names agree; the others
/// are read, in order, only when it is not there or names another mapping.
pub fn find(dir: &Path, name: &str) -> Result<LoadedMapping, MappingError> {
    let named_after = |path: &PathBuf| path.file_stem().is_some_and(|s| s == name);
    let (named, others): (Vec<PathBuf>, Vec<PathBuf>) =
        mapping_files(dir).into_iter().partition(named_after);
    let mut known = Vec::new();
    for path in named.iter().chain(&others) {
        match read(path) {
            Ok((text, file)) if file.mapping.name == name => {
                return Ok(with_codes(path, text, file));
            }
            Ok((_, file)) => known.push((path.clone(), file.mapping.name)),
            Err(problem) if named_after(path) => {
                return Err(MappingError::Problems(vec![problem]));
            }
            Err(_) => {}
        }
    }
    known.sort();
    Err(MappingError::NotFound {
        name: name.to_owned(),
        dir: dir.display().to_string(),
        known: known
            .into_iter()
            .map(|(_, name)| name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings");

    fn copy(from: &str, to: &Path) {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(MAPPINGS).join(from), to).unwrap();
    }

    #[test]
    fn finds_a_mapping_by_its_name_whatever_its_file_is_called() {
        let dir = tempfile::tempdir().unwrap();
        // The file named `student-referrals.toml` holds another mapping; the one named so is elsewhere.
        copy(
            "hsds/hsds-3.0.toml",
            &dir.path().join("a/student-referrals.toml"),
        );
        copy(
            "referral-csv/student-referrals.toml",
            &dir.path().join("b/renamed.toml"),
        );
        let found = find(dir.path(), "student-referrals").unwrap();
        assert_eq!(found.name(), "student-referrals");
        assert!(found.path.ends_with("b/renamed.toml"), "{:?}", found.path);
        let found = find(dir.path(), "hsds-3.0").unwrap();
        assert!(found.path.ends_with("a/student-referrals.toml"));
        match find(dir.path(), "nothing") {
            Err(MappingError::NotFound { known, .. }) => {
                assert_eq!(known, "hsds-3.0, student-referrals")
            }
            other => panic!("expected not found, got {other:?}"),
        }
    }

    #[test]
    fn a_broken_file_named_after_the_mapping_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x/broken.toml"), "[mapping\n").unwrap();
        match find(dir.path(), "broken") {
            Err(MappingError::Problems(problems)) => {
                assert!(problems[0].file.ends_with("broken.toml"), "{problems:?}")
            }
            other => panic!("expected the file's problem, got {other:?}"),
        }
    }
}
