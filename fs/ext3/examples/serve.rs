//! Serve an ext3 image over FUSE until it is unmounted (for manual checks and timing):
//! `cargo run --release -p squashbox-ext3 --example serve -- IMAGE MOUNTPOINT [ro]`.

use std::path::PathBuf;
use std::sync::Arc;

use squashbox_ext3::Ext3Fs;
use squashbox_fuse::{MountTarget, ServeOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: serve IMAGE MOUNTPOINT [ro]");
        std::process::exit(2);
    }
    let img = PathBuf::from(&args[0]);
    let read_only = args.get(2).is_some_and(|a| a == "ro");
    let name = args[0].clone();
    let mountpoint = PathBuf::from(&args[1]);
    let open: squashbox_fuse::Opener<'_> = Box::new(move |_| {
        let fs = Ext3Fs::open(&img, 0, read_only).map_err(|e| e.to_string())?;
        if let Some(r) = fs.read_only_reason() {
            eprintln!("serve: read-only: {r}");
        }
        Ok((Arc::new(fs) as Arc<dyn squashbox_vfs::Filesystem>, name))
    });
    let target = MountTarget::Path(mountpoint);
    if let Err(e) = squashbox_fuse::serve(open, target, &ServeOptions::default(), Box::new(|_| {}))
    {
        eprintln!("serve: {e}");
        std::process::exit(1);
    }
}
