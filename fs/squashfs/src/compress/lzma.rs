//! lzma (id 2): legacy LZMA-alone streams (13-byte header, then raw LZMA), decoded with this
//! thread's reusable liblzma decoder.

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    super::xz::run(super::xz::Kind::Alone, src, dst)
}
