//! Inserting into hashed (htree) directories: the new entry goes into the leaf its hash
//! leads to; a full leaf is split in two by hash (a new block at the end of the directory
//! and a new entry in the parent index node), as the kernel does. When the parent node is
//! full too the caller drops the index instead (index-node splits come later).

use crate::alloc::Allocator;
use crate::block_map_write;
use crate::bytes::{le16, le32, u8_at};
use crate::dir::{dir_blocks, rec_len_for};
use crate::dir_write::{place_in_block, put_entry};
use crate::dx_hash;
use crate::error::Result;
use crate::htree::{self, PathLevel};
use crate::inode::Inode;
use crate::superblock::RO_COMPAT_METADATA_CSUM;
use crate::volume::Volume;

/// One live entry of a leaf being split.
struct Rec {
    hash: u32,
    minor: u32,
    ino: u32,
    ft: u8,
    name: Vec<u8>,
}

/// Whether index node `l` has room for one more entry.
fn has_room(l: &PathLevel, bs: usize) -> bool {
    l.entries.len() < (bs - l.count_at) / 8
}

/// A new directory block at the end of `dir` (its logical number and image block).
fn new_dir_block(
    vol: &Volume,
    alloc: &Allocator,
    dir: &mut Inode,
    goal: u64,
) -> Result<Option<(u32, u64)>> {
    let nblocks = dir_blocks(vol, dir)?;
    let Ok(lblk) = u32::try_from(nblocks) else {
        return Ok(None);
    };
    if lblk > 0x0fff_ffff {
        return Ok(None);
    }
    let (phys, _) = block_map_write::map_alloc(vol, alloc, dir, nblocks, goal)?;
    dir.size = (nblocks + 1) * u64::from(vol.block_size());
    Ok(Some((lblk, phys)))
}

/// A non-root index node block holding `entries`.
fn index_node(bs: usize, entries: &[(u32, u32)]) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    // A fake empty entry covering the block, so linear readers skip it.
    b[4..6].copy_from_slice(&(bs as u16).to_le_bytes());
    let limit = (bs - 8) / 8;
    b[8..10].copy_from_slice(&(limit as u16).to_le_bytes());
    b[10..12].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (k, (h, blk)) in entries.iter().enumerate() {
        if k > 0 {
            b[8 + 8 * k..12 + 8 * k].copy_from_slice(&h.to_le_bytes());
        }
        b[12 + 8 * k..16 + 8 * k].copy_from_slice(&blk.to_le_bytes());
    }
    b
}

/// Make room for one more entry in the last index level of `path`: grow the tree by a
/// level when the root is full (one level only: no largedir), or split a full level-1
/// node in two. `Ok(false)` when neither is possible.
fn make_room(
    vol: &Volume,
    alloc: &Allocator,
    dir: &mut Inode,
    path: &mut Vec<PathLevel>,
) -> Result<bool> {
    let bs = vol.block_size() as usize;
    let last = path.last().expect("an index has a root");
    if has_room(last, bs) {
        return Ok(true);
    }
    let root_phys = vol
        .map(dir, 0, 1)?
        .phys
        .ok_or_else(|| vol.corrupt(Some(dir.ino), None, "index root vanished"))?;
    if path.len() == 1 {
        // The root is full: its entries move to a new node, the root points at it.
        let Some((lblk, phys)) = new_dir_block(vol, alloc, dir, root_phys + 1)? else {
            return Ok(false);
        };
        let old = path.pop().expect("the root");
        vol.write_new_block(phys, index_node(bs, &old.entries))?;
        vol.modify_block(root_phys, Some(dir.ino), |b| {
            b[0x1E] = 1;
            b[0x22..0x24].copy_from_slice(&1u16.to_le_bytes());
            b[0x24..0x28].copy_from_slice(&lblk.to_le_bytes());
        })?;
        path.push(PathLevel {
            lblk: 0,
            count_at: 0x20,
            entries: vec![(0, lblk)],
            at: 0,
        });
        path.push(PathLevel {
            lblk,
            count_at: 8,
            entries: old.entries,
            at: old.at,
        });
        return Ok(has_room(path.last().expect("just pushed"), bs));
    }
    if path.len() != 2 || !has_room(&path[0], bs) {
        return Ok(false);
    }
    // Split the full level-1 node: its upper half moves to a new node.
    let Some((lblk, phys)) = new_dir_block(vol, alloc, dir, root_phys + 1)? else {
        return Ok(false);
    };
    let node = path.pop().expect("level 1");
    let half = node.entries.len() / 2;
    let (low, high) = node.entries.split_at(half);
    let hash2 = high[0].0;
    vol.write_new_block(phys, index_node(bs, high))?;
    let node_phys = vol
        .map(dir, u64::from(node.lblk), 1)?
        .phys
        .ok_or_else(|| vol.corrupt(Some(dir.ino), None, "index node vanished"))?;
    vol.write_new_block(node_phys, index_node(bs, low))?;
    let root = &mut path[0];
    let (count, at) = (root.entries.len(), root.at);
    vol.modify_block(root_phys, Some(dir.ino), |b| {
        let slot = 0x20 + 8 * (at + 1);
        let end = 0x20 + 8 * count;
        b.copy_within(slot..end, slot + 8);
        b[slot..slot + 4].copy_from_slice(&hash2.to_le_bytes());
        b[slot + 4..slot + 8].copy_from_slice(&lblk.to_le_bytes());
        b[0x22..0x24].copy_from_slice(&((count + 1) as u16).to_le_bytes());
    })?;
    root.entries.insert(at + 1, (hash2, lblk));
    if node.at >= half {
        root.at += 1;
        path.push(PathLevel {
            lblk,
            count_at: 8,
            entries: high.to_vec(),
            at: node.at - half,
        });
    } else {
        path.push(PathLevel {
            lblk: node.lblk,
            count_at: 8,
            entries: low.to_vec(),
            at: node.at,
        });
    }
    Ok(true)
}

