//! xz (id 4): every block is a complete .xz stream whose block headers record its filter
//! chain, so BCJ filters (x86, powerpc, ia64, arm, armthumb, sparc) decode with no options.
//!
//! Each thread keeps one `lzma_stream` per decoder kind; re-initialising the same kind of
//! decoder on it makes liblzma reuse its allocations (dictionary, probability tables)
//! instead of building them for every block.

use std::cell::RefCell;

use liblzma_sys as sys;

/// Which liblzma decoder a block needs.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// A complete .xz stream (squashfs xz).
    Xz,
    /// An LZMA-alone stream (squashfs legacy lzma).
    Alone,
}

/// An `lzma_stream` owned by one thread.
struct RawStream(sys::lzma_stream);

impl RawStream {
    fn new() -> RawStream {
        // SAFETY: LZMA_STREAM_INIT is all-zero: null pointers, zero counters, zero enums.
        RawStream(unsafe { std::mem::zeroed() })
    }
}

impl Drop for RawStream {
    fn drop(&mut self) {
        // SAFETY: the stream was zero-initialised and only used through liblzma; lzma_end
        // accepts a stream with or without an initialised coder.
        unsafe { sys::lzma_end(&mut self.0) }
    }
}

thread_local! {
    static XZ: RefCell<RawStream> = RefCell::new(RawStream::new());
    static ALONE: RefCell<RawStream> = RefCell::new(RawStream::new());
}

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    run(Kind::Xz, src, dst)
}

/// Decode one whole block with this thread's decoder of `kind`.
pub(super) fn run(kind: Kind, src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    let (cell, name) = match kind {
        Kind::Xz => (&XZ, "xz"),
        Kind::Alone => (&ALONE, "lzma"),
    };
    cell.with(|c| {
        let mut guard = c.borrow_mut();
        let s = &mut guard.0;
        // SAFETY: `s` is a valid lzma_stream owned by this thread; (re)initialising a decoder
        // on it is allowed at any time and reuses the previous coder's memory.
        let ret = unsafe {
            match kind {
                Kind::Xz => sys::lzma_stream_decoder(s, super::LZMA_MEMLIMIT, 0),
                Kind::Alone => sys::lzma_alone_decoder(s, super::LZMA_MEMLIMIT),
            }
        };
        if ret != sys::LZMA_OK {
            return Err(format!("{name} decoder init failed (liblzma error {ret})"));
        }
        s.next_in = src.as_ptr();
        s.avail_in = src.len();
        s.next_out = dst.as_mut_ptr();
        s.avail_out = dst.len();
        // SAFETY: next_in/avail_in and next_out/avail_out describe the live `src` and `dst`
        // slices, which outlive this call; liblzma writes at most avail_out bytes.
        let ret = unsafe { sys::lzma_code(s, sys::LZMA_FINISH) };
        let produced = dst.len() - s.avail_out;
        s.next_in = std::ptr::null();
        s.avail_in = 0;
        s.next_out = std::ptr::null_mut();
        s.avail_out = 0;
        match ret {
            sys::LZMA_STREAM_END => Ok(produced),
            sys::LZMA_OK | sys::LZMA_BUF_ERROR => Err(format!(
                "{name} stream truncated or larger than {} bytes",
                dst.len()
            )),
            e => Err(format!("{name}: liblzma error {e}")),
        }
    })
}
