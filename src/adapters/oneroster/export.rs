//! Opening a OneRoster export: a folder of CSV files, or a zip of them (extracted to a private temporary
//! folder, never outside it). File names are matched without regard to case (`userProfiles.csv`,
//! `userprofiles.csv`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why an export cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The path does not exist or cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The zip archive is unreadable.
    #[error("{path}: not a readable zip archive: {message}")]
    Zip {
        /// The path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// An export on disk, as a folder (the zip case owns its temporary folder).
pub struct Export {
    dir: PathBuf,
    _extracted: Option<tempfile::TempDir>,
}

impl Export {
    /// Open a folder or a `.zip` file.
    pub fn open(path: &Path) -> Result<Self, ExportError> {
        let io_err = |source| ExportError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        if meta.is_dir() {
            return Ok(Self {
                dir: path.to_owned(),
                _extracted: None,
            });
        }
        let temp = tempfile::tempdir().map_err(io_err)?;
        extract_zip(path, temp.path())?;
        Ok(Self {
            dir: temp.path().to_owned(),
            _extracted: Some(temp),
        })
    }

    /// The file with this name (any case), if the export has it.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let entries = fs::read_dir(&self.dir).ok()?;
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(name))
        })
    }

    /// Open the table `spec` names, if the export has it.
    pub fn table(
        &self,
        spec: &crate::adapters::csv_table::TableSpec,
        encoding: crate::adapters::csv_table::TextEncoding,
        quirks: &crate::adapters::QuirkLog,
    ) -> Result<Option<crate::adapters::csv_table::CsvTable>, crate::adapters::csv_table::TableError>
    {
        self.find(spec.file)
            .map(|p| crate::adapters::csv_table::CsvTable::open(&p, spec, encoding, quirks))
            .transpose()
    }

    /// The folder the export's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn extract_zip(path: &Path, into: &Path) -> Result<(), ExportError> {
    let zip_err = |err: zip::result::ZipError| ExportError::Zip {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let io_err = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(zip_err)?;
        // Only plain files, flattened by name: a OneRoster zip holds its CSV files at the top level, and an
        // entry's path never decides where it is written (no zip-slip).
        let Some(name) = entry
            .enclosed_name()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
        else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        let mut out = fs::File::create(into.join(name)).map_err(io_err)?;
        io::copy(&mut entry, &mut out).map_err(io_err)?;
    }
    Ok(())
}