/// Pack `recs` into a fresh directory block of `bs` bytes (the last record takes the rest).
fn pack(recs: &[Rec], bs: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; bs];
    let mut pos = 0usize;
    for (i, r) in recs.iter().enumerate() {
        let len = rec_len_for(r.name.len());
        let rec_len = if i + 1 == recs.len() { bs - pos } else { len };
        if pos + len > bs {
            return None;
        }
        put_entry(&mut b, pos, r.ino, rec_len, &r.name, r.ft);
        pos += rec_len;
    }
    if recs.is_empty() {
        b[4..6].copy_from_slice(&(bs as u16).to_le_bytes());
    }
    Some(b)
}

/// Insert `name` -> `ino` into indexed directory `dir`, keeping the index. `Ok(false)` when
/// the index cannot take it this way (the caller then drops the index). The caller writes
/// `dir` back.
pub fn insert(
    vol: &Volume,
    alloc: &Allocator,
    dir: &mut Inode,
    name: &[u8],
    ino: u32,
    ft: u8,
) -> Result<bool> {
    if vol.sb().has_ro_compat(RO_COMPAT_METADATA_CSUM) {
        return Ok(false);
    }
    let Ok(p) = htree::probe(vol, dir, name)? else {
        return Ok(false);
    };
    let Some(leaf_phys) = vol.map(dir, u64::from(p.leaf), 1)?.phys else {
        return Ok(false);
    };
    if vol.modify_block(leaf_phys, Some(dir.ino), |b| {
        place_in_block(b, name, ino, ft)
    })? {
        return Ok(true);
    }
    // Split the leaf: the parent node needs room for one more entry.
    let bs = vol.block_size() as usize;
    let mut p = p;
    if !make_room(vol, alloc, dir, &mut p.path)? {
        return Ok(false);
    }
    let parent = p.path.last().expect("an index has a root");
    let seed = vol.sb().hash_seed;
    let leaf = vol.read_block(leaf_phys, Some(dir.ino))?;
    let mut recs: Vec<Rec> = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bs {
        let e_ino = le32(&leaf, pos);
        let rec_len = usize::from(le16(&leaf, pos + 4));
        let name_len = usize::from(u8_at(&leaf, pos + 6));
        if rec_len < 12 || pos + rec_len > bs || 8 + name_len > rec_len {
            return Ok(false);
        }
        if e_ino != 0 && name_len > 0 {
            let n = leaf[pos + 8..pos + 8 + name_len].to_vec();
            let (hash, minor) = dx_hash::hash(&n, p.version, &seed).unwrap_or((0, 0));
            recs.push(Rec {
                hash,
                minor,
                ino: e_ino,
                ft: u8_at(&leaf, pos + 7),
                name: n,
            });
        }
        pos += rec_len;
    }
    let (hash, minor) = dx_hash::hash(name, p.version, &seed).unwrap_or((p.hash, 0));
    recs.push(Rec {
        hash,
        minor,
        ino,
        ft,
        name: name.to_vec(),
    });
    recs.sort_by_key(|r| (r.hash, r.minor));
    if recs.len() < 2 {
        return Ok(false);
    }
    // Move the upper half (by size) to the new block.
    let total: usize = recs.iter().map(|r| rec_len_for(r.name.len())).sum();
    let mut moved = 0usize;
    let mut split = recs.len();
    while split > 1 && moved < total / 2 {
        split -= 1;
        moved += rec_len_for(recs[split].name.len());
    }
    let hash2 = recs[split].hash;
    let continued = u32::from(recs[split - 1].hash == hash2);
    let (Some(low), Some(high)) = (pack(&recs[..split], bs), pack(&recs[split..], bs)) else {
        return Ok(false);
    };
    // The new leaf goes at the end of the directory.
    let nblocks = dir_blocks(vol, dir)?;
    let Ok(new_lblk) = u32::try_from(nblocks) else {
        return Ok(false);
    };
    if new_lblk > 0x0fff_ffff {
        return Ok(false);
    }
    let (new_phys, _) = block_map_write::map_alloc(vol, alloc, dir, nblocks, leaf_phys + 1)?;
    vol.write_new_block(new_phys, high)?;
    dir.size = (nblocks + 1) * bs as u64;
    vol.write_new_block(leaf_phys, low)?;
    // And its index entry, right after the one that led to the old leaf.
    let node_phys = vol
        .map(dir, u64::from(parent.lblk), 1)?
        .phys
        .ok_or_else(|| vol.corrupt(Some(dir.ino), None, "index node vanished"))?;
    let (count_at, at, count) = (parent.count_at, parent.at, parent.entries.len());
    vol.modify_block(node_phys, Some(dir.ino), |b| {
        let slot = count_at + 8 * (at + 1);
        let end = count_at + 8 * count;
        b.copy_within(slot..end, slot + 8);
        b[slot..slot + 4].copy_from_slice(&(hash2 | continued).to_le_bytes());
        b[slot + 4..slot + 8].copy_from_slice(&new_lblk.to_le_bytes());
        b[count_at + 2..count_at + 4].copy_from_slice(&((count + 1) as u16).to_le_bytes());
    })?;
    Ok(true)
}
