//! Server options and the libfuse/squashfuse-style `-o a,b=c` parser shared by
//! `squashbox mount` and the `squashfuse_ll` drop-in.

use std::path::PathBuf;
use std::time::Duration;

use fuser::MountOption;

/// Everything that configures one served mount.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `allow_other`: let every user access the mount.
    pub allow_other: bool,
    /// `allow_root`: let root access the mount too.
    pub allow_root: bool,
    /// `uid=N`: report every owner as N.
    pub uid: Option<u32>,
    /// `gid=N`: report every group as N.
    pub gid: Option<u32>,
    /// `offset=N`: the SquashFS image starts N bytes into the file (skips SIF detection).
    pub offset: Option<u64>,
    /// `--partition ID`: which SIF partition to serve (default: the primary system partition).
    pub partition: Option<u32>,
    /// `subdir=PATH`: serve this directory of the image as the root.
    pub subdir: Option<String>,
    /// `notify_pipe=PATH`: write `s` (mounted) or `f` (failed) to this FIFO.
    pub notify_pipe: Option<PathBuf>,
    /// `timeout=N`: unmount after N seconds without requests and with nothing open.
    pub idle_timeout: Option<Duration>,
    /// Request loop threads (`threads=N`, `max_threads=N`, `-s` = 1); default: core count.
    pub threads: Option<usize>,
    /// Give each loop thread its own cloned `/dev/fuse` fd (falls back with a warning).
    pub clone_fd: bool,
    /// `cache=MiB`: decompressed block cache size.
    pub cache_mib: usize,
    /// `prefetch=N`: blocks a sequential reader is decompressed ahead (0: off). Default:
    /// 2 MiB worth (at least 2 blocks).
    pub prefetch_blocks: Option<u64>,
    /// `max_background=N`: the kernel's limit on async (readahead) requests in flight.
    pub max_background: u16,
    /// `-d` / `debug`: log every request and the negotiated capabilities to stderr.
    pub debug: bool,
    /// `print_stats`: when the session ends, print one stderr line with the requests served
    /// by kind (`squashbox: requests served: total=N lookup=N ...`).
    pub print_stats: bool,
    /// Options passed to the kernel mount (ro is always added).
    pub mount_options: Vec<MountOption>,
    /// Stop on SIGTERM, SIGINT and SIGHUP (default). Off for a second session in a process
    /// whose first session already handles them.
    pub handle_signals: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            allow_other: false,
            allow_root: false,
            uid: None,
            gid: None,
            offset: None,
            partition: None,
            subdir: None,
            notify_pipe: None,
            idle_timeout: None,
            threads: None,
            clone_fd: true,
            cache_mib: 64,
            prefetch_blocks: None,
            max_background: 64,
            debug: false,
            print_stats: false,
            mount_options: Vec::new(),
            handle_signals: true,
        }
    }
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("invalid value for -o {key}: {v:?}"))
}

