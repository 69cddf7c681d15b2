//! [`NodeTable`]: the overlay's nodes, each a stack of layer nodes.
//!
//! A node records the layer nodes it is made of, top first (one for a non-directory; every
//! layer holding the directory down to an opaque one for a directory), and holds one lookup
//! of each on its layer, given back when the node goes away. Like the host directory, a node
//! records its parent and name and holds a reference on the parent; nodes the kernel forgot
//! stay known a while (the last `keep` of them).

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};

use parking_lot::Mutex;
use squashbox_vfs::{FileType, NodeId, ROOT_ID};

/// One layer object of a node: the layer's index in the overlay and its node id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Index into the overlay's layers (0: the topmost).
    pub layer: usize,
    /// The node id in that layer.
    pub node: NodeId,
}

/// What the table knows about a node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its type (that of the top part).
    pub kind: FileType,
    /// Layer objects, top first.
    pub parts: Vec<Part>,
    /// The directory it was last seen in.
    pub parent: NodeId,
    /// Its name there.
    pub name: OsString,
    nlookup: u64,
    children: u64,
    idle: bool,
}

struct Inner {
    nodes: HashMap<NodeId, Node>,
    idle: VecDeque<NodeId>,
    keep: usize,
}

/// The overlay's nodes.
pub struct NodeTable {
    inner: Mutex<Inner>,
}

impl Inner {
    fn park(&mut self, id: NodeId) {
        if id == ROOT_ID {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&id)
            && n.nlookup == 0
            && n.children == 0
            && !n.idle
        {
            n.idle = true;
            self.idle.push_back(id);
        }
    }

    /// Queue `id` if unreferenced and drop the oldest beyond `keep`; returns the parts of
    /// dropped nodes, whose layer lookups the caller gives back.
    fn collect(&mut self, id: NodeId, released: &mut Vec<Part>) {
        self.park(id);
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
            let n = self.nodes.remove(&victim).expect("just seen");
            released.extend(n.parts);
            if let Some(p) = self.nodes.get_mut(&n.parent) {
                p.children = p.children.saturating_sub(1);
                self.park(n.parent);
            }
        }
    }
}

impl NodeTable {
    /// A table whose root is made of `root_parts`, keeping up to `keep` forgotten nodes.
    pub fn new(root_parts: Vec<Part>, keep: usize) -> NodeTable {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_ID,
            Node {
                kind: FileType::Directory,
                parts: root_parts,
                parent: ROOT_ID,
                name: OsString::new(),
                nlookup: 1,
                children: 0,
                idle: false,
            },
        );
        NodeTable {
            inner: Mutex::new(Inner {
                nodes,
                idle: VecDeque::new(),
                keep,
            }),
        }
    }

    /// A copy of what is known about `id`.
    pub fn get(&self, id: NodeId) -> Option<Node> {
        self.inner.lock().nodes.get(&id).cloned()
    }

    /// Record one lookup of node `id` made of `parts`, seen as `name` in `parent`. When the
    /// node is already known it keeps its parts and `parts` is returned for the caller to
    /// give back; otherwise nothing is returned. `Err(parts)`: `id` is known as another
    /// object (its top part differs).
    pub fn remember(
        &self,
        id: NodeId,
        parent: NodeId,
        name: &OsStr,
        kind: FileType,
        parts: Vec<Part>,
    ) -> Result<Vec<Part>, Vec<Part>> {
        let mut inner = self.inner.lock();
        if id == ROOT_ID {
            return Ok(parts);
        }
        if let Some(n) = inner.nodes.get(&id)
            && n.parts.first() != parts.first()
        {
            return Err(parts);
        }
        Ok(if let Some(n) = inner.nodes.get_mut(&id) {
            n.nlookup += 1;
            if n.parent != parent || n.name != name {
                let old = n.parent;
                n.parent = parent;
                n.name = name.to_os_string();
                if let Some(p) = inner.nodes.get_mut(&parent) {
                    p.children += 1;
                }
                if let Some(p) = inner.nodes.get_mut(&old) {
                    p.children = p.children.saturating_sub(1);
                }
                let mut released = Vec::new();
                inner.collect(old, &mut released);
                parts.into_iter().chain(released).collect()
            } else {
                parts
            }
        } else {
            inner.nodes.insert(
                id,
                Node {
                    kind,
                    parts,
                    parent,
                    name: name.to_os_string(),
                    nlookup: 1,
                    children: 0,
                    idle: false,
                },
            );
            if let Some(p) = inner.nodes.get_mut(&parent) {
                p.children += 1;
            }
            Vec::new()
        })
    }

    /// The kernel dropped `n` lookups of `id`; returns the layer parts to give back.
    pub fn forget(&self, id: NodeId, n: u64) -> Vec<Part> {
        let mut released = Vec::new();
        if id == ROOT_ID {
            return released;
        }
        let mut inner = self.inner.lock();
        if let Some(x) = inner.nodes.get_mut(&id) {
            x.nlookup = x.nlookup.saturating_sub(n);
            inner.collect(id, &mut released);
        }
        released
    }

    /// Replace the parts of `id` (after a copy-up); returns the old parts that are no longer
    /// used, for the caller to give back.
    pub fn set_parts(&self, id: NodeId, parts: Vec<Part>) -> Vec<Part> {
        let mut inner = self.inner.lock();
        match inner.nodes.get_mut(&id) {
            Some(n) => {
                let old = std::mem::replace(&mut n.parts, parts);
                old.into_iter().filter(|p| !n.parts.contains(p)).collect()
            }
            None => parts,
        }
    }

    /// `id` is now `name` in `parent` (after a rename); returns parts of nodes that went
    /// away.
    pub fn moved(&self, id: NodeId, parent: NodeId, name: &OsStr) -> Vec<Part> {
        let mut released = Vec::new();
        if id == ROOT_ID {
            return released;
        }
        let mut inner = self.inner.lock();
        let Some(n) = inner.nodes.get_mut(&id) else {
            return released;
        };
        if n.parent == parent && n.name == name {
            return released;
        }
        let old = std::mem::replace(&mut n.parent, parent);
        n.name = name.to_os_string();
        if let Some(p) = inner.nodes.get_mut(&parent) {
            p.children += 1;
        }
        if let Some(p) = inner.nodes.get_mut(&old) {
            p.children = p.children.saturating_sub(1);
        }
        inner.collect(old, &mut released);
        released
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
