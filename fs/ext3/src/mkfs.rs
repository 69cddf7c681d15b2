//! [`make_ext3`]: write a fresh ext3 image as `mkfs.ext3` (e2fsprogs 1.47) makes it at
//! Apptainer's overlay sizes: 1 KiB blocks below 512 MiB (inode ratio 4096), 4 KiB blocks
//! from 512 MiB (inode ratio 16384), 256-byte inodes, a journal of mke2fs's default size,
//! features `has_journal ext_attr dir_index filetype sparse_super large_file` (no
//! `resize_inode`: nothing here grows the image), and a tree of empty directories.
//!
//! The layout is computed here and written with positioned writes; nothing runs mkfs.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// What to make.
#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// Size of the filesystem in bytes (rounded down to whole blocks).
    pub size: u64,
    /// Directories to create below the root, parents before children (`"upper"`,
    /// `"upper/home"`, ...), with their modes and owners.
    pub dirs: Vec<NewDir>,
    /// Owner of the root directory.
    pub root_owner: (u32, u32),
    /// Creation time (Unix seconds).
    pub time: u32,
    /// Filesystem UUID and directory hash seed (random bytes from the caller).
    pub uuid: [u8; 16],
    /// The htree hash seed.
    pub hash_seed: [u8; 16],
}

/// One directory to create.
#[derive(Clone, Debug)]
pub struct NewDir {
    /// Path below the root, `/`-separated, parent created first.
    pub path: String,
    /// Permission bits.
    pub mode: u16,
    /// Owner uid and gid.
    pub owner: (u32, u32),
}

const INODE_SIZE: u32 = 256;
const JOURNAL_INO: u32 = 8;
const LOST_FOUND_INO: u32 = 11;

/// Journal length in blocks for a filesystem of `blocks` blocks (mke2fs's default).
fn journal_blocks(blocks: u64) -> u64 {
    match blocks {
        0..32_768 => 1024,
        32_768..262_144 => 4096,
        262_144..524_288 => 8192,
        524_288..4_194_304 => 16_384,
        4_194_304..8_388_608 => 32_768,
        _ => 65_536,
    }
}

fn sparse_group(g: u64) -> bool {
    if g <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&p| {
        let mut x = p;
        while x < g {
            x *= p;
        }
        x == g
    })
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The image being built: geometry, bitmaps and the blocks to write.
struct Builder {
    bs: u64,
    blocks: u64,
    first: u64,
    per_group: u64,
    groups: u64,
    ipg: u32,
    itable_blocks: u64,
    used: Vec<bool>,
    next_free: u64,
    inodes: Vec<(u32, Vec<u8>)>,
    writes: Vec<(u64, Vec<u8>)>,
    dirs_in_group: Vec<u16>,
}

impl Builder {
    fn group_start(&self, g: u64) -> u64 {
        self.first + g * self.per_group
    }
    fn gdt_blocks(&self) -> u64 {
        (self.groups * 32).div_ceil(self.bs)
    }
    /// Block bitmap, inode bitmap, inode table of group `g`.
    fn group_meta(&self, g: u64) -> (u64, u64, u64) {
        let mut b = self.group_start(g);
        if sparse_group(g) {
            b += 1 + self.gdt_blocks();
        }
        (b, b + 1, b + 2)
    }
    fn alloc(&mut self) -> Result<u64, String> {
        while self.next_free < self.blocks && self.used[self.next_free as usize] {
            self.next_free += 1;
        }
        if self.next_free >= self.blocks {
            return Err("the image is too small".into());
        }
        self.used[self.next_free as usize] = true;
        Ok(self.next_free)
    }
    fn group_of_ino(&self, ino: u32) -> u64 {
        u64::from((ino - 1) / self.ipg)
    }
}

