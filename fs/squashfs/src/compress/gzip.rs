//! gzip (id 1): each block is a zlib stream. One inflate state per thread, reset per block.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

thread_local! {
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, String> {
    INFLATE.with(|cell| {
        let mut d = cell.borrow_mut();
        d.reset(true);
        match d.decompress(src, dst, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => {
                usize::try_from(d.total_out()).map_err(|_| "gzip output size overflows".to_string())
            }
            Ok(_) => Err(format!(
                "gzip stream truncated or larger than {} bytes",
                dst.len()
            )),
            Err(e) => Err(format!("gzip: {e}")),
        }
    })
}
