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
    let folder = path.parent().unwrap_or(Path::new("."));
    let (codes, code_errors) = codes::load_dir(folder);
    Ok(LoadedMapping {
        path: path.to_owned(),
        text,
        file,
        codes,
        code_errors,
    })
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

/// Find a mapping by name and load it.
pub fn find(dir: &Path, name: &str) -> Result<LoadedMapping, MappingError> {
    let mut known = Vec::new();
    for path in mapping_files(dir) {
        match load(&path) {
            Ok(loaded) if loaded.name() == name => return Ok(loaded),
            Ok(loaded) => known.push(loaded.name().to_owned()),
            Err(problem) if path.file_stem().is_some_and(|s| s == name) => {
                return Err(MappingError::Problems(vec![problem]));
            }
            Err(_) => {}
        }
    }
    Err(MappingError::NotFound {
        name: name.to_owned(),
        dir: dir.display().to_string(),
        known: known.join(", "),
    })
}