/// A 256-byte inode.
fn inode(mode: u16, owner: (u32, u32), links: u16, size: u64, time: u32) -> Vec<u8> {
    let mut i = vec![0u8; INODE_SIZE as usize];
    put16(&mut i, 0, mode);
    put16(&mut i, 2, owner.0 as u16);
    put32(&mut i, 4, size as u32);
    for at in [8, 12, 16] {
        put32(&mut i, at, time);
    }
    put16(&mut i, 0x18, owner.1 as u16);
    put16(&mut i, 0x1A, links);
    put32(&mut i, 0x6C, (size >> 32) as u32);
    put16(&mut i, 0x78, (owner.0 >> 16) as u16);
    put16(&mut i, 0x7A, (owner.1 >> 16) as u16);
    put16(&mut i, 0x80, 32);
    put32(&mut i, 0x90, time);
    i
}

/// One directory block with `entries` (inode, name, file type 2 = directory).
fn dir_block(bs: usize, entries: &[(u32, &str)]) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let mut at = 0;
    for (n, (ino, name)) in entries.iter().enumerate() {
        let need = (8 + name.len()).div_ceil(4) * 4;
        let rec = if n + 1 == entries.len() {
            bs - at
        } else {
            need
        };
        put32(&mut b, at, *ino);
        put16(&mut b, at + 4, rec as u16);
        b[at + 6] = name.len() as u8;
        b[at + 7] = 2;
        b[at + 8..at + 8 + name.len()].copy_from_slice(name.as_bytes());
        at += rec;
    }
    b
}