impl ServeOptions {
    /// Apply one comma-separated `-o` argument. Unknown options are returned in `ignored` (the
    /// caller warns, as libfuse-based helpers do); malformed values are errors.
    pub fn apply_o(&mut self, opts: &str, ignored: &mut Vec<String>) -> Result<(), String> {
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let (key, val) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let need = || val.ok_or_else(|| format!("-o {key} needs a value"));
            match key {
                "allow_other" => self.allow_other = true,
                "allow_root" => self.allow_root = true,
                "uid" => self.uid = Some(num(key, need()?)?),
                "gid" => self.gid = Some(num(key, need()?)?),
                "offset" => self.offset = Some(num(key, need()?)?),
                "subdir" => self.subdir = Some(need()?.to_string()),
                "notify_pipe" => self.notify_pipe = Some(PathBuf::from(need()?)),
                "timeout" => {
                    let secs: f64 = num(key, need()?)?;
                    if !(secs.is_finite() && secs >= 0.0) {
                        return Err(format!("invalid value for -o timeout: {secs}"));
                    }
                    self.idle_timeout = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
                }
                "threads" | "max_threads" => {
                    let n: usize = num(key, need()?)?;
                    self.threads = Some(n.clamp(1, 1024));
                }
                "clone_fd" => self.clone_fd = true,
                "noclone_fd" => self.clone_fd = false,
                "cache" => self.cache_mib = num(key, need()?)?,
                "prefetch" => self.prefetch_blocks = Some(num(key, need()?)?),
                "max_background" => {
                    let n: u16 = num(key, need()?)?;
                    self.max_background = n.max(1);
                }
                "debug" => self.debug = true,
                "print_stats" => self.print_stats = true,
                "ro" => {}
                "rw" => ignored.push("rw (the image is read-only)".into()),
                "suid" => self.mount_options.push(MountOption::Suid),
                "nosuid" => self.mount_options.push(MountOption::NoSuid),
                "dev" => self.mount_options.push(MountOption::Dev),
                "nodev" => self.mount_options.push(MountOption::NoDev),
                "exec" => self.mount_options.push(MountOption::Exec),
                "noexec" => self.mount_options.push(MountOption::NoExec),
                "atime" | "noatime" | "relatime" | "async" | "sync" | "dirsync" => {}
                "default_permissions" => {}
                "fsname" => self
                    .mount_options
                    .push(MountOption::FSName(need()?.to_string())),
                "subtype" => self
                    .mount_options
                    .push(MountOption::Subtype(need()?.to_string())),
                // libfuse tuning knobs with no meaning here.
                "max_idle_threads" | "kernel_cache" | "auto_cache" | "noforget" | "max_read"
                | "blksize" | "nonempty" | "big_writes" | "large_read" | "use_ino"
                | "readdir_ino" | "direct_io" | "entry_timeout" | "attr_timeout"
                | "negative_timeout" | "ac_attr_timeout" | "auto_unmount" => {}
                _ => ignored.push(opt.to_string()),
            }
        }
        Ok(())
    }

    /// Bytes to decompress ahead of a sequential reader, for an image with `block_size`.
    pub fn prefetch_bytes(&self, block_size: u32) -> u64 {
        let bs = u64::from(block_size);
        match self.prefetch_blocks {
            Some(n) => n.saturating_mul(bs),
            None => (2u64 << 20).max(2 * bs),
        }
    }

    /// The number of request loop threads to run.
    pub fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apptainer_command_line_options() {
        let mut o = ServeOptions::default();
        let mut ignored = Vec::new();
        o.apply_o(
            "allow_other,ro,uid=1000,gid=1001,offset=45056",
            &mut ignored,
        )
        .unwrap();
        o.apply_o(
            "subdir=/a/b,notify_pipe=/tmp/p,timeout=2.5,max_threads=3,clone_fd",
            &mut ignored,
        )
        .unwrap();
        assert!(o.allow_other && o.clone_fd);
        assert_eq!(
            (o.uid, o.gid, o.offset),
            (Some(1000), Some(1001), Some(45056))
        );
        assert_eq!(o.subdir.as_deref(), Some("/a/b"));
        assert_eq!(o.notify_pipe, Some(PathBuf::from("/tmp/p")));
        assert_eq!(o.idle_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(o.thread_count(), 3);
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    #[test]
    fn unknown_options_are_reported_and_bad_values_rejected() {
        let mut o = ServeOptions::default();
        let mut ignored = Vec::new();
        o.apply_o("frobnicate,zork=1,cache=16", &mut ignored)
            .unwrap();
        assert_eq!(ignored, ["frobnicate", "zork=1"]);
        assert_eq!(o.cache_mib, 16);
        assert!(o.apply_o("uid=abc", &mut ignored).is_err());
        assert!(o.apply_o("offset", &mut ignored).is_err());
        assert!(o.apply_o("timeout=-1", &mut ignored).is_err());
    }
}
