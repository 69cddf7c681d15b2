//! The overlay's inode numbers (and node ids, which are the same numbers).
//!
//! Scheme (the kernel's `xino` idea): `st_ino = tag << 48 | layer_ino`, where `layer_ino` is
//! the `st_ino` the owning layer reports and `tag` is the layer's index: 0 for the upper
//! layer, `1 + i` for lower `i` (top first), whether or not there is an upper. So numbers are
//! unique across layers, the same for every lookup and every mount of the same layers, and a
//! directory reports the number of the topmost layer that holds it. Exceptions, numbered from
//! a remap table (stable within one overlay's life only) under tag [`REMAP_TAG`]: layer
//! numbers at or above 2^48, and upper inode 1 (node 1 is FUSE's root). Every squashbox
//! driver keeps its numbers below 2^48 (host directories remap the rest themselves).
//!
//! A copied-up object keeps the number it had below: within a mount its node simply stays,
//! and across remounts files and directories carry it in an attribute (see
//! [`crate::upper`]). When a number is already taken by another object (the lower hard link
//! of a file that was copied up), the newcomer gets one from [`Ids::conflict`].

use std::collections::HashMap;

use parking_lot::Mutex;
use squashbox_vfs::{NodeId, ROOT_ID};

/// Bits of a layer's inode number kept as they are.
pub const LAYER_INO_BITS: u32 = 48;
/// The tag numbering remapped inodes.
pub const REMAP_TAG: u64 = 0xFFFF;
/// Most layers (upper included): tags 0..REMAP_TAG.
pub const MAX_LAYERS: usize = REMAP_TAG as usize;

/// Layer tags to overlay numbers.
#[derive(Default)]
pub struct Ids {
    remap: Mutex<HashMap<(u64, u64), u64>>,
}

impl Ids {
    /// The overlay number of inode `ino` of the layer tagged `tag`.
    pub fn ino(&self, tag: u64, ino: u64) -> NodeId {
        let limit = 1u64 << LAYER_INO_BITS;
        let id = (tag << LAYER_INO_BITS) | ino;
        if ino < limit && id != ROOT_ID && id != 0 {
            return id;
        }
        let mut remap = self.remap.lock();
        let next = (REMAP_TAG << LAYER_INO_BITS) | (remap.len() as u64 + 1);
        *remap.entry((tag, ino)).or_insert(next)
    }
}

impl Ids {
    /// A number for layer object `node` of layer index `layer` whose usual number is taken
    /// by another object (a lower hard link of a file copied up, a copied attribute): stable
    /// within this overlay's life.
    pub fn conflict(&self, layer: usize, node: NodeId) -> NodeId {
        self.ino(0x1_0000 + layer as u64, node | (1 << 63))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_the_high_bits_and_remaps_for_the_rest() {
        let ids = Ids::default();
        assert_eq!(ids.ino(0, 1234), 1234);
        assert_eq!(ids.ino(2, 1234), (2 << 48) | 1234);
        let one = ids.ino(0, 1);
        assert_eq!(one >> 48, REMAP_TAG);
        let big = ids.ino(1, 1 << 50);
        assert_ne!(big, one);
        assert_eq!(ids.ino(1, 1 << 50), big, "stable");
    }
}
