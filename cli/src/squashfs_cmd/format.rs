//! `ls -l`-style formatting that matches `unsquashfs -lln` byte for byte.

use squashbox_squashfs::{Inode, InodeKind};

use super::sys::local_time;

/// Width unsquashfs gives "uid/gid size" (its TOTALCHARS).
const TOTAL_CHARS: usize = 25;

/// `drwxr-xr-x`-style mode string, with s/S/t/T for setuid, setgid and sticky.
pub fn mode_string(inode: &Inode) -> String {
    let t = match inode.kind {
        InodeKind::Directory => 'd',
        InodeKind::File => '-',
        InodeKind::Symlink => 'l',
        InodeKind::BlockDevice => 'b',
        InodeKind::CharDevice => 'c',
        InodeKind::Fifo => 'p',
        InodeKind::Socket => 's',
    };
    let p = u32::from(inode.permissions);
    let bit = |mask: u32, c: char| if p & mask != 0 { c } else { '-' };
    let special = |x: bool, set: bool, lower: char, upper: char, plain: char| match (x, set) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => plain,
        (false, false) => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(p & 0o100 != 0, p & 0o4000 != 0, 's', 'S', 'x'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(p & 0o010 != 0, p & 0o2000 != 0, 's', 'S', 'x'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(p & 0o001 != 0, p & 0o1000 != 0, 't', 'T', 'x'));
    s
}

/// Everything before the path in an `unsquashfs -lln` line (ends with a space).
pub fn long_prefix(inode: &Inode) -> String {
    let ids = format!("{}/{}", inode.uid, inode.gid);
    let width = TOTAL_CHARS.saturating_sub(ids.len() - 1);
    let size = match inode.kind {
        InodeKind::BlockDevice | InodeKind::CharDevice => {
            // unsquashfs prints the on-disk encoding split as data >> 8, data & 0xff.
            let r = inode.rdev as i32;
            format!(
                "{:>w$}{:>3},{:>3}",
                " ",
                r >> 8,
                r & 0xff,
                w = width.saturating_sub(7)
            )
        }
        _ => format!("{:>width$}", inode.size),
    };
    let (y, mo, d, h, mi, _, _) = local_time(i64::from(inode.mtime));
    format!(
        "{} {ids} {size} {y}-{mo:02}-{d:02} {h:02}:{mi:02} ",
        mode_string(inode)
    )
}
