//! A file being written whose pages the kernel starts writing to disk as the run goes, so that the fsync
//! at its end waits only for the last few megabytes.
//!
//! `convert` stages its output in a temporary file and fsyncs it before renaming it over the target
//! (nothing reported written is lost). Written without this, the 95 MB of a 20,000-row run sat in the page
//! cache until that fsync, which then took 35 ms with every other core idle (BENCHMARKS.md, issue 13
//! thirteenth round). Every [`WRITEBACK_BYTES`] written, the range just written is handed to the kernel's
//! writeback (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which starts the writes and returns: RocksDB's
//! `bytes_per_sync`). Only a hint: the fsync at the end is still what makes the file durable, and it reports
//! any error; a hint that fails (a pipe, another system) is ignored. Elsewhere than Linux it does nothing.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two writeback hints.
const WRITEBACK_BYTES: u64 = 8 * 1024 * 1024;

/// `file`, with writeback started every [`WRITEBACK_BYTES`].
pub struct Writeback {
    file: File,
    /// Bytes written so far, and where the range not yet handed to writeback starts.
    written: u64,
    handed: u64,
}

impl Writeback {
    pub fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            handed: 0,
        }
    }

    fn hand_over(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(offset), Ok(length)) = (
                libc::off64_t::try_from(self.handed),
                libc::off64_t::try_from(self.written - self.handed),
            ) else {
                return;
            };
            // SAFETY: a plain system call on a descriptor this value owns; it reads no memory of ours.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    offset,
                    length,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.handed = self.written;
    }
}

impl Write for Writeback {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let count = self.file.write(bytes)?;
        self.written += count as u64;
        if self.written - self.handed >= WRITEBACK_BYTES {
            self.hand_over();
        }
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What is written is the file's content, across several writeback hints and a partial last range.
    #[test]
    fn writes_what_it_is_given_across_hints() {
        let mut file = tempfile::tempfile().unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        let mut out = Writeback::new(file.try_clone().unwrap());
        for _ in 0..20 {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
        assert_eq!(out.written, 20_000_060);
        assert_eq!(out.handed, 18_000_054, "a hint after 9 and after 18 writes");
        let mut back = Vec::new();
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 20_000_060);
        assert!(
            back.chunks(1_000_003)
                .all(|piece| piece == chunk.as_slice())
        );
    }
}
