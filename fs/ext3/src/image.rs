//! [`ImageFile`]: all I/O on the image, as `pread64`/`pwrite64` on one descriptor opened with
//! `open64`.
//!
//! Apptainer serves overlay partitions of SIF files by preloading a shim that hooks exactly
//! `open64`, `pread64` and `pwrite64` and shifts offsets; so this driver never uses `mmap`,
//! `lseek`+`read` or anything else on the image. An `offset` (the start of the filesystem in
//! the file, for SIF partitions) can also be given directly.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The image file: one descriptor, a base offset and the usable length.
#[derive(Debug)]
pub struct ImageFile {
    fd: OwnedFd,
    base: u64,
    len: u64,
    name: Arc<str>,
    writable: bool,
}

impl ImageFile {
    /// Open `path` with `open64` (read-write unless `read_only`), the filesystem starting at
    /// byte `offset` of it.
    pub fn open(path: &Path, offset: u64, read_only: bool) -> Result<ImageFile> {
        let name: Arc<str> = Arc::from(path.display().to_string());
        let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            Error::io(
                &name,
                0,
                "opening the image",
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })?;
        let flags = libc::O_CLOEXEC
            | if read_only {
                libc::O_RDONLY
            } else {
                libc::O_RDWR
            };
        // SAFETY: `cpath` is a NUL-terminated string that outlives the call; open64 has no
        // other preconditions.
        let fd = unsafe { libc::open64(cpath.as_ptr(), flags) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::io(&name, 0, "opening the image", e));
        }
        // SAFETY: `fd` was just returned by open64 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = std::fs::File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&name, 0, "stat of the image", e))?;
        let total = if std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
            block_device_size(&file).map_err(|e| Error::io(&name, 0, "size of the device", e))?
        } else {
            meta.len()
        };
        if offset > total {
            return Err(Error::io(
                &name,
                offset,
                format!("image offset {offset} is past the end of the file ({total} bytes)"),
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        Ok(ImageFile {
            fd: OwnedFd::from(file),
            base: offset,
            len: total - offset,
            name,
            writable: !read_only,
        })
    }

    /// The image's name (its path), as errors show it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Bytes from the filesystem's start to the end of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no byte of the filesystem.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the descriptor was opened for writing.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Fill `buf` from byte `pos` of the filesystem; reading past the end is an error.
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        let end = pos.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(
                &self.name,
                None,
                Some(pos),
                format!(
                    "read of {} bytes past the end of the image ({} bytes)",
                    buf.len(),
                    self.len
                ),
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = self.base + pos + done as u64;
            let Ok(at) = i64::try_from(at) else {
                return Err(Error::corrupt(
                    &self.name,
                    None,
                    Some(pos),
                    "offset overflow",
                ));
            };
            let rest = &mut buf[done..];
            // SAFETY: the pointer and length describe the live, writable slice `rest`; the
            // descriptor is open for the lifetime of `self`.
            let n = unsafe {
                libc::pread64(
                    self.fd.as_raw_fd(),
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    at,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(&self.name, pos + done as u64, "pread", e));
            }
            if n == 0 {
                return Err(Error::io(
                    &self.name,
                    pos + done as u64,
                    "the image ended early",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            done += n as usize;
        }
        Ok(())
    }
}

impl ImageFile {
    /// Write all of `buf` at byte `pos` of the filesystem (inside the image only).
    pub fn write_all_at(&self, buf: &[u8], pos: u64) -> Result<()> {
        let end = pos.checked_add(buf.len() as u64);
        if !self.writable || end.is_none_or(|e| e > self.len) {
            return Err(Error::io(
                &self.name,
                pos,
                format!(
                    "write of {} bytes refused (read-only or past the end)",
                    buf.len()
                ),
                std::io::Error::from_raw_os_error(libc::EROFS),
            ));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = i64::try_from(self.base + pos + done as u64)
                .map_err(|_| Error::corrupt(&self.name, None, Some(pos), "offset overflow"))?;
            let rest = &buf[done..];
            // SAFETY: the pointer and length describe the live slice `rest`; the descriptor
            // is open for the lifetime of `self`.
            let n = unsafe {
                libc::pwrite64(self.fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(&self.name, pos + done as u64, "pwrite", e));
            }
            if n == 0 {
                return Err(Error::io(
                    &self.name,
                    pos + done as u64,
                    "pwrite wrote nothing",
                    std::io::Error::from(std::io::ErrorKind::WriteZero),
                ));
            }
            done += n as usize;
        }
        Ok(())
    }

    /// Flush written data to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<()> {
        // SAFETY: the descriptor is open for the lifetime of `self`.
        if unsafe { libc::fdatasync(self.fd.as_raw_fd()) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::io(&self.name, 0, "fdatasync", e));
        }
        Ok(())
    }
}

/// The size of a block device, asked with the BLKGETSIZE64 ioctl.
fn block_device_size(file: &std::fs::File) -> std::io::Result<u64> {
    const BLKGETSIZE64: libc::Ioctl = 0x8008_1272_u32 as libc::Ioctl;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_an_offset_and_refuses_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let img = ImageFile::open(&p, 3, true).unwrap();
        assert_eq!(img.len(), 7);
        let mut buf = [0u8; 4];
        img.read_exact_at(&mut buf, 2).unwrap();
        assert_eq!(&buf, b"5678");
        let err = img.read_exact_at(&mut buf, 5).unwrap_err();
        assert!(err.to_string().contains(&*p.display().to_string()), "{err}");
        assert!(ImageFile::open(&p, 11, true).is_err());
        let missing = ImageFile::open(&dir.path().join("nope"), 0, true).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
