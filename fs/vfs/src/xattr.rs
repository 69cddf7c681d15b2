//! [`XattrData`]: answers to getxattr/listxattr, with the size-probe protocol.

use crate::errno::Errno;

/// What `getxattr` and `listxattr` answer, following the `size` the caller passed: 0 asks
/// for the size only; a buffer too small for the value is ERANGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrData {
    /// The size the value (or name list) needs.
    Size(u32),
    /// The value (or NUL-terminated name list).
    Data(Vec<u8>),
}

impl XattrData {
    /// Answer a request with buffer size `size` for `value`.
    pub fn fit(value: Vec<u8>, size: u32) -> crate::Result<XattrData> {
        let len = u32::try_from(value.len()).map_err(|_| Errno::E2BIG)?;
        if size == 0 {
            Ok(XattrData::Size(len))
        } else if len > size {
            Err(Errno::ERANGE)
        } else {
            Ok(XattrData::Data(value))
        }
    }

    /// A name list from names (each gets its terminating NUL), fitted to `size`.
    pub fn names<'a>(
        names: impl IntoIterator<Item = &'a [u8]>,
        size: u32,
    ) -> crate::Result<XattrData> {
        let mut out = Vec::new();
        for n in names {
            out.extend_from_slice(n);
            out.push(0);
        }
        XattrData::fit(out, size)
    }
}

impl Errno {
    /// Argument list too long: an xattr value over the protocol's limit.
    pub const E2BIG: Errno = Errno(libc::E2BIG);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_probe_then_value_then_erange() {
        assert_eq!(XattrData::fit(b"abc".to_vec(), 0), Ok(XattrData::Size(3)));
        assert_eq!(
            XattrData::fit(b"abc".to_vec(), 3),
            Ok(XattrData::Data(b"abc".to_vec()))
        );
        assert_eq!(XattrData::fit(b"abc".to_vec(), 2), Err(Errno::ERANGE));
        let names: [&[u8]; 2] = [b"user.a", b"user.b"];
        assert_eq!(XattrData::names(names, 0), Ok(XattrData::Size(14)));
    }
}
