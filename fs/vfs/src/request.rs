//! [`Request`]: who asks, for the owner of what a writable filesystem creates.

/// The caller of one operation.
///
/// FUSE sends no supplementary groups, so permission checks are the kernel's (squashbox
/// mounts with `default_permissions`); a filesystem uses these fields for the owner and mode
/// of what it creates, and for the rules only it can apply (sticky directories, `chown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    /// Effective uid of the calling process.
    pub uid: u32,
    /// Effective gid of the calling process.
    pub gid: u32,
    /// Thread id of the caller (0 when the kernel sent none).
    pub pid: u32,
    /// The caller's umask, for operations that create (mknod, mkdir, create); 0 otherwise.
    pub umask: u32,
}

impl Request {
    /// A request from root with no umask (for tests and internal calls).
    pub fn root() -> Request {
        Request::default()
    }
}
