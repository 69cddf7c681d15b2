//! Decompressors, one wrapper per codec. Each decompresses one block into a caller buffer
//! whose length is the output bound (the block size for data, 8 KiB for metadata) and keeps
//! its state per thread, so no decoder state is built per block where the codec allows it.

mod gzip;
mod lz4;
mod lzma;
mod lzo;
mod xz;
mod zstd;

use crate::superblock::Compressor;

/// Why a block failed to decompress (turned into [`crate::Error::Corrupt`] by the caller).
pub type CodecError = String;

/// Memory limit handed to liblzma decoders: enough for a 1 MiB dictionary with margin.
pub(crate) const LZMA_MEMLIMIT: u64 = 64 << 20;

/// Decompress one block `src` written by `comp` into `dst`; returns the bytes produced.
/// Output that would not fit in `dst` is an error, never a reallocation.
pub fn decompress(comp: Compressor, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
    // No codec's block is empty (zstd alone would decode nothing to Ok(0)).
    if src.is_empty() {
        return Err(format!("{}: empty compressed block", comp.name()));
    }
    let n = match comp {
        Compressor::Gzip => gzip::decompress(src, dst)?,
        Compressor::Lzma => lzma::decompress(src, dst)?,
        Compressor::Lzo => lzo::decompress(src, dst)?,
        Compressor::Xz => xz::decompress(src, dst)?,
        Compressor::Lz4 => lz4::decompress(src, dst)?,
        Compressor::Zstd => zstd::decompress(src, dst)?,
    };
    // Nor does any decode to nothing: an empty data block is stored as a hole, and metadata
    // blocks are never empty (an LZMA-alone header of zeros declares an empty stream).
    if n == 0 {
        return Err(format!("{}: block decoded to nothing", comp.name()));
    }
    if n > dst.len() {
        return Err(format!(
            "{} produced more than {} bytes",
            comp.name(),
            dst.len()
        ));
    }
    Ok(n)
}

/// Check the compressor-options block (if any) against what the format allows.
/// `opts` is the decompressed options block; `None` when the superblock has no options flag.
pub(crate) fn check_options(comp: Compressor, opts: Option<&[u8]>) -> Result<(), String> {
    use crate::superblock::{le16, le32};
    let Some(o) = opts else {
        if comp == Compressor::Lz4 {
            // squashfs-tools always writes lz4 options; the kernel accepts their absence.
            return Ok(());
        }
        return Ok(());
    };
    let need = |n: usize| -> Result<(), String> {
        if o.len() < n {
            Err(format!(
                "{} options block is {} bytes, need {n}",
                comp.name(),
                o.len()
            ))
        } else {
            Ok(())
        }
    };
    match comp {
        Compressor::Gzip => {
            need(8)?;
            let level = le32(o, 0);
            let window = le16(o, 4);
            if !(1..=9).contains(&level) {
                return Err(format!("gzip compression level {level} not in 1..9"));
            }
            if !(8..=15).contains(&window) {
                return Err(format!("gzip window size {window} not in 8..15"));
            }
        }
        Compressor::Xz => {
            need(8)?;
            let dict = le32(o, 0);
            let filters = le32(o, 4);
            let n = dict.checked_ilog2().unwrap_or(0);
            let ok_shape =
                dict.is_power_of_two() || (n >= 1 && dict == (1u32 << n) + (1u32 << (n - 1)));
            if dict < 8192 || !ok_shape {
                return Err(format!(
                    "xz dictionary size {dict} is not 2^n or 2^n+2^(n-1)"
                ));
            }
            if filters & !0x3f != 0 {
                return Err(format!("xz BCJ filter flags {filters:#x} unknown"));
            }
        }
        Compressor::Lz4 => {
            need(8)?;
            let version = le32(o, 0);
            let flags = le32(o, 4);
            if version != 1 {
                return Err(format!(
                    "lz4 format version {version} (only 1, legacy, is known)"
                ));
            }
            if flags & !1 != 0 {
                return Err(format!("lz4 flags {flags:#x} unknown"));
            }
        }
        Compressor::Zstd => {
            need(4)?;
            let level = le32(o, 0);
            if !(1..=22).contains(&level) {
                return Err(format!("zstd compression level {level} not in 1..22"));
            }
        }
        Compressor::Lzo => {
            need(8)?;
            let algorithm = le32(o, 0);
            if algorithm > 4 {
                return Err(format!("lzo algorithm {algorithm} unknown"));
            }
        }
        Compressor::Lzma => {
            // Legacy lzma has no options; squashfs-tools never writes them.
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No codec may accept garbage, an all-zero or all-0xff block, or an empty block: each
    /// must answer Err (never Ok with made-up bytes), and never panic.
    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let scrambled: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        let inputs: [(&str, &[u8]); 4] = [
            ("scrambled", &scrambled),
            ("zeros", &[0u8; 64]),
            ("0xff", &[0xffu8; 64]),
            ("empty", &[]),
        ];
        for comp in [
            Compressor::Gzip,
            Compressor::Lzma,
            Compressor::Lzo,
            Compressor::Xz,
            Compressor::Lz4,
            Compressor::Zstd,
        ] {
            for (what, input) in inputs {
                let mut out = vec![0u8; 8192];
                let r = decompress(comp, input, &mut out);
                assert!(r.is_err(), "{comp:?}: {what} decoded to {r:?}");
                let mut small = [0u8; 4];
                let r = decompress(comp, input, &mut small);
                assert!(r.is_err(), "{comp:?}: {what} into 4 bytes decoded to {r:?}");
            }
        }
    }

    #[test]
    fn gzip_round_trip_and_bound() {
        use std::io::Write;
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        let mut out = vec![0u8; 20000];
        assert_eq!(decompress(Compressor::Gzip, &z, &mut out).unwrap(), 20000);
        assert_eq!(out, data);
        let mut short = vec![0u8; 19999];
        assert!(decompress(Compressor::Gzip, &z, &mut short).is_err());
        // Twice on the same thread: the reused state must be reset.
        assert_eq!(decompress(Compressor::Gzip, &z, &mut out).unwrap(), 20000);
    }

    #[test]
    fn zstd_and_lz4_round_trip() {
        let data: Vec<u8> = (0..50000u32).map(|i| (i / 7 % 256) as u8).collect();
        let z = ::zstd::bulk::compress(&data, 3).unwrap();
        let mut out = vec![0u8; 65536];
        assert_eq!(
            decompress(Compressor::Zstd, &z, &mut out).unwrap(),
            data.len()
        );
        assert_eq!(&out[..data.len()], &data[..]);
        let l = lz4_flex::block::compress(&data);
        assert_eq!(
            decompress(Compressor::Lz4, &l, &mut out).unwrap(),
            data.len()
        );
        assert_eq!(&out[..data.len()], &data[..]);
        let mut short = vec![0u8; 100];
        assert!(decompress(Compressor::Zstd, &z, &mut short).is_err());
        assert!(decompress(Compressor::Lz4, &l, &mut short).is_err());
    }
}
