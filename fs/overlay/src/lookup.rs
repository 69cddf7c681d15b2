//! Lookup through the stack, and the attributes of overlay nodes.

use std::ffi::OsStr;
use std::time::Duration;

use squashbox_vfs::{Attr, AttrOut, Entry, Errno, FileType, NodeId, Request, Result};

use crate::Overlay;
use crate::layer::{is_whiteout, is_whiteout_name, no_enosys, whiteout_name};
use crate::nodes::{Node, Part};

/// What one lookup found: the layer entries making up the node, top first.
struct Found {
    entries: Vec<(usize, Entry)>,
}

impl Overlay {
    /// Give back the layer lookups of `found`.
    fn release_found(&self, found: Vec<(usize, Entry)>) {
        for (layer, e) in found {
            self.layers[layer].forget(e.node);
        }
    }

    /// Resolve `name` under `parent` through its layers, top-down: stop at a whiteout (0/0
    /// device or `.wh.NAME`), a non-directory, or an opaque directory; a non-directory
    /// below a directory is hidden.
    fn resolve(&self, req: &Request, parent: &Node, name: &OsStr) -> Result<Option<Found>> {
        self.resolve_noting(req, parent, name, &mut false)
    }

    /// [`Overlay::resolve`], also saying whether any layer held `name` (a whiteout or a
    /// hidden object included) in `held`.
    fn resolve_noting(
        &self,
        req: &Request,
        parent: &Node,
        name: &OsStr,
        held: &mut bool,
    ) -> Result<Option<Found>> {
        let mut found: Vec<(usize, Entry)> = Vec::new();
        // Whether to go on to the next layer. In the last layer of `parent` there is none,
        // so neither opacity nor a `.wh.` name is asked about there.
        let mut step = |found: &mut Vec<(usize, Entry)>, part: &Part, last: bool| -> Result<bool> {
            let layer = &self.layers[part.layer];
            match layer.lookup(req, part.node, name)? {
                Some(e) => {
                    *held = true;
                    let is_dir = e.attr.kind == FileType::Directory;
                    if is_whiteout(&e.attr) || (!found.is_empty() && !is_dir) {
                        layer.forget(e.node);
                        return Ok(false);
                    }
                    let node = e.node;
                    found.push((part.layer, e));
                    Ok(is_dir && !last && !layer.is_opaque(req, node)?)
                }
                None if last => Ok(false),
                None => Ok(!layer.exists(req, part.node, &whiteout_name(name))?),
            }
        };
        let count = parent.parts.len();
        for (i, part) in parent.parts.iter().enumerate() {
            match step(&mut found, part, i + 1 == count) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    self.release_found(found);
                    return Err(e);
                }
            }
        }
        Ok(if found.is_empty() {
            None
        } else {
            Some(Found { entries: found })
        })
    }

    /// The top layer object `name` shows in directory node `parent` (nothing is kept).
    pub(crate) fn resolve_top(
        &self,
        req: &Request,
        parent: &Node,
        name: &OsStr,
    ) -> Result<Option<Part>> {
        Ok(match self.resolve(req, parent, name)? {
            Some(found) => {
                let (layer, e) = found.entries[0];
                self.release_found(found.entries);
                Some(Part {
                    layer,
                    node: e.node,
                })
            }
            None => None,
        })
    }

    /// Whether `name` shows in directory node `parent` (nothing is kept).
    pub(crate) fn resolve_visible(
        &self,
        req: &Request,
        parent: &Node,
        name: &OsStr,
    ) -> Result<bool> {
        Ok(match self.resolve(req, parent, name)? {
            Some(found) => {
                self.release_found(found.entries);
                true
            }
            None => false,
        })
    }

    /// The overlay's view of a node's attributes, from its top layer's.
    pub(crate) fn overlay_attr(
        &self,
        id: NodeId,
        top_layer: usize,
        mut attr: Attr,
        merged: bool,
    ) -> Attr {
        attr.ino = if id == squashbox_vfs::ROOT_ID {
            self.ids.ino(self.layers[top_layer].tag, attr.ino)
        } else {
            id
        };
        if merged && attr.kind == FileType::Directory {
            // As the kernel: counting subdirectories over the layers is not worth it.
            attr.nlink = 1;
        }
        attr
    }

    pub(crate) fn do_lookup(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
    ) -> Result<Option<Entry>> {
        let p = self.node(parent)?;
        if p.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if name == "." || name == ".." {
            return Err(Errno::ENOENT);
        }
        if is_whiteout_name(name) {
            return Ok(None);
        }
        // A lookup that ran while the object was being copied up finds its number taken by
        // the upper copy: look again once; a clash that stays is a different object.
        for retry in [true, false] {
            let seen = self.misses.lookup_started();
            let mut held = false;
            let Some(found) = self.resolve_noting(req, &p, name, &mut held)? else {
                // Only a true absence (no whiteout there) may spare a later create its probe.
                let upper_only = p.parts.len() == 1 && p.parts[0].layer == 0;
                if upper_only && !held && self.upper.is_some() {
                    self.misses.record(parent, name, seen);
                }
                return Ok(None);
            };
            match self.bind(req, parent, name, found, retry)? {
                Some(entry) => return Ok(Some(entry)),
                None => continue,
            }
        }
        Err(Errno::EIO)
    }

    /// Give what `resolve` found its node id and record the lookup. `None`: the number is
    /// taken by another object and `retry` asked to look again instead (the lookups of
    /// `found` are given back).
    fn bind(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        found: Found,
        retry: bool,
    ) -> Result<Option<Entry>> {
        let (top_layer, top) = found.entries[0];
        let recorded = if top_layer == 0
            && self.upper.is_some()
            && matches!(top.attr.kind, FileType::RegularFile | FileType::Directory)
        {
            self.recorded_ino(req, top.node)
        } else {
            None
        };
        let mut id =
            recorded.unwrap_or_else(|| self.ids.ino(self.layers[top_layer].tag, top.attr.ino));
        let merged = found.entries.len() > 1;
        let entry_ttl = found
            .entries
            .iter()
            .map(|(_, e)| e.entry_ttl)
            .min()
            .unwrap_or(Duration::ZERO);
        let attr_ttl = found
            .entries
            .iter()
            .map(|(_, e)| e.attr_ttl)
            .min()
            .unwrap_or(Duration::ZERO);
        let parts = found
            .entries
            .iter()
            .map(|&(layer, e)| Part {
                layer,
                node: e.node,
            })
            .collect();
        let kind = top.attr.kind;
        let extra = match self.nodes.remember(id, parent, name, kind, parts) {
            Ok(extra) => extra,
            Err(parts) if retry => {
                self.give_back(parts);
                return Ok(None);
            }
            Err(parts) => {
                // The number belongs to another object: give this one its own.
                id = self.ids.conflict(top_layer, top.node);
                match self.nodes.remember(id, parent, name, kind, parts) {
                    Ok(extra) => extra,
                    Err(parts) => {
                        self.give_back(parts);
                        return Err(Errno::EIO);
                    }
                }
            }
        };
        self.give_back(extra);
        Ok(Some(Entry {
            node: id,
            generation: 0,
            attr: self.overlay_attr(id, top_layer, top.attr, merged),
            entry_ttl,
            attr_ttl,
        }))
    }

    /// Record upper entry `made`, just made as `name` in `parent` where nothing showed (so
    /// it is all that name now resolves to: a non-directory stops the lookup, and below a
    /// new directory no layer shows the name), without looking it up again. Takes over
    /// `made`'s lookup. `None`: its number is taken (a copy-up in between); the lookup was
    /// given back and the caller looks the name up instead.
    pub(crate) fn bind_made(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        made: Entry,
    ) -> Result<Option<Entry>> {
        let found = Found {
            entries: vec![(0, made)],
        };
        self.bind(req, parent, name, found, true)
    }

    pub(crate) fn do_getattr(&self, req: &Request, id: NodeId) -> Result<AttrOut> {
        let n = self.node(id)?;
        let top = n.parts[0];
        let out = self.layers[top.layer]
            .fs
            .getattr(req, top.node, None)
            .map_err(no_enosys)?;
        Ok(AttrOut {
            attr: self.overlay_attr(id, top.layer, out.attr, n.parts.len() > 1),
            ttl: out.ttl,
        })
    }
}
