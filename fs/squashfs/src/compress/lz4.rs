//! lz4 (id 5): a raw LZ4 block (not the frame format); `-Xhc` only changes the compressor.

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    lz4_flex::block::decompress_into(src, dst).map_err(|e| format!("lz4: {e}"))
}
