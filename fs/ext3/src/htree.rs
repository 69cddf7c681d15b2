//! Hashed (htree) directories, read side: find the leaf block a name hashes to through the
//! index, following hash-collision continuations into the next leaves. Any inconsistency in
//! the index makes the caller fall back to a linear scan, which is always correct because
//! index blocks read as empty entries.

use crate::bytes::{le16, le32, u8_at};
use crate::dir::{self, dir_blocks};
use crate::dx_hash;
use crate::error::Result;
use crate::inode::{INDEX_FL, Inode};
use crate::superblock::{
    COMPAT_DIR_INDEX, INCOMPAT_FILETYPE, INCOMPAT_LARGEDIR, RO_COMPAT_METADATA_CSUM,
};
use crate::volume::Volume;

/// s_flags: directory hashes use unsigned chars.
const FLAGS_UNSIGNED_HASH: u32 = 0x2;

/// Outcome of an index lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DxLookup {
    /// The name is there: its inode and dirent file type.
    Found(u32, u8),
    /// The index says the name is not there.
    Missing,
    /// The directory has no usable index (why); scan it linearly.
    Unusable(String),
}

/// One level of the index path: its (hash, block) entries and the one taken.
struct Level {
    entries: Vec<(u32, u32)>,
    at: usize,
}

/// Whether `dir` is an indexed directory this filesystem lets us use.
pub fn is_indexed(vol: &Volume, dir: &Inode) -> bool {
    dir.flags & INDEX_FL != 0 && vol.sb().has_compat(COMPAT_DIR_INDEX)
}

/// Read the entries of one index node whose countlimit is at `at` (`csum`: the node ends
/// in an 8-byte checksum tail).
pub(crate) fn node_entries(
    block: &[u8],
    at: usize,
    csum: bool,
) -> std::result::Result<Vec<(u32, u32)>, String> {
    let limit = usize::from(le16(block, at));
    let count = usize::from(le16(block, at + 2));
    let room = (block.len() - at) / 8 - usize::from(csum);
    if limit != room || count == 0 || count > limit {
        return Err(format!(
            "index node count {count} / limit {limit} (room {room})"
        ));
    }
    Ok((0..count)
        .map(|i| {
            let e = at + i * 8;
            let hash = if i == 0 { 0 } else { le32(block, e) };
            (hash, le32(block, e + 4) & 0x0fff_ffff)
        })
        .collect())
}

/// The entry to descend into for `hash`: the last whose hash is <= it.
fn pick(entries: &[(u32, u32)], hash: u32) -> usize {
    entries
        .partition_point(|&(h, _)| h <= hash)
        .saturating_sub(1)
}

/// One index level on the way to a leaf.
pub(crate) struct PathLevel {
    /// The directory block holding this node (0: the root).
    pub lblk: u32,
    /// Byte position of the node's count/limit header in that block.
    pub count_at: usize,
    /// The node's (hash, block) entries.
    pub entries: Vec<(u32, u32)>,
    /// The entry taken.
    pub at: usize,
}

/// Where a name's hash leads in an index.
pub(crate) struct Probe {
    /// The name's hash.
    pub hash: u32,
    /// The hash version in force (unsigned variants included).
    pub version: u8,
    /// Index levels from the root down.
    pub path: Vec<PathLevel>,
    /// The leaf block the hash leads to.
    pub leaf: u32,
}

