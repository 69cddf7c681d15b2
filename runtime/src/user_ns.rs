//! The user namespace and its ID maps.
//!
//! - Default: the caller's own uid and gid only (`U U 1`), setgroups denied.
//! - `--fakeroot`: root-mapped (`0 U 1`), setgroups denied; or, when the user has a range of
//!   65536 ids or more in `/etc/subuid` and `/etc/subgid` and the system has `newuidmap` and
//!   `newgidmap`, `0 U 1` plus `1 START COUNT`, written by those setuid helpers (squashbox
//!   stays unprivileged) with setgroups allowed, as Apptainer does.

use std::path::Path;

use crate::host::Host;
use crate::syscall::Syscall;

/// Ranges shorter than this are ignored for fakeroot (Apptainer's rule).
pub const MIN_SUBID_RANGE: u64 = 65536;

/// One line of `uid_map` or `gid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u64,
    /// First id outside.
    pub outside: u64,
    /// How many.
    pub count: u64,
}

/// How the maps get written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapWriter {
    /// The process writes its own `/proc/self/{setgroups,gid_map,uid_map}`.
    Direct,
    /// `newuidmap`/`newgidmap` write them for the process, from outside.
    Helpers,
}

/// The ID maps of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// `uid_map` lines.
    pub uid: Vec<IdRange>,
    /// `gid_map` lines.
    pub gid: Vec<IdRange>,
    /// Who writes them.
    pub writer: MapWriter,
    /// The uid the container process has inside.
    pub inside_uid: u32,
    /// The gid the container process has inside.
    pub inside_gid: u32,
}

/// A user's subordinate id range, from `/etc/subuid` or `/etc/subgid`: the largest range of
/// at least [`MIN_SUBID_RANGE`] ids on a line naming `user` or `id`. Lines starting with `!`
/// are disabled; malformed lines are skipped.
pub fn parse_subid(contents: &str, user: &str, id: u32) -> Option<(u64, u64)> {
    let id = id.to_string();
    let mut best: Option<(u64, u64)> = None;
    for line in contents.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut f = line.split(':');
        let (Some(name), Some(start), Some(count)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if name != user && name != id {
            continue;
        }
        let (Ok(start), Ok(count)) = (start.trim().parse::<u64>(), count.trim().parse::<u64>())
        else {
            continue;
        };
        if count < MIN_SUBID_RANGE {
            continue;
        }
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((start, count));
        }
    }
    best
}

/// What the system offers for fakeroot: the two files' contents (if readable) and whether
/// both helpers are installed.
#[derive(Debug, Clone, Default)]
pub struct SubidSource {
    /// `/etc/subuid`.
    pub subuid: Option<String>,
    /// `/etc/subgid`.
    pub subgid: Option<String>,
    /// `newuidmap` and `newgidmap` are both on PATH.
    pub helpers: bool,
}

impl SubidSource {
    /// Read this system's files and look for the helpers.
    pub fn system() -> SubidSource {
        SubidSource {
            subuid: std::fs::read_to_string("/etc/subuid").ok(),
            subgid: std::fs::read_to_string("/etc/subgid").ok(),
            helpers: find_in_path("newuidmap").is_some() && find_in_path("newgidmap").is_some(),
        }
    }
}

/// The first executable `name` on `$PATH` (plus the sbin directories).
pub fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The maps for a run as `host` with `fakeroot` (and `ignore_subuid`).
pub fn plan(host: &Host, fakeroot: bool, ignore_subuid: bool, sys: &SubidSource) -> IdMaps {
    let own = |id: u32, inside: u32| {
        vec![IdRange {
            inside: inside.into(),
            outside: id.into(),
            count: 1,
        }]
    };
    if !fakeroot {
        return IdMaps {
            uid: own(host.uid, host.uid),
            gid: own(host.gid, host.gid),
            writer: MapWriter::Direct,
            inside_uid: host.uid,
            inside_gid: host.gid,
        };
    }
    let ranges = if ignore_subuid || !sys.helpers || host.uid == 0 {
        None
    } else {
        let u = sys
            .subuid
            .as_deref()
            .and_then(|s| parse_subid(s, &host.user, host.uid));
        let g = sys
            .subgid
            .as_deref()
            .and_then(|s| parse_subid(s, &host.user, host.uid));
        u.zip(g)
    };
    match ranges {
        Some(((us, uc), (gs, gc))) => {
            let with = |id: u32, start: u64, count: u64| {
                let mut v = own(id, 0);
                v.push(IdRange {
                    inside: 1,
                    outside: start,
                    count,
                });
                v
            };
            IdMaps {
                uid: with(host.uid, us, uc),
                gid: with(host.gid, gs, gc),
                writer: MapWriter::Helpers,
                inside_uid: 0,
                inside_gid: 0,
            }
        }
        None => IdMaps {
            uid: own(host.uid, 0),
            gid: own(host.gid, 0),
            writer: MapWriter::Direct,
            inside_uid: 0,
            inside_gid: 0,
        },
    }
}

