//! RFC 4122 UUIDs: random v4 generation from /dev/urandom and canonical text form.

use std::io::Read;

/// A fresh random (version 4, RFC 4122 variant) UUID read from `/dev/urandom`.
pub fn new_v4() -> std::io::Result<[u8; 16]> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// Canonical lowercase text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_bits_and_format() {
        let u = new_v4().unwrap();
        assert_eq!(u[6] >> 4, 4);
        assert_eq!(u[8] >> 6, 2);
        let s = format(&u);
        assert_eq!(s.len(), 36);
        assert_ne!(new_v4().unwrap(), u);
        let fixed = [
            0x3f, 0xa8, 0x02, 0xcc, 0x35, 0x8b, 0x45, 0xe3, 0xbc, 0xc0, 0x69, 0xdc, 0x7a, 0x45,
            0xf9, 0xf8,
        ];
        assert_eq!(format(&fixed), "3fa802cc-358b-45e3-bcc0-69dc7a45f9f8");
    }
}
