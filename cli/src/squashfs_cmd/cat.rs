//! `squashbox squashfs cat`: a file's bytes to stdout.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use squashbox_squashfs::InodeKind;

use super::resolve::resolve;
use crate::image_arg::ImageArgs;

/// Arguments of `squashbox squashfs cat`.
#[derive(clap::Args)]
pub struct CatArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Path of the file inside the image.
    #[arg(value_name = "PATH")]
    path: String,
}

/// Bytes read per request.
const CHUNK: usize = 1 << 20;

/// Run `cat`.
pub fn run(args: CatArgs) -> Result<ExitCode> {
    let opened = args.image.open()?;
    let image = &opened.image;
    let inode = resolve(image, args.path.as_bytes(), true)?;
    if inode.kind != InodeKind::File {
        bail!("{}: not a regular file", args.path);
    }
    let mut out = std::io::stdout().lock();
    let mut buf = vec![
        0u8;
        CHUNK
            .min(usize::try_from(inode.size).unwrap_or(CHUNK))
            .max(1)
    ];
    let mut offset = 0u64;
    while offset < inode.size {
        let n = image
            .read(&inode, offset, &mut buf)
            .with_context(|| format!("reading {} at offset {offset}", args.path))?;
        if n == 0 {
            bail!(
                "{}: file ends at {offset}, before its size {}",
                args.path,
                inode.size
            );
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
