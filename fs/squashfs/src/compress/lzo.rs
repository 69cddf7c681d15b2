//! lzo (id 3): LZO1X streams (all lzo1x_* variants share one decoder). Our own bounded
//! decoder: every input read and every output write is checked, so a hostile block gives an
//! error, never a panic or an allocation.

struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("lzo: input overrun")?;
        self.pos += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, String> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(usize::from(u16::from_le_bytes([lo, hi])))
    }

    /// A length extension: a run of zero bytes (255 each) then a non-zero byte.
    fn extended(&mut self, base: usize) -> Result<usize, String> {
        let mut n = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return n
                    .checked_add(usize::from(b))
                    .ok_or_else(|| "lzo: length overflow".into());
            }
            n = n.checked_add(255).ok_or("lzo: length overflow")?;
        }
    }
}

struct Output<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Output<'_> {
    fn literals(&mut self, input: &mut Input<'_>, n: usize) -> Result<(), String> {
        let src = input
            .pos
            .checked_add(n)
            .and_then(|end| input.buf.get(input.pos..end))
            .ok_or("lzo: input overrun")?;
        let dst = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get_mut(self.pos..end))
            .ok_or("lzo: output overrun")?;
        dst.copy_from_slice(src);
        input.pos += n;
        self.pos += n;
        Ok(())
    }

    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), String> {
        if dist == 0 || dist > self.pos {
            return Err("lzo: match distance outside the output".into());
        }
        let end = self.pos.checked_add(len).ok_or("lzo: length overflow")?;
        if end > self.buf.len() {
            return Err("lzo: output overrun".into());
        }
        let from = self.pos - dist;
        for i in 0..len {
            self.buf[self.pos + i] = self.buf[from + i];
        }
        self.pos = end;
        Ok(())
    }
}

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let mut ip = Input { buf: src, pos: 0 };
    let mut op = Output { buf: dst, pos: 0 };
    // `state`: literals copied by the previous instruction (4 = a long literal run).
    let mut state: usize = 0;
    let first = *src.first().ok_or("lzo: empty input")?;
    if first >= 22 {
        ip.pos = 1;
        op.literals(&mut ip, usize::from(first - 17))?;
        state = 4;
    } else if first >= 18 {
        ip.pos = 1;
        let n = usize::from(first - 17);
        op.literals(&mut ip, n)?;
        state = n;
    }
    loop {
        let inst = usize::from(ip.byte()?);
        let (dist, len);
        if inst >= 64 {
            dist = (usize::from(ip.byte()?) << 3) + ((inst >> 2) & 7) + 1;
            len = (inst >> 5) + 1;
            state = inst & 3;
        } else if inst >= 32 {
            len = if inst & 31 == 0 {
                ip.extended(31)? + 2
            } else {
                (inst & 31) + 2
            };
            let w = ip.le16()?;
            dist = (w >> 2) + 1;
            state = w & 3;
        } else if inst >= 16 {
            len = if inst & 7 == 0 {
                ip.extended(7)? + 2
            } else {
                (inst & 7) + 2
            };
            let w = ip.le16()?;
            let d = ((inst & 8) << 11) + (w >> 2);
            if d == 0 {
                // End-of-stream marker.
                return Ok(op.pos);
            }
            dist = d + 16384;
            state = w & 3;
        } else if state == 0 {
            let n = if inst == 0 {
                ip.extended(15)? + 3
            } else {
                inst + 3
            };
            op.literals(&mut ip, n)?;
            state = 4;
            continue;
        } else if state < 4 {
            dist = (inst >> 2) + (usize::from(ip.byte()?) << 2) + 1;
            len = 2;
            state = inst & 3;
        } else {
            dist = (inst >> 2) + (usize::from(ip.byte()?) << 2) + 2049;
            len = 3;
            state = inst & 3;
        }
        op.copy_match(dist, len)?;
        op.literals(&mut ip, state)?;
    }
}

#[cfg(test)]
mod tests {
    use super::decompress;

    #[test]
    fn literal_run_then_match_then_end() {
        // 5 literals "abcde" (first byte 17+5), an M2 copy of 3 bytes from distance 5
        // (0b01_0_100_00 = 0x50, next byte 0: distance = (0<<3) + 4 + 1 = 5), then the
        // end marker 0x11 0x00 0x00.
        let src = [22, b'a', b'b', b'c', b'd', b'e', 0x50, 0x00, 0x11, 0, 0];
        let mut out = [0u8; 16];
        let n = decompress(&src, &mut out).unwrap();
        assert_eq!(&out[..n], b"abcdeabc");
        // Output bound: one byte short is an error, not a panic.
        let mut small = [0u8; 7];
        assert!(decompress(&src, &mut small).is_err());
        // A match reaching before the start of the output is an error.
        let bad = [18, b'a', 0x50, 0x00, 0x11, 0, 0];
        assert!(decompress(&bad, &mut out).is_err());
        // Truncated input is an error.
        assert!(decompress(&src[..7], &mut out).is_err());
    }
}
