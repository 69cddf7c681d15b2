//! Merged directory listings.
//!
//! A listing is built whole when it starts (offset 0) and kept with the directory handle,
//! so later calls resume by position: offsets are 1 after ".", 2 after "..", and 3 + i
//! after the i-th merged entry. A handle-less call builds the listing afresh.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use squashbox_vfs::{DirItem, DirVisitor, Errno, FileHandle, FileType, NodeId, Request, Result};

use crate::Overlay;
use crate::layer::{OPAQUE_FILE, WHITEOUT_PREFIX, is_whiteout, is_whiteout_name};
use crate::nodes::Node;

/// One entry of a merged listing.
#[derive(Debug, Clone)]
pub struct MergedEntry {
    /// Name.
    pub name: OsString,
    /// Type, from the topmost layer holding the name.
    pub kind: FileType,
    /// The overlay inode number.
    pub ino: u64,
}

impl Overlay {
    /// Every visible entry of directory node `n`: each layer's entries top-down, a name
    /// shown once (the topmost wins), whiteouts and what they hide in lower layers left out.
    pub(crate) fn merged(&self, req: &Request, n: &Node) -> Result<Vec<MergedEntry>> {
        let mut out = Vec::new();
        let mut seen: HashSet<OsString> = HashSet::new();
        let mut hidden: HashSet<OsString> = HashSet::new();
        for part in &n.parts {
            let layer = &self.layers[part.layer];
            let mut whiteouts = Vec::new();
            for l in layer.list(req, part.node)? {
                if l.name == OPAQUE_FILE {
                    continue;
                }
                if is_whiteout_name(&l.name) {
                    let hid = &l.name.as_bytes()[WHITEOUT_PREFIX.len()..];
                    whiteouts.push(OsStr::from_bytes(hid).to_os_string());
                    continue;
                }
                if l.kind == FileType::CharDevice
                    && let Some(e) = layer.lookup(req, part.node, &l.name)?
                {
                    layer.forget(e.node);
                    if is_whiteout(&e.attr) {
                        whiteouts.push(l.name);
                        continue;
                    }
                }
                if hidden.contains(&l.name) || !seen.insert(l.name.clone()) {
                    continue;
                }
                // A copied-up object keeps the number recorded on it (as lookup reports).
                let recorded = if part.layer == 0
                    && self.upper.is_some()
                    && matches!(l.kind, FileType::RegularFile | FileType::Directory)
                {
                    match layer.lookup(req, part.node, &l.name)? {
                        Some(e) => {
                            let r = self.recorded_ino(req, e.node);
                            layer.forget(e.node);
                            r
                        }
                        None => None,
                    }
                } else {
                    None
                };
                out.push(MergedEntry {
                    ino: recorded.unwrap_or_else(|| self.ids.ino(layer.tag, l.ino)),
                    name: l.name,
                    kind: l.kind,
                });
            }
            hidden.extend(whiteouts);
        }
        Ok(out)
    }

    pub(crate) fn do_readdir(
        &self,
        req: &Request,
        id: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        let n = self.node(id)?;
        if n.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let handle = self.handles.get(fh);
        let entries = match &handle {
            Some(h) => {
                let mut cached = h.listing.lock();
                match (&*cached, offset) {
                    (Some(list), o) if o != 0 => Arc::clone(list),
                    _ => {
                        let list = Arc::new(self.merged(req, &n)?);
                        *cached = Some(Arc::clone(&list));
                        list
                    }
                }
            }
            None => Arc::new(self.merged(req, &n)?),
        };
        if offset == 0 {
            let ino = self.do_getattr(req, id)?.attr.ino;
            let item = DirItem {
                name: OsStr::new("."),
                ino,
                kind: FileType::Directory,
                next_offset: 1,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        if offset <= 1 {
            let parent = if id == squashbox_vfs::ROOT_ID {
                id
            } else {
                n.parent
            };
            let ino = self.do_getattr(req, parent).map_or(parent, |a| a.attr.ino);
            let item = DirItem {
                name: OsStr::new(".."),
                ino,
                kind: FileType::Directory,
                next_offset: 2,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        let skip = usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(skip) {
            let next_offset = i as u64 + 3;
            if plus {
                let Some(entry) = self.do_lookup(req, id, &e.name)? else {
                    continue; // gone since the listing was built
                };
                let item = DirItem {
                    name: &e.name,
                    ino: entry.attr.ino,
                    kind: entry.attr.kind,
                    next_offset,
                };
                if !visit(item, Some(&entry)) {
                    self.do_forget(entry.node, 1);
                    return Ok(());
                }
            } else {
                let item = DirItem {
                    name: &e.name,
                    ino: e.ino,
                    kind: e.kind,
                    next_offset,
                };
                if !visit(item, None) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn do_forget(&self, id: NodeId, n: u64) {
        let parts = self.nodes.forget(id, n);
        self.give_back(parts);
    }
}
