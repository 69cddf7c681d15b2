//! What the adapter asks the kernel for in INIT: capabilities, request sizes and the
//! background queue, following the filesystem's [`MountPolicy`].

use fuser::{InitFlags, KernelConfig};
use squashbox_vfs::MountPolicy;

/// The capabilities requested in `init`, in the order tried (the writeback cache is added
/// when the filesystem's policy allows it).
pub const WANTED_CAPABILITIES: &[(&str, InitFlags)] = &[
    ("PARALLEL_DIROPS", InitFlags::FUSE_PARALLEL_DIROPS),
    ("DO_READDIRPLUS", InitFlags::FUSE_DO_READDIRPLUS),
    ("READDIRPLUS_AUTO", InitFlags::FUSE_READDIRPLUS_AUTO),
    ("CACHE_SYMLINKS", InitFlags::FUSE_CACHE_SYMLINKS),
    ("ASYNC_DIO", InitFlags::FUSE_ASYNC_DIO),
    ("MAX_PAGES", InitFlags::FUSE_MAX_PAGES),
    ("NO_OPEN_SUPPORT", InitFlags::FUSE_NO_OPEN_SUPPORT),
    ("NO_OPENDIR_SUPPORT", InitFlags::FUSE_NO_OPENDIR_SUPPORT),
];

/// Ask `config` for every wanted capability, the writeback cache and KILLPRIV_V2 where
/// `policy` allows them, 1 MiB requests, as much readahead as the kernel allows and a
/// background queue of `max_background`. Returns the names of the capabilities granted.
pub fn request(
    config: &mut KernelConfig,
    policy: &MountPolicy,
    max_background: u16,
) -> Vec<&'static str> {
    let mut granted = Vec::new();
    for (name, flag) in WANTED_CAPABILITIES {
        if config.add_capabilities(*flag).is_ok() {
            granted.push(*name);
        }
    }
    if policy.writeback_cache
        && config
            .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
            .is_ok()
    {
        granted.push("WRITEBACK_CACHE");
    }
    // The filesystem clears set-IDs and capabilities itself: the kernel then skips its
    // getxattr(security.capability) before every write (and a GETATTR before chown).
    if policy.kills_privs
        && config
            .add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2)
            .is_ok()
    {
        granted.push("HANDLE_KILLPRIV_V2");
    }
    // 1 MiB requests (max_pages = max(max_write, max_readahead) / page size; the kernel
    // caps it by fs.fuse.max_pages_limit) and as much readahead as the kernel allows.
    let _ = config.set_max_write(1 << 20);
    if let Err(max) = config.set_max_readahead(1 << 20) {
        let _ = config.set_max_readahead(max);
    }
    let _ = config.set_max_background(max_background);
    let _ = config.set_congestion_threshold(max_background / 4 * 3);
    granted
}
