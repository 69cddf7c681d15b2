//! Name lookup in one directory: binary search in the directory index, then a scan of at
//! most one metadata block's worth of sorted entries (or a binary search in the whole
//! listing, cached once a directory is looked up repeatedly and decodes cleanly).

use std::cmp::Ordering;
use std::sync::atomic::Ordering as AtomicOrdering;

use crate::dir::{DirEntry, LISTING_CACHE_MAX, NAME_MAX};
use crate::error::Result;
use crate::image::Inner;
use crate::inode::{DirLayout, InodeRef};

impl Inner {
    pub(crate) fn lookup_in(
        &self,
        r: InodeRef,
        d: &DirLayout,
        name: &[u8],
    ) -> Result<Option<DirEntry>> {
        if name.is_empty() || name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
            return Ok(None);
        }
        let idx = self.dir_index(r, d)?;
        let mut listing = self.cached_listing(r);
        if listing.is_none()
            && !idx.listing_failed.load(AtomicOrdering::Relaxed)
            && idx.lookups.fetch_add(1, AtomicOrdering::Relaxed) >= 1
            && d.listing_len() <= LISTING_CACHE_MAX
        {
            match self.listing(r, d) {
                Ok(l) => listing = Some(l),
                // One damaged block spoils the whole listing but not every name: like the
                // kernel, go through the index (from now on), so that only the names whose
                // entries need the damaged block fail.
                Err(_) => idx.listing_failed.store(true, AtomicOrdering::Relaxed),
            }
        }
        if let Some(l) = listing {
            let found = l
                .entries
                .binary_search_by(|(e, _)| e.name.as_slice().cmp(name));
            return Ok(found
                .ok()
                .and_then(|i| l.entries.get(i))
                .map(|(e, _)| e.clone()));
        }
        let start = self.scan_start_for_name(r, d, name)?;
        let mut found = None;
        self.scan_dir(r, d, start, &mut |e, _| match e.name.cmp(name) {
            Ordering::Less => true,
            Ordering::Equal => {
                found = Some(e.to_entry());
                false
            }
            // Names are sorted (mksquashfs sorts with strcmp): we are past it.
            Ordering::Greater => false,
        })?;
        Ok(found)
    }
}