/// Write a fresh ext3 filesystem of `opts.size` bytes to `file` (from byte 0; the file must
/// already be at least that long, sparse or not).
pub fn make_ext3(file: &File, opts: &MkfsOptions) -> Result<(), String> {
    let (bs, ratio, log) = if opts.size < 512 << 20 {
        (1024u64, 4096u64, 0u32)
    } else {
        (4096, 16384, 2)
    };
    let blocks = (opts.size / bs).min(u64::from(u32::MAX));
    if blocks < 4096 {
        return Err(format!(
            "{} bytes is too small for an ext3 image",
            opts.size
        ));
    }
    let first = u64::from(bs == 1024);
    let per_group = bs * 8;
    let groups = (blocks - first).div_ceil(per_group);
    let inodes_total = (blocks * bs / ratio).max(groups * 16);
    let ipb = bs / u64::from(INODE_SIZE);
    // Inodes per group: a multiple of 8 and of the inodes per block, at most bs * 8.
    let ipg = inodes_total
        .div_ceil(groups)
        .next_multiple_of(ipb.max(8))
        .min(bs * 8) as u32;
    let itable_blocks = u64::from(ipg) * u64::from(INODE_SIZE) / bs;
    let mut b = Builder {
        bs,
        blocks,
        first,
        per_group,
        groups,
        ipg,
        itable_blocks,
        used: vec![false; blocks as usize],
        next_free: first,
        inodes: Vec::new(),
        writes: Vec::new(),
        dirs_in_group: vec![0; groups as usize],
    };
    for blk in 0..first {
        b.used[blk as usize] = true;
    }
    for g in 0..groups {
        let start = b.group_start(g);
        let (_, _, it) = b.group_meta(g);
        for blk in start..(it + itable_blocks).min(blocks) {
            b.used[blk as usize] = true;
        }
        if it + itable_blocks > blocks {
            return Err("the last block group is too small; choose another size".into());
        }
    }

    // The journal: contiguous data blocks mapped by direct, single and double indirect blocks.
    let jblocks = journal_blocks(blocks);
    let ptrs = bs / 4;
    let mut iblock = [0u32; 15];
    let mut jdata = Vec::with_capacity(jblocks as usize);
    let mut meta_count = 0u64;
    for n in 0..jblocks {
        if n == 12 {
            iblock[12] = b.alloc()? as u32;
            meta_count += 1;
        }
        if n == 12 + ptrs {
            iblock[13] = b.alloc()? as u32;
            meta_count += 1;
        }
        if n >= 12 + ptrs && (n - 12 - ptrs) % ptrs == 0 {
            let ind = b.alloc()?;
            meta_count += 1;
            let slot = (n - 12 - ptrs) / ptrs;
            b.writes.push((
                iblock[13] as u64 * bs + slot * 4,
                (ind as u32).to_le_bytes().to_vec(),
            ));
            jdata.push((Some(ind), b.alloc()?));
        } else {
            jdata.push((None, b.alloc()?));
        }
    }
    if jblocks > 12 + ptrs * (ptrs + 1) {
        return Err("journal too large for this layout".into());
    }
    let mut cur_ind = u64::from(iblock[12]);
    for (n, (new_ind, blk)) in jdata.iter().enumerate() {
        let n = n as u64;
        if let Some(ind) = new_ind {
            cur_ind = *ind;
        }
        if n < 12 {
            iblock[n as usize] = *blk as u32;
        } else {
            let idx = if n < 12 + ptrs {
                n - 12
            } else {
                (n - 12 - ptrs) % ptrs
            };
            b.writes
                .push((cur_ind * bs + idx * 4, (*blk as u32).to_le_bytes().to_vec()));
        }
    }
    let mut jsb = vec![0u8; bs as usize];
    let be = |v: u32| v.to_be_bytes();
    jsb[0..4].copy_from_slice(&be(0xC03B_3998));
    jsb[4..8].copy_from_slice(&be(4));
    jsb[12..16].copy_from_slice(&be(bs as u32));
    jsb[16..20].copy_from_slice(&be(jblocks as u32));
    jsb[20..24].copy_from_slice(&be(1));
    jsb[24..28].copy_from_slice(&be(1));
    jsb[0x30..0x40].copy_from_slice(&opts.uuid);
    jsb[0x40..0x44].copy_from_slice(&be(1));
    jsb[0x100..0x110].copy_from_slice(&opts.uuid);
    b.writes.push((jdata[0].1 * bs, jsb));
    let jsize = jblocks * bs;
    let mut ji = inode(0o100600, (0, 0), 1, jsize, opts.time);
    put32(&mut ji, 0x1C, ((jblocks + meta_count) * bs / 512) as u32);
    for (k, p) in iblock.iter().enumerate() {
        put32(&mut ji, 0x28 + 4 * k, *p);
    }
    b.inodes.push((JOURNAL_INO, ji));

    // Directories: root, lost+found, then the requested ones.
    let mut next_ino = LOST_FOUND_INO;
    let mut all: Vec<(u32, String, u16, (u32, u32))> =
        vec![(LOST_FOUND_INO, "lost+found".into(), 0o700, (0, 0))];
    for d in &opts.dirs {
        next_ino += 1;
        all.push((
            next_ino,
            d.path.trim_matches('/').to_string(),
            d.mode,
            d.owner,
        ));
    }
    if u64::from(next_ino) > u64::from(ipg) * groups {
        return Err("too many directories for the inode count".into());
    }
    let parent_of = |path: &str| -> Result<u32, String> {
        match path.rsplit_once('/') {
            None => Ok(2),
            Some((p, _)) => all
                .iter()
                .find(|(_, q, _, _)| q == p)
                .map(|(i, _, _, _)| *i)
                .ok_or_else(|| format!("{path}: its parent is not created first")),
        }
    };
    let mut children: std::collections::BTreeMap<u32, Vec<(u32, String)>> = Default::default();
    for (ino, path, _, _) in &all {
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        if name.is_empty() || name.len() > 255 {
            return Err(format!("{path:?}: bad directory name"));
        }
        children
            .entry(parent_of(path)?)
            .or_default()
            .push((*ino, name));
    }
    let mut dirs: Vec<(u32, u32, u16, (u32, u32))> = vec![(2, 2, 0o755, opts.root_owner)];
    for (ino, path, mode, owner) in &all {
        dirs.push((*ino, parent_of(path)?, *mode, *owner));
    }
    for (ino, parent, mode, owner) in dirs {
        let kids = children.get(&ino).cloned().unwrap_or_default();
        let mut entries: Vec<(u32, &str)> = vec![(ino, "."), (parent, "..")];
        entries.extend(kids.iter().map(|(i, n)| (*i, n.as_str())));
        let need: u64 = entries
            .iter()
            .map(|(_, n)| (8 + n.len()).div_ceil(4) as u64 * 4)
            .sum();
        if need > bs {
            return Err("too many entries in one directory".into());
        }
        let blk = b.alloc()?;
        b.writes.push((blk * bs, dir_block(bs as usize, &entries)));
        let mut di = inode(0o040000 | mode, owner, 2 + kids.len() as u16, bs, opts.time);
        put32(&mut di, 0x1C, (bs / 512) as u32);
        put32(&mut di, 0x28, blk as u32);
        let g = b.group_of_ino(ino) as usize;
        b.dirs_in_group[g] += 1;
        b.inodes.push((ino, di));
    }
    finish(&mut b, opts, next_ino, jblocks, &iblock, log)?;
    for (at, bytes) in &b.writes {
        file.write_all_at(bytes, *at)
            .map_err(|e| format!("writing at byte {at}: {e}"))?;
    }
    Ok(())
}

