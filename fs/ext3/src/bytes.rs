//! Little-endian field readers that never panic: a field outside the buffer reads as 0
//! (callers check sizes first; this only keeps a missed check from becoming a panic).

/// The byte at `off`.
pub fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// The little-endian u16 at `off`.
pub fn le16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.saturating_add(2)) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// The little-endian u32 at `off`.
pub fn le32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.saturating_add(4)) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// The big-endian u32 at `off` (the journal's byte order).
pub fn be32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.saturating_add(4)) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_out_of_range() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(le16(&b, 0), 0x0201);
        assert_eq!(le32(&b, 1), 0x0504_0302);
        assert_eq!(be32(&b, 0), 0x0102_0304);
        assert_eq!(le32(&b, 2), 0);
        assert_eq!(u8_at(&b, 9), 0);
        assert_eq!(le16(&b, usize::MAX), 0);
    }
}
