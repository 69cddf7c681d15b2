//! zstd (id 6): one frame per block. One decompression context per thread.

use std::cell::RefCell;

thread_local! {
    static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd init: {e}"))?);
        }
        let Some(d) = slot.as_mut() else {
            return Err("zstd context missing".to_string());
        };
        d.decompress_to_buffer(src, dst)
            .map_err(|e| format!("zstd: {e}"))
    })
}