/// Bitmaps, group descriptors, inode tables and superblocks.
fn finish(
    b: &mut Builder,
    opts: &MkfsOptions,
    last_ino: u32,
    jblocks: u64,
    iblock: &[u32; 15],
    log: u32,
) -> Result<(), String> {
    let bs = b.bs;
    let mut gdt = vec![0u8; (b.gdt_blocks() * bs) as usize];
    let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
    for g in 0..b.groups {
        let (bb, ib, it) = b.group_meta(g);
        let start = b.group_start(g);
        let mut bbm = vec![0u8; bs as usize];
        let mut gfree = 0u32;
        for k in 0..b.per_group {
            let blk = start + k;
            if blk >= b.blocks || b.used[blk as usize] {
                bbm[(k / 8) as usize] |= 1 << (k % 8);
            } else {
                gfree += 1;
            }
        }
        let mut ibm = vec![0u8; bs as usize];
        let mut ifree = 0u32;
        for k in 0..bs * 8 {
            let ino = g * u64::from(b.ipg) + k + 1;
            if k >= u64::from(b.ipg) || ino <= u64::from(last_ino) {
                ibm[(k / 8) as usize] |= 1 << (k % 8);
            } else {
                ifree += 1;
            }
        }
        b.writes.push((bb * bs, bbm));
        b.writes.push((ib * bs, ibm));
        let d = &mut gdt[(g * 32) as usize..(g * 32 + 32) as usize];
        put32(d, 0, bb as u32);
        put32(d, 4, ib as u32);
        put32(d, 8, it as u32);
        put16(d, 12, gfree as u16);
        put16(d, 14, ifree as u16);
        put16(d, 16, b.dirs_in_group[g as usize]);
        free_blocks += u64::from(gfree);
        free_inodes += u64::from(ifree);
    }
    for (ino, raw) in std::mem::take(&mut b.inodes) {
        let g = b.group_of_ino(ino);
        let idx = u64::from((ino - 1) % b.ipg);
        let (_, _, it) = b.group_meta(g);
        b.writes.push((it * bs + idx * u64::from(INODE_SIZE), raw));
    }
    let _ = b.itable_blocks;
    let inodes_count = u64::from(b.ipg) * b.groups;
    for g in 0..b.groups {
        if !sparse_group(g) {
            continue;
        }
        let mut sb = vec![0u8; 1024];
        put32(&mut sb, 0x00, inodes_count as u32);
        put32(&mut sb, 0x04, b.blocks as u32);
        put32(&mut sb, 0x08, (b.blocks / 20) as u32);
        put32(&mut sb, 0x0C, free_blocks as u32);
        put32(&mut sb, 0x10, free_inodes as u32);
        put32(&mut sb, 0x14, b.first as u32);
        put32(&mut sb, 0x18, log);
        put32(&mut sb, 0x1C, log);
        put32(&mut sb, 0x20, b.per_group as u32);
        put32(&mut sb, 0x24, b.per_group as u32);
        put32(&mut sb, 0x28, b.ipg);
        put32(&mut sb, 0x30, opts.time);
        put16(&mut sb, 0x36, 0xFFFF);
        put16(&mut sb, 0x38, 0xEF53);
        put16(&mut sb, 0x3A, 1);
        put16(&mut sb, 0x3C, 1);
        put32(&mut sb, 0x40, opts.time);
        put32(&mut sb, 0x4C, 1);
        put32(&mut sb, 0x54, 11);
        put16(&mut sb, 0x58, INODE_SIZE as u16);
        put16(&mut sb, 0x5A, g as u16);
        put32(&mut sb, 0x5C, 0x4 | 0x8 | 0x20);
        put32(&mut sb, 0x60, 0x2);
        put32(&mut sb, 0x64, 0x1 | 0x2);
        sb[0x68..0x78].copy_from_slice(&opts.uuid);
        put32(&mut sb, 0xE0, JOURNAL_INO);
        sb[0xEC..0xFC].copy_from_slice(&opts.hash_seed);
        sb[0xFC] = 1;
        sb[0xFD] = 1;
        put32(&mut sb, 0x100, 0x0C);
        put32(&mut sb, 0x108, opts.time);
        for (k, p) in iblock.iter().enumerate() {
            put32(&mut sb, 0x10C + 4 * k, *p);
        }
        put32(&mut sb, 0x10C + 4 * 16, (jblocks * bs) as u32);
        put16(&mut sb, 0x15C, 32);
        put16(&mut sb, 0x15E, 32);
        put32(&mut sb, 0x160, 0x1);
        let start = b.group_start(g);
        let at = if g == 0 { 1024 } else { start * bs };
        b.writes.push((at, sb));
        b.writes.push(((start + 1) * bs, gdt.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: u64) -> MkfsOptions {
        MkfsOptions {
            size,
            dirs: vec![
                NewDir {
                    path: "upper".into(),
                    mode: 0o755,
                    owner: (1000, 1000),
                },
                NewDir {
                    path: "upper/a".into(),
                    mode: 0o700,
                    owner: (1000, 1000),
                },
                NewDir {
                    path: "work".into(),
                    mode: 0o755,
                    owner: (1000, 1000),
                },
            ],
            root_owner: (1000, 1000),
            time: 1_700_000_000,
            uuid: [7; 16],
            hash_seed: [9; 16],
        }
    }

    #[test]
    fn our_own_driver_opens_what_we_make_read_write_with_its_journal() {
        for (mib, bs) in [(64u64, 1024u32), (600, 4096)] {
            let tmp = tempfile::NamedTempFile::new().unwrap();
            tmp.as_file().set_len(mib << 20).unwrap();
            make_ext3(tmp.as_file(), &opts(mib << 20)).unwrap();
            let fs = crate::Ext3Fs::open(tmp.path(), 0, false).unwrap();
            assert!(fs.writable() && fs.journalling(), "{mib} MiB");
            assert_eq!(fs.volume().block_size(), bs);
            assert_eq!(fs.volume().sb().blocks_count, (mib << 20) / u64::from(bs));
            fs.shutdown().unwrap();
        }
    }

    #[test]
    fn refuses_too_small_and_orphan_paths() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        assert!(make_ext3(tmp.as_file(), &opts(1 << 20)).is_err());
        let mut o = opts(64 << 20);
        o.dirs.push(NewDir {
            path: "nope/x".into(),
            mode: 0o755,
            owner: (0, 0),
        });
        assert!(make_ext3(tmp.as_file(), &o).unwrap_err().contains("parent"));
    }
}