/// A map as the kernel file takes it: `inside outside count` lines.
pub fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Write the maps of the calling process directly (`MapWriter::Direct`): setgroups deny,
/// then gid_map, then uid_map, as Apptainer's starter does.
pub fn write_own_maps(sys: &dyn Syscall, maps: &IdMaps) -> Result<(), String> {
    sys.write_file(Path::new("/proc/self/setgroups"), "deny")?;
    sys.write_file(Path::new("/proc/self/gid_map"), &map_text(&maps.gid))?;
    sys.write_file(Path::new("/proc/self/uid_map"), &map_text(&maps.uid))
}

/// The helper command lines for `MapWriter::Helpers`, targeting process `pid`:
/// `newuidmap PID in out count...` and `newgidmap PID ...`.
pub fn helper_argv(maps: &IdMaps, pid: u32) -> [Vec<String>; 2] {
    let argv = |tool: &str, ranges: &[IdRange]| {
        let mut v = vec![tool.to_string(), pid.to_string()];
        for r in ranges {
            v.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
        }
        v
    };
    [argv("newuidmap", &maps.uid), argv("newgidmap", &maps.gid)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::RecordingSyscall;

    const SUBUID: &str = "bob:100000:65536\n!alice:300000:65536\nalice:200000:65536\n\
                          1000:400000:131072\nalice:500000:1000\nbad line\n";

    #[test]
    fn subid_picks_the_largest_enabled_range_by_name_or_uid() {
        assert_eq!(parse_subid(SUBUID, "alice", 1000), Some((400000, 131072)));
        assert_eq!(parse_subid(SUBUID, "bob", 1001), Some((100000, 65536)));
        assert_eq!(parse_subid(SUBUID, "carol", 1002), None);
        // Too short a range only.
        assert_eq!(parse_subid("dave:1:1000\n", "dave", 7), None);
    }

    #[test]
    fn default_maps_own_ids_only() {
        let m = plan(&Host::example(), false, false, &SubidSource::default());
        assert_eq!(map_text(&m.uid), "1000 1000 1\n");
        assert_eq!(map_text(&m.gid), "1000 1000 1\n");
        assert_eq!(m.writer, MapWriter::Direct);
        let r = RecordingSyscall::new();
        write_own_maps(&r, &m).unwrap();
        assert_eq!(
            r.lines(),
            vec![
                "write /proc/self/setgroups \"deny\"",
                "write /proc/self/gid_map \"1000 1000 1\\n\"",
                "write /proc/self/uid_map \"1000 1000 1\\n\"",
            ]
        );
    }

    #[test]
    fn fakeroot_is_root_mapped_without_subids_or_helpers() {
        let sys = SubidSource {
            subuid: Some(SUBUID.into()),
            subgid: Some(SUBUID.into()),
            helpers: false,
        };
        let m = plan(&Host::example(), true, false, &sys);
        assert_eq!(map_text(&m.uid), "0 1000 1\n");
        assert_eq!((m.inside_uid, m.inside_gid), (0, 0));
        assert_eq!(m.writer, MapWriter::Direct);
    }

    #[test]
    fn fakeroot_uses_subid_ranges_through_the_helpers() {
        let sys = SubidSource {
            subuid: Some(SUBUID.into()),
            subgid: Some("alice:600000:65536\n".into()),
            helpers: true,
        };
        let m = plan(&Host::example(), true, false, &sys);
        assert_eq!(m.writer, MapWriter::Helpers);
        assert_eq!(map_text(&m.uid), "0 1000 1\n1 400000 131072\n");
        assert_eq!(map_text(&m.gid), "0 1000 1\n1 600000 65536\n");
        let [u, g] = helper_argv(&m, 42);
        assert_eq!(u.join(" "), "newuidmap 42 0 1000 1 1 400000 131072");
        assert_eq!(g.join(" "), "newgidmap 42 0 1000 1 1 600000 65536");
        // --ignore-subuid, or no gid range: root-mapped only.
        assert_eq!(
            plan(&Host::example(), true, true, &sys).writer,
            MapWriter::Direct
        );
        let no_gid = SubidSource {
            subgid: Some(String::new()),
            ..sys
        };
        assert_eq!(
            plan(&Host::example(), true, false, &no_gid).writer,
            MapWriter::Direct
        );
    }
}
