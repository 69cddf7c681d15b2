//! Positioned reads from the image file: `pread` at image offset + position, bounds-checked
//! against `bytes_used` so nothing reads past the image.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

/// The image bytes: a file, the image's offset inside it, and the image length.
pub(crate) struct Source {
    file: File,
    /// Image name for error messages.
    pub(crate) name: String,
    /// Byte offset of the image inside the file.
    base: u64,
    /// Bytes the image may be read at (`bytes_used` once the superblock is checked).
    len: u64,
}

impl Source {
    pub(crate) fn new(file: File, name: &str, base: u64, len: u64) -> Source {
        Source {
            file,
            name: name.to_string(),
            base,
            len,
        }
    }

    pub(crate) fn set_len(&mut self, len: u64) {
        self.len = len;
    }

    /// Image length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// An [`Error::Corrupt`] naming this image.
    pub(crate) fn corrupt(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::corrupt(&self.name, offset, what)
    }

    /// Fill `buf` from image-relative `pos`; `what` names the structure for errors.
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8], what: &str) -> Result<()> {
        let end = pos.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(self.corrupt(
                pos,
                format!(
                    "{what} of {} bytes runs past the end of the image ({})",
                    buf.len(),
                    self.len
                ),
            ));
        }
        let abs = self
            .base
            .checked_add(pos)
            .ok_or_else(|| self.corrupt(pos, "offset overflow"))?;
        self.file.read_exact_at(buf, abs).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.corrupt(pos, format!("{what}: file truncated"))
            } else {
                Error::Io {
                    image: self.name.clone(),
                    offset: abs,
                    source: e,
                }
            }
        })
    }
}
