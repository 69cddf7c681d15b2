//! [`FreshSet`]: nodes this server created and whose xattrs nobody has set since.
//!
//! The kernel asks for `security.capability` before the first write to every new inode and
//! again before each chown, and a stacking overlay asks for its own `trusted.*`/`user.*`
//! attributes after each create. A node made here (create, mknod, mkdir, symlink) starts
//! with no `security.capability`, `trusted.*` or `user.*` attribute: the host kernel attaches
//! only LSM labels (`security.*` other than the capability) and inherited ACLs
//! (`system.posix_acl_*`) at creation, so those names are still asked of the host. Any
//! setxattr or removexattr through this server takes the node out of the set (before the
//! call, so a failed one does too), and so does the node leaving the node table. As with
//! any overlay upper, changes made behind the server's back (another process setting
//! xattrs in the served directory while it is mounted) are not seen.

use std::collections::HashSet;

use parking_lot::Mutex;
use squashbox_vfs::NodeId;

/// Whether xattr `name` is certainly absent from a node made here, with no setxattr since.
pub fn absent_when_fresh(name: &[u8]) -> bool {
    name == b"security.capability" || name.starts_with(b"trusted.") || name.starts_with(b"user.")
}

/// The set of fresh nodes.
#[derive(Default)]
pub struct FreshSet {
    nodes: Mutex<HashSet<NodeId>>,
}

impl FreshSet {
    /// `node` was just created here.
    pub fn mark(&self, node: NodeId) {
        self.nodes.lock().insert(node);
    }

    /// `node`'s xattrs may have changed, or it left the node table.
    pub fn clear(&self, node: NodeId) {
        self.nodes.lock().remove(&node);
    }

    /// Whether `node` is fresh.
    pub fn contains(&self, node: NodeId) -> bool {
        self.nodes.lock().contains(&node)
    }

    /// Nodes in the set.
    pub fn len(&self) -> usize {
        self.nodes.lock().len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_never_set_at_creation_are_answered() {
        assert!(absent_when_fresh(b"security.capability"));
        assert!(absent_when_fresh(b"trusted.overlay.opaque"));
        assert!(absent_when_fresh(b"user.overlay.ino"));
        assert!(!absent_when_fresh(b"security.selinux"));
        assert!(!absent_when_fresh(b"system.posix_acl_access"));
        let s = FreshSet::default();
        s.mark(5);
        assert!(s.contains(5) && !s.contains(6));
        s.clear(5);
        assert!(s.is_empty());
    }
}