/// Walk the index of `dir` for `name`; `Ok(Err(why))` when the index is not usable.
pub(crate) fn probe(
    vol: &Volume,
    dir: &Inode,
    name: &[u8],
) -> Result<std::result::Result<Probe, String>> {
    let nblocks = dir_blocks(vol, dir)?;
    let Some(root) = vol.file_block(dir, 0)? else {
        return Ok(Err("the index root is a hole".into()));
    };
    // dx_root: "." (12 bytes), ".." header, then the root info at 0x18.
    let hash_version = u8_at(&root, 0x1C);
    let info_len = u8_at(&root, 0x1D);
    let levels = usize::from(u8_at(&root, 0x1E));
    let max_levels = if vol.sb().has_incompat(INCOMPAT_LARGEDIR) {
        3
    } else {
        2
    };
    if le32(&root, 0x18) != 0 || info_len != 8 || levels >= max_levels {
        return Ok(Err(format!(
            "bad index root (info length {info_len}, levels {levels})"
        )));
    }
    let mut version = hash_version;
    if version <= dx_hash::TEA && vol.sb().flags & FLAGS_UNSIGNED_HASH != 0 {
        version += dx_hash::UNSIGNED_DELTA;
    }
    let Some((hash, _)) = dx_hash::hash(name, version, &vol.sb().hash_seed) else {
        return Ok(Err(format!("unknown hash version {hash_version}")));
    };
    let csum = vol.sb().has_ro_compat(RO_COMPAT_METADATA_CSUM);
    let mut path: Vec<PathLevel> = Vec::with_capacity(levels + 1);
    let entries = match node_entries(&root, 0x20, csum) {
        Ok(e) => e,
        Err(why) => return Ok(Err(why)),
    };
    let at = pick(&entries, hash);
    let mut block_no = entries[at].1;
    path.push(PathLevel {
        lblk: 0,
        count_at: 0x20,
        entries,
        at,
    });
    for _ in 0..levels {
        if u64::from(block_no) >= nblocks || block_no == 0 {
            return Ok(Err(format!(
                "index points at block {block_no}, outside the directory"
            )));
        }
        let Some(node) = vol.file_block(dir, u64::from(block_no))? else {
            return Ok(Err(format!("index block {block_no} is a hole")));
        };
        let entries = match node_entries(&node, 8, csum) {
            Ok(e) => e,
            Err(why) => return Ok(Err(why)),
        };
        let at = pick(&entries, hash);
        let lblk = block_no;
        block_no = entries[at].1;
        path.push(PathLevel {
            lblk,
            count_at: 8,
            entries,
            at,
        });
    }
    if u64::from(block_no) >= nblocks || block_no == 0 {
        return Ok(Err(format!(
            "index points at block {block_no}, outside the directory"
        )));
    }
    Ok(Ok(Probe {
        hash,
        version,
        path,
        leaf: block_no,
    }))
}

/// Look `name` up in indexed directory `dir`.
pub fn lookup(vol: &Volume, dir: &Inode, name: &[u8]) -> Result<DxLookup> {
    let unusable = |why: String| Ok(DxLookup::Unusable(why));
    let nblocks = dir_blocks(vol, dir)?;
    let p = match probe(vol, dir, name)? {
        Ok(p) => p,
        Err(why) => return unusable(why),
    };
    let hash = p.hash;
    let mut block_no = p.leaf;
    let mut path: Vec<Level> = p
        .path
        .into_iter()
        .map(|l| Level {
            entries: l.entries,
            at: l.at,
        })
        .collect();
    let filetype = vol.sb().has_incompat(INCOMPAT_FILETYPE);
    // Search the leaf; while the next leaf continues this hash (collision bit), go on.
    for _ in 0..nblocks {
        if u64::from(block_no) >= nblocks {
            return unusable(format!(
                "index points at block {block_no}, past the directory"
            ));
        }
        if let Some(leaf) = vol.file_block(dir, u64::from(block_no))? {
            let mut hit = None;
            let r = dir::parse_block(&leaf, filetype, vol.sb().inodes_count, |e| {
                if e.name == name {
                    hit = Some((e.ino, e.file_type));
                    false
                } else {
                    true
                }
            });
            if let Some((ino, ft)) = hit {
                return Ok(DxLookup::Found(ino, ft));
            }
            if let Err((pos, why)) = r {
                return unusable(format!("leaf block {block_no} at {pos}: {why}"));
            }
        }
        match next_leaf(vol, dir, &mut path, hash, nblocks)? {
            Some(b) => block_no = b,
            None => return Ok(DxLookup::Missing),
        }
    }
    unusable("collision chain longer than the directory".into())
}

/// Advance `path` to the next leaf if its first hash continues `hash` (equal but for the
/// collision bit).
fn next_leaf(
    vol: &Volume,
    dir: &Inode,
    path: &mut Vec<Level>,
    hash: u32,
    nblocks: u64,
) -> Result<Option<u32>> {
    // Find the deepest level with a next entry.
    let mut depth = path.len();
    loop {
        if depth == 0 {
            return Ok(None);
        }
        depth -= 1;
        if path[depth].at + 1 < path[depth].entries.len() {
            break;
        }
    }
    path[depth].at += 1;
    let (next_hash, mut block_no) = path[depth].entries[path[depth].at];
    if next_hash & !1 != hash {
        return Ok(None);
    }
    // Descend along first entries to the leaf level.
    let csum = vol.sb().has_ro_compat(RO_COMPAT_METADATA_CSUM);
    let total = path.len();
    path.truncate(depth + 1);
    while path.len() < total {
        if u64::from(block_no) >= nblocks {
            return Ok(None);
        }
        let Some(node) = vol.file_block(dir, u64::from(block_no))? else {
            return Ok(None);
        };
        let Ok(entries) = node_entries(&node, 8, csum) else {
            return Ok(None);
        };
        block_no = entries[0].1;
        path.push(Level { entries, at: 0 });
    }
    Ok(Some(block_no))
}
