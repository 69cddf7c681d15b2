//! Mount an overlay of host directories over FUSE, for trying it by hand:
//!
//! ```text
//! mount_overlay MOUNTPOINT LOWER[:LOWER...] [UPPER WORK]
//! ```
//!
//! LOWERs are host directories (top first); UPPER and WORK, when given, are host directories
//! on one filesystem. It serves until the mountpoint is unmounted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use squashbox_fuse::{MountTarget, ServeOptions, serve};
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::Filesystem;

fn host(p: &Path, read_only: bool) -> Result<Arc<dyn Filesystem>, String> {
    let opts = HostDirOptions {
        read_only,
        ..Default::default()
    };
    Ok(Arc::new(HostDir::open(p, opts)?))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 && args.len() != 4 {
        return Err("usage: mount_overlay MOUNTPOINT LOWER[:LOWER...] [UPPER WORK]".into());
    }
    let lowers = args[1]
        .split(':')
        .map(|l| host(Path::new(l), true))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = if args.len() == 4 {
        // Serve the common parent of UPPER and WORK; name both inside it.
        let (u, w) = (PathBuf::from(&args[2]), PathBuf::from(&args[3]));
        let base = u.parent().ok_or("UPPER has no parent")?.to_path_buf();
        if w.parent() != Some(base.as_path()) {
            return Err("UPPER and WORK must be in the same directory".into());
        }
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        Some(UpperLayer {
            fs: host(&base, false)?,
            upper: name(&u).ok_or("bad UPPER")?,
            work: name(&w).ok_or("bad WORK")?,
        })
    } else {
        None
    };
    let fs: Arc<dyn Filesystem> = Arc::new(Overlay::new(lowers, upper)?);
    serve(
        Box::new(move |_| Ok((fs, "squashbox-overlay".to_string()))),
        MountTarget::Path(PathBuf::from(&args[0])),
        &ServeOptions::default(),
        Box::new(|r| {
            if let Err(e) = r {
                eprintln!("mount_overlay: {e}");
            }
        }),
    )
}
