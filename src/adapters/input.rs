//! Sources read from a stream: an export that arrives as a stream (standard input, an upload) is spooled
//! to a private temporary folder under the name it came with, so every [`Source`](super::source::Source)
//! opens it as it opens a path (a zip, a CSV, an XML or JSON file: adapters need to read some files twice
//! and zips need random access). The copy streams in bounded memory and is removed when the
//! [`Spooled`] input is dropped.

use super::source::SourceError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An export spooled from a stream; its folder is removed when this is dropped.
pub struct Spooled {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Spooled {
    /// Where the export is now: open it as any path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Spool `reader` to a file named `name` (its last path component only; the extension tells the adapters
/// what it is, `.zip` a zip).
pub fn spool(name: &str, reader: &mut dyn Read) -> Result<Spooled, SourceError> {
    let file_name = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| {
            SourceError::Open(format!(
                "'{name}' is not a file name to read the stream as (for example referrals.csv or export.zip)"
            ))
        })?;
    let dir = tempfile::tempdir().map_err(|e| {
        SourceError::Open(format!(
            "cannot create a folder to read the stream into: {e}"
        ))
    })?;
    let path = dir.path().join(file_name);
    let mut file = std::fs::File::create(&path)
        .map_err(|e| SourceError::Open(format!("{}: {e}", path.display())))?;
    std::io::copy(reader, &mut file)
        .map_err(|e| SourceError::Open(format!("reading the stream '{file_name}': {e}")))?;
    Ok(Spooled { _dir: dir, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_read_as_the_file_it_names() {
        let mut data: &[u8] = b"a,b\n1,2\n";
        let spooled = spool("../../etc/referrals.csv", &mut data).unwrap();
        assert!(spooled.path().ends_with("referrals.csv"));
        assert_eq!(std::fs::read(spooled.path()).unwrap(), b"a,b\n1,2\n");
        let folder = spooled.path().parent().unwrap().to_owned();
        drop(spooled);
        assert!(!folder.exists(), "the spool is removed");
        assert!(spool("..", &mut &b""[..]).is_err());
    }
}
