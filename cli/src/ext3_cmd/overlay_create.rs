//! `squashbox overlay create`: the ext3 overlay image `apptainer overlay create` makes
//! (`mkfs.ext3 -d` of a directory holding `upper/` and `work/`), written by our own code
//! ([`squashbox_ext3::mkfs`]); for a SIF, appended as an overlay partition in the primary
//! partition's group.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use squashbox_ext3::mkfs::{MkfsOptions, NewDir, make_ext3};
use squashbox_sif::write::{EditOptions, Metadata, ObjectData, ObjectInput, add_object};
use squashbox_sif::{DataType, FsType, PartType, Sif, has_sif_magic};

/// Arguments of `squashbox overlay create`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Makes the ext3 image `apptainer overlay create` makes: 1 KiB blocks below 512 MiB, 4 KiB \
from 512 MiB, a journal, `upper/` and `work/` at the root owned by you (by root with \
--fakeroot). When PATH is a SIF file, the image is appended to it as an overlay partition \
in the primary partition's group; otherwise PATH must not exist yet.")]
pub struct CreateArgs {
    /// Size of the image in MiB (at least 64).
    #[arg(long, short = 's', default_value_t = 64)]
    size: u64,
    /// Create a sparse image (a plain file only).
    #[arg(long, short = 'S')]
    sparse: bool,
    /// Directory to create inside the overlay's upper/ (may repeat, e.g. /usr/local/x).
    #[arg(long, value_name = "DIR")]
    create_dir: Vec<String>,
    /// Make the overlay usable under --fakeroot: upper/ and work/ owned by root.
    #[arg(long)]
    fakeroot: bool,
    /// The image to create, or a SIF to add the overlay partition to.
    path: PathBuf,
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

/// The mkfs request `args` makes: upper/, work/, and upper/DIR for each --create-dir.
fn mkfs_options(args: &CreateArgs, size: u64) -> MkfsOptions {
    // SAFETY: getuid and getgid have no preconditions.
    let me = unsafe { (libc::getuid(), libc::getgid()) };
    let owner = if args.fakeroot { (0, 0) } else { me };
    let mut dirs = vec![
        NewDir {
            path: "upper".into(),
            mode: 0o755,
            owner,
        },
        NewDir {
            path: "work".into(),
            mode: 0o755,
            owner,
        },
    ];
    for d in &args.create_dir {
        let mut path = String::from("upper");
        for comp in d.split('/').filter(|c| !c.is_empty() && *c != ".") {
            path.push('/');
            path.push_str(comp);
            if !dirs.iter().any(|x| x.path == path) {
                dirs.push(NewDir {
                    path: path.clone(),
                    mode: 0o755,
                    owner: me,
                });
            }
        }
    }
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    MkfsOptions {
        size,
        dirs,
        root_owner: owner,
        time,
        uuid: random16(),
        hash_seed: random16(),
    }
}

/// Run `squashbox overlay create`.
pub fn run_create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    if args.size < 64 {
        bail!(
            "--size {} MiB: an overlay image needs at least 64 MiB",
            args.size
        );
    }
    if args
        .create_dir
        .iter()
        .any(|d| d.split('/').any(|c| c == ".."))
    {
        bail!("--create-dir must not contain '..'");
    }
    let size = args
        .size
        .checked_mul(1 << 20)
        .context("--size is too large")?;
    let opts = mkfs_options(&args, size);
    let path = &args.path;
    if path.exists() {
        let mut head = [0u8; 64];
        let is_sif = File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && has_sif_magic(&head);
        if !is_sif {
            bail!("{}: already exists and is not a SIF file", path.display());
        }
        return add_to_sif(path, &opts).map(|()| ExitCode::SUCCESS);
    }
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let made = write_image(&file, &opts, args.sparse);
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made.with_context(|| format!("{}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn write_image(file: &File, opts: &MkfsOptions, sparse: bool) -> anyhow::Result<()> {
    file.set_len(opts.size)?;
    if !sparse {
        nix::fcntl::fallocate(
            file,
            nix::fcntl::FallocateFlags::empty(),
            0,
            opts.size as i64,
        )
        .context("allocating the image (use --sparse for a sparse one)")?;
    }
    make_ext3(file, opts).map_err(anyhow::Error::msg)?;
    file.sync_all()?;
    Ok(())
}

/// Build the image in a temporary file next to the SIF, then append it as an overlay
/// partition in the primary partition's group (as `apptainer overlay create` does).
fn add_to_sif(sif_path: &Path, opts: &MkfsOptions) -> anyhow::Result<()> {
    let sif_file = File::options()
        .read(true)
        .write(true)
        .open(sif_path)
        .with_context(|| format!("opening {}", sif_path.display()))?;
    let sif = Sif::load(&sif_file).with_context(|| format!("{}", sif_path.display()))?;
    if !sif.overlay_partitions().is_empty() {
        bail!("{}: already has an overlay partition", sif_path.display());
    }
    let prim = sif
        .primary_partition()
        .with_context(|| format!("{}", sif_path.display()))?;
    let (_, _, arch) = prim.partition().context("primary is not a partition")?;
    let group = prim.group_id();
    let dir = sif_path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile_in(dir)?;
    let made = (|| -> anyhow::Result<()> {
        let file = File::options().read(true).write(true).open(&tmp)?;
        write_image(&file, opts, true)?;
        let mut input = ObjectInput::new(DataType::PARTITION, ObjectData::File(tmp.clone()));
        input.group = group;
        input.metadata = Metadata::Partition {
            fs: FsType::EXT3,
            part: PartType::OVERLAY,
            arch,
        };
        add_object(&sif_file, input, &EditOptions::default())
            .with_context(|| format!("adding the overlay partition to {}", sif_path.display()))?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    made
}

fn tempfile_in(dir: &Path) -> anyhow::Result<PathBuf> {
    for n in 0..100u32 {
        let p = dir.join(format!(".squashbox-overlay-{}-{n}.img", std::process::id()));
        if File::options()
            .write(true)
            .create_new(true)
            .open(&p)
            .is_ok()
        {
            return Ok(p);
        }
    }
    bail!("cannot create a temporary file in {}", dir.display())
}
