//! The `file` destination kind: released records appended to an NDJSON file (a file drop a receiving
//! agency picks up), with their obligations in a side file beside it (`<file>.obligations.ndjson`, see
//! `obligations`), written before the record.
//!
//! [`append_line`] appends one record atomically: the file is opened with `O_APPEND`, the whole line goes
//! out in a single `write_all` and is made durable with `sync_data` before the delivery counts as done, so
//! concurrent appenders never interleave inside a line. If an earlier crash left a partial last line (the
//! file does not end with a newline), the next append starts with a newline: the partial line stays on a
//! line of its own (a reader skips it as invalid JSON; its record was never acknowledged, so the outbox
//! delivers it again) and is never glued to the new record. Nothing is truncated, so a line another
//! process is appending at the same moment cannot be cut off.
//!
//! [`NdjsonFileDestination`] writes to any writer (`onedoor convert` gives it a temporary file that
//! replaces the output only when the run succeeds), and the obligation side file to another.

use super::destination::{BoxFuture, Delivery, Destination, Outcome, Payload};
use super::encode::fhir_json_line;
use super::obligations;
use super::registry::{BuildError, Kind, LocalOutput, Spec};
use crate::consent::Released;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The registry entry.
pub const KIND: Kind = Kind {
    name: "file",
    remote: false,
    build,
};

/// A writer the file kind may be given (standard output, a staged file).
pub type Stream = Box<dyn Write + Send>;

/// The `file` kind: appends to the configured file, or writes to the stream it was given.
pub enum FileDrop {
    /// Append each record to the file (and its side file) atomically.
    Append(PathBuf),
    /// Write to a stream (the CLI's output).
    Stream(Mutex<NdjsonFileDestination<Stream>>),
}

fn build(spec: Spec<'_>) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(match spec.output {
        Some(LocalOutput::Stream { out, side }) => FileDrop::Stream(Mutex::new(match side {
            Some(side) => NdjsonFileDestination::with_side_file(out, side),
            None => NdjsonFileDestination::new(out),
        })),
        Some(LocalOutput::Folder { .. }) => {
            return Err(BuildError::new(
                spec.name,
                "kind",
                "a file destination writes a file, not a folder",
            ));
        }
        None => FileDrop::Append(PathBuf::from(&spec.destination.endpoint)),
    }))
}

impl FileDrop {
    fn write(&self, released: &Released<Value>) -> Outcome {
        match self {
            Self::Append(path) => {
                let side = obligations::side_file_for(path);
                if let Err(err) = obligations::append(&side, released) {
                    return Outcome::retry(format!("{}: {err}", side.display()));
                }
                Outcome::of_io(append_line(path, &fhir_json_line(released)), path)
            }
            Self::Stream(stream) => match stream.lock() {
                Ok(mut stream) => Outcome::of_io(stream.deliver(released), Path::new("output")),
                Err(_) => Outcome::permanent("the output failed in an earlier write"),
            },
        }
    }
}

impl Destination for FileDrop {
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match delivery.payload {
                Payload::Released(released) => self.write(released),
                Payload::Notification(_) => {
                    Outcome::permanent("a file destination takes no notifications")
                }
            }
        })
    }

    fn finish(&self) -> std::io::Result<()> {
        match self {
            Self::Append(_) => Ok(()),
            Self::Stream(stream) => stream
                .lock()
                .map_err(|_| std::io::Error::other("the output failed in an earlier write"))?
                .flush(),
        }
    }
}

/// Writes each released record as one NDJSON line (and, with a side file, the obligations it carries: see
/// `obligations`).
pub struct NdjsonFileDestination<W: Write> {
    out: W,
    side: Option<Stream>,
    /// Side-file lines written.
    pub obligation_lines: u64,
}

impl<W: Write> NdjsonFileDestination<W> {
    /// Write to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            side: None,
            obligation_lines: 0,
        }
    }

    /// Write to `out`, and the obligation line of each released record that carries one to `side` (before
    /// the record).
    pub fn with_side_file(out: W, side: Stream) -> Self {
        Self {
            out,
            side: Some(side),
            obligation_lines: 0,
        }
    }

    /// Write one released record (its obligation line first).
    pub fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()> {
        if let (Some(side), Some(line)) = (self.side.as_mut(), obligations::line(released)) {
            side.write_all(&line)?;
            self.obligation_lines += 1;
        }
        self.out.write_all(&fhir_json_line(released))
    }

    /// Flush both writers.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(side) = self.side.as_mut() {
            side.flush()?;
        }
        self.out.flush()
    }
}

/// Append `line` (which ends with a newline) to the NDJSON file at `path`, created if missing: one write
/// on an `O_APPEND` file, then `sync_data`. A partial last line left by a crash is ended first.
pub fn append_line(path: &Path, line: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    if ends_mid_line(&mut file)? {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line);
    file.write_all(&bytes)?;
    file.sync_data()
}

/// Whether the file is non-empty and its last byte is not a newline.
fn ends_mid_line(file: &mut File) -> std::io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::append_line;

    #[test]
    fn an_append_after_a_partial_last_line_starts_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drop.ndjson");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").unwrap();
        append_line(&path, b"{\"c\":3}\n").unwrap();
        append_line(&path, b"{\"d\":4}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":\n{\"c\":3}\n{\"d\":4}\n");
    }

    #[test]
    fn appends_create_the_file_and_add_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.ndjson");
        append_line(&path, b"{\"a\":1}\n").unwrap();
        append_line(&path, b"{\"b\":2}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }
}
