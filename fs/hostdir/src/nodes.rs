//! [`NodeTable`]: node ids, the inode-number scheme, and where each node was last seen.
//!
//! **Numbers.** The node id of a host inode is its own inode number, so `stat` through the
//! mount shows the host's numbers, and a node id found again after `forget` (or after a
//! remount) is the same. The exceptions, all recorded in a remap table that lives as long as
//! the [`NodeTable`] (stable within a mount, not across remounts):
//! - inodes on another device than the served directory (a mount point inside it),
//! - inode numbers at or above [`REMAP_BASE`] (2^47; filesystems that use the high bits,
//!   such as a kernel overlay with xino or some network filesystems),
//! - a non-root inode numbered 1 (node 1 is FUSE's root);
//!
//! they get numbers counting up from [`REMAP_BASE`]. Every number handed out is below
//! [`INO_LIMIT`] (2^48), which leaves the top 16 bits to a stacking overlay for its layer
//! index. The root is node 1 and reports its host number (or 1 if that does not fit).
//!
//! **Locations.** No descriptor is kept per node for ever: each node records the parent
//! node and name it was last seen under, and holds a reference on that parent, so a node
//! whose descriptor was evicted can be opened again from its parent (checked against the
//! recorded device and inode number). A node the kernel has forgotten, and that no known
//! child refers to, stays known a while longer (the last `keep_forgotten` such nodes), so a
//! caller that uses a node id after its last forget still finds it; older ones go away.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};

use parking_lot::Mutex;
use squashbox_vfs::{FileType, NodeId, ROOT_ID};

/// Host inode numbers below this are used as they are.
pub const REMAP_BASE: u64 = 1 << 47;
/// Every node id and `st_ino` this crate hands out is below this.
pub const INO_LIMIT: u64 = 1 << 48;

/// What the table knows about one node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Host device.
    pub dev: u64,
    /// Host inode number.
    pub ino: u64,
    /// Type at the last lookup.
    pub kind: FileType,
    /// The directory it was last seen in.
    pub parent: NodeId,
    /// Its name there.
    pub name: OsString,
    nlookup: u64,
    children: u64,
    idle: bool,
}

/// Where to find a node again.
#[derive(Debug, Clone)]
pub struct Location {
    /// Parent node.
    pub parent: NodeId,
    /// Name in the parent.
    pub name: OsString,
    /// Host device expected there.
    pub dev: u64,
    /// Host inode number expected there.
    pub ino: u64,
    /// Type at the last lookup.
    pub kind: FileType,
}

struct Inner {
    nodes: HashMap<NodeId, Node>,
    idle: VecDeque<NodeId>,
    keep: usize,
    remap: HashMap<(u64, u64), NodeId>,
    next_remap: u64,
}

/// Node ids and locations of one served directory.
pub struct NodeTable {
    root_dev: u64,
    root_ino: u64,
    inner: Mutex<Inner>,
}

impl Inner {
    fn id_for(&mut self, root: (u64, u64), dev: u64, ino: u64) -> NodeId {
        if (dev, ino) == root {
            return ROOT_ID;
        }
        if dev == root.0 && ino < REMAP_BASE && ino != ROOT_ID && ino != 0 {
            return ino;
        }
        if let Some(&id) = self.remap.get(&(dev, ino)) {
            return id;
        }
        let id = self.next_remap;
        // 2^47 numbers: exhausting them would take longer than any mount lives.
        self.next_remap = (self.next_remap + 1).min(INO_LIMIT - 1);
        self.remap.insert((dev, ino), id);
        id
    }

    /// `node` may have lost its last reference: queue it, and drop the oldest queued nodes
    /// (and, in turn, parents nothing holds any more) beyond `keep`. Returns the dropped ids.
    fn collect(&mut self, node: NodeId, dropped: &mut Vec<NodeId>) {
        self.park(node);
        while self.idle.len() > self.keep {
            let Some(victim) = self.idle.pop_front() else {
                break;
            };
            let Some(n) = self.nodes.get_mut(&victim) else {
                continue;
            };
            n.idle = false;
            if n.nlookup > 0 || n.children > 0 {
                continue;
            }
            let parent = n.parent;
            self.nodes.remove(&victim);
            dropped.push(victim);
            if let Some(p) = self.nodes.get_mut(&parent) {
                p.children = p.children.saturating_sub(1);
                self.park(parent);
            }
        }
    }

