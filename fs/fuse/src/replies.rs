//! Turning trait results into fuser replies, and fuser requests into our request context.

use fuser::{Generation, ReplyEmpty, ReplyEntry, ReplyXattr, Request};
use squashbox_vfs as vfs;
use vfs::XattrData;

use crate::convert::{errno, file_attr};

/// The request context a filesystem sees (`umask` for operations that create).
pub(crate) fn ctx(req: &Request, umask: u32) -> vfs::Request {
    vfs::Request {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
        umask,
    }
}

/// Answer an xattr request: a size probe or the data.
pub(crate) fn reply_xattr(r: vfs::Result<XattrData>, reply: ReplyXattr) {
    match r {
        Ok(XattrData::Size(n)) => reply.size(n),
        Ok(XattrData::Data(d)) => reply.data(&d),
        Err(e) => reply.error(errno(e)),
    }
}

/// Answer a request that returns nothing.
pub(crate) fn reply_empty(r: vfs::Result<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

/// Answer with an entry and its TTLs.
pub(crate) fn reply_entry(r: vfs::Result<vfs::Entry>, reply: ReplyEntry) {
    match r {
        Ok(e) => reply.entry_with_ttls(
            &e.attr_ttl,
            &e.entry_ttl,
            &file_attr(&e.attr, e.node),
            Generation(e.generation),
        ),
        Err(e) => reply.error(errno(e)),
    }
}