    fn park(&mut self, node: NodeId) {
        if node == ROOT_ID {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&node)
            && n.nlookup == 0
            && n.children == 0
            && !n.idle
        {
            n.idle = true;
            self.idle.push_back(node);
        }
    }

    fn add_child(&mut self, parent: NodeId) {
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children += 1;
        }
    }

    /// Move `node` to (`parent`, `name`), moving its reference on the parent.
    fn relocate(&mut self, node: NodeId, parent: NodeId, name: &OsStr, dropped: &mut Vec<NodeId>) {
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        if n.parent == parent && n.name == name {
            return;
        }
        let old = n.parent;
        n.parent = parent;
        n.name = name.to_os_string();
        self.add_child(parent);
        if let Some(p) = self.nodes.get_mut(&old) {
            p.children = p.children.saturating_sub(1);
        }
        self.collect(old, dropped);
    }
}

impl NodeTable {
    /// A table for a directory whose root is (`root_dev`, `root_ino`), keeping up to
    /// `keep_forgotten` unreferenced nodes.
    pub fn new(root_dev: u64, root_ino: u64, keep_forgotten: usize) -> NodeTable {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_ID,
            Node {
                dev: root_dev,
                ino: root_ino,
                kind: FileType::Directory,
                parent: ROOT_ID,
                name: OsString::new(),
                nlookup: 1,
                children: 0,
                idle: false,
            },
        );
        NodeTable {
            root_dev,
            root_ino,
            inner: Mutex::new(Inner {
                nodes,
                idle: VecDeque::new(),
                keep: keep_forgotten,
                remap: HashMap::new(),
                next_remap: REMAP_BASE,
            }),
        }
    }

    /// The node id of host inode (`dev`, `ino`) under the scheme (recording a remap if it
    /// needs one), without taking a reference.
    pub fn id_for(&self, dev: u64, ino: u64) -> NodeId {
        let root = (self.root_dev, self.root_ino);
        self.inner.lock().id_for(root, dev, ino)
    }

    /// The `st_ino` reported for `node`.
    pub fn st_ino(&self, node: NodeId) -> u64 {
        if node == ROOT_ID {
            if self.root_ino < REMAP_BASE && self.root_ino != 0 {
                self.root_ino
            } else {
                ROOT_ID
            }
        } else {
            node
        }
    }

    /// Record one lookup of host inode `st` as `name` in `parent`; returns its node id.
    /// The second value lists nodes that went away (their descriptors can be dropped).
    pub fn remember(
        &self,
        parent: NodeId,
        name: &OsStr,
        dev: u64,
        ino: u64,
        kind: FileType,
    ) -> (NodeId, Vec<NodeId>) {
        let root = (self.root_dev, self.root_ino);
        let mut dropped = Vec::new();
        let mut inner = self.inner.lock();
        let id = inner.id_for(root, dev, ino);
        if id == ROOT_ID {
            return (id, dropped);
        }
        match inner.nodes.get_mut(&id) {
            Some(n) => {
                n.nlookup += 1;
                n.kind = kind;
                n.dev = dev;
                n.ino = ino;
                inner.relocate(id, parent, name, &mut dropped);
            }
            None => {
                inner.nodes.insert(
                    id,
                    Node {
                        dev,
                        ino,
                        kind,
                        parent,
                        name: name.to_os_string(),
                        nlookup: 1,
                        children: 0,
                        idle: false,
                    },
                );
                inner.add_child(parent);
            }
        }
        (id, dropped)
    }

    /// The kernel dropped `n` lookups of `node`; returns the nodes that went away.
    pub fn forget(&self, node: NodeId, n: u64) -> Vec<NodeId> {
        let mut dropped = Vec::new();
        if node == ROOT_ID {
            return dropped;
        }
        let mut inner = self.inner.lock();
        if let Some(x) = inner.nodes.get_mut(&node) {
            x.nlookup = x.nlookup.saturating_sub(n);
            inner.collect(node, &mut dropped);
        }
        dropped
    }

    /// Where `node` was last seen (`None`: never handed out, or forgotten).
    pub fn location(&self, node: NodeId) -> Option<Location> {
        let inner = self.inner.lock();
        inner.nodes.get(&node).map(|n| Location {
            parent: n.parent,
            name: n.name.clone(),
            dev: n.dev,
            ino: n.ino,
            kind: n.kind,
        })
    }

    /// The type of `node` at its last lookup (`None`: not known). Types never change, so
    /// this spares an `fstat` where only the type matters.
    pub fn kind(&self, node: NodeId) -> Option<FileType> {
        self.inner.lock().nodes.get(&node).map(|n| n.kind)
    }

    /// Whether `node` is known.
    pub fn contains(&self, node: NodeId) -> bool {
        self.inner.lock().nodes.contains_key(&node)
    }

    /// `node` is now `name` in `parent` (after a rename through us), if it is known.
    pub fn moved(&self, node: NodeId, parent: NodeId, name: &OsStr) -> Vec<NodeId> {
        let mut dropped = Vec::new();
        if node != ROOT_ID {
            self.inner.lock().relocate(node, parent, name, &mut dropped);
        }
        dropped
    }

    /// Nodes known now (the root included).
    pub fn len(&self) -> usize {
        self.inner.lock().nodes.len()
    }

    /// Whether only the root is known.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_numbers_pass_through_and_the_rest_is_remapped() {
        let t = NodeTable::new(7, 2, 0);
        assert_eq!(t.id_for(7, 2), ROOT_ID);
        assert_eq!(t.st_ino(ROOT_ID), 2);
        assert_eq!(t.id_for(7, 12345), 12345);
        let high = t.id_for(7, 1 << 60);
        let other_dev = t.id_for(8, 12345);
        let one = t.id_for(7, 1);
        assert!(
            [high, other_dev, one]
                .iter()
                .all(|&i| (REMAP_BASE..INO_LIMIT).contains(&i))
        );
        assert_ne!(high, other_dev);
        assert_eq!(t.id_for(7, 1 << 60), high, "a remap is stable");
    }

    #[test]
    fn nodes_live_while_looked_up_or_holding_children() {
        let t = NodeTable::new(7, 2, 0);
        let (d, _) = t.remember(ROOT_ID, OsStr::new("d"), 7, 10, FileType::Directory);
        let (f, _) = t.remember(d, OsStr::new("f"), 7, 11, FileType::RegularFile);
        assert!(t.forget(d, 1).is_empty(), "d still holds f");
        assert_eq!(t.location(f).unwrap().parent, d);
        assert_eq!(t.forget(f, 1), vec![f, d]);
        assert!(t.is_empty());
        let (f, _) = t.remember(ROOT_ID, OsStr::new("f"), 7, 11, FileType::RegularFile);
        let (e, _) = t.remember(ROOT_ID, OsStr::new("e"), 7, 12, FileType::Directory);
        t.moved(f, e, OsStr::new("g"));
        let loc = t.location(f).unwrap();
        assert_eq!((loc.parent, loc.name.as_os_str()), (e, OsStr::new("g")));
        assert!(t.forget(e, 1).is_empty());
        assert_eq!(t.forget(f, 1), vec![f, e]);
    }

    #[test]
    fn forgotten_nodes_stay_known_a_while() {
        let t = NodeTable::new(7, 2, 2);
        let (a, _) = t.remember(ROOT_ID, OsStr::new("a"), 7, 10, FileType::RegularFile);
        let (b, _) = t.remember(ROOT_ID, OsStr::new("b"), 7, 11, FileType::RegularFile);
        let (c, _) = t.remember(ROOT_ID, OsStr::new("c"), 7, 12, FileType::RegularFile);
        assert!(t.forget(a, 1).is_empty() && t.forget(b, 1).is_empty());
        assert!(t.location(a).is_some(), "kept after its forget");
        assert_eq!(t.forget(c, 1), vec![a], "the oldest goes beyond the bound");
        let (b2, _) = t.remember(ROOT_ID, OsStr::new("b"), 7, 11, FileType::RegularFile);
        assert_eq!(b2, b);
        assert_eq!(t.len(), 3, "root, b (looked up again) and c (kept)");
    }
}
