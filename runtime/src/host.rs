//! Facts about the caller, gathered once before anything changes: ids, user entry, home,
//! working directory, environment. Tests build one by hand.
//!
//! Users and groups are looked up through the libc first. A static (musl) build cannot load
//! the host's NSS modules, so accounts served by SSSD, LDAP or NIS are invisible to it; when
//! the libc finds nothing, `getent passwd UID` / `getent group GID` answer instead (the
//! host's own getent, which does use NSS).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The caller as the runtime needs to know it.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Supplementary groups (getgroups).
    pub groups: Vec<u32>,
    /// User name (from the passwd database; the uid as text when there is none).
    pub user: String,
    /// GECOS field.
    pub gecos: String,
    /// Home directory (passwd entry, else `$HOME`, else `/`).
    pub home: PathBuf,
    /// Login shell.
    pub shell: String,
    /// Working directory.
    pub cwd: PathBuf,
    /// The environment, in order.
    pub env: Vec<(String, String)>,
    /// Group names for gids that resolve: (gid, name).
    pub group_names: Vec<(u32, String)>,
}

impl Host {
    /// The calling process's facts.
    pub fn current() -> Host {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let env_home = env
            .iter()
            .find(|(k, _)| k == "HOME")
            .map(|(_, v)| v.clone());
        let (user, gecos, home, shell) = match lookup_user(uid) {
            Some(u) => (u.name, u.gecos, u.home, u.shell),
            None => (
                uid.to_string(),
                String::new(),
                PathBuf::from(env_home.unwrap_or_else(|| "/".into())),
                "/bin/sh".into(),
            ),
        };
        let mut groups: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        groups.retain(|g| *g != gid);
        let mut group_names = Vec::new();
        for g in groups.iter().chain(std::iter::once(&gid)) {
            if let Some(name) = lookup_group(*g) {
                group_names.push((*g, name));
            }
        }
        Host {
            uid,
            gid,
            groups,
            user,
            gecos,
            home,
            shell,
            cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
            env,
            group_names,
        }
    }

    /// A fixed host for tests: user `alice`, uid 1000, home `/home/alice`, cwd `/work`.
    pub fn example() -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            groups: vec![100],
            user: "alice".into(),
            gecos: "Alice".into(),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
            cwd: "/work".into(),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("HOME".into(), "/home/alice".into()),
                ("TERM".into(), "xterm".into()),
                ("LANG".into(), "en_US.UTF-8".into()),
            ],
            group_names: vec![(100, "users".into()), (1000, "alice".into())],
        }
    }
}

/// A passwd entry as the runtime uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// GECOS field.
    pub gecos: String,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: String,
}

/// The passwd entry of `uid`: the libc's, else `getent passwd UID`'s.
pub fn lookup_user(uid: u32) -> Option<UserEntry> {
    if let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        return Some(UserEntry {
            name: u.name,
            gecos: u.gecos.to_string_lossy().into_owned(),
            home: u.dir,
            shell: u.shell.display().to_string(),
        });
    }
    let out = getent("passwd", uid)?;
    out.lines().find_map(|l| parse_passwd_line(l, uid))
}

/// The name of group `gid`: the libc's, else `getent group GID`'s.
pub fn lookup_group(gid: u32) -> Option<String> {
    if let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        return Some(g.name);
    }
    let out = getent("group", gid)?;
    out.lines().find_map(|l| parse_group_line(l, gid))
}

/// One `name:passwd:uid:gid:gecos:home:shell` line, if it is well formed and for `uid`.
pub fn parse_passwd_line(line: &str, uid: u32) -> Option<UserEntry> {
    let f: Vec<&str> = line.trim_end_matches(['\n', '\r']).split(':').collect();
    if f.len() != 7 || f[0].is_empty() || f[2].parse::<u32>().ok()? != uid {
        return None;
    }
    f[3].parse::<u32>().ok()?;
    Some(UserEntry {
        name: f[0].to_string(),
        gecos: f[4].to_string(),
        home: PathBuf::from(if f[5].is_empty() { "/" } else { f[5] }),
        shell: if f[6].is_empty() { "/bin/sh" } else { f[6] }.to_string(),
    })
}

/// The name in one `name:passwd:gid:members` line, if it is well formed and for `gid`.
pub fn parse_group_line(line: &str, gid: u32) -> Option<String> {
    let f: Vec<&str> = line.trim_end_matches(['\n', '\r']).split(':').collect();
    if f.len() != 4 || f[0].is_empty() || f[2].parse::<u32>().ok()? != gid {
        return None;
    }
    Some(f[0].to_string())
}

/// How long one `getent` may take (an unreachable directory server must not hang a start).
const GETENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The output of `getent DATABASE KEY`, or `None` when getent is missing, fails, finds
/// nothing (exit 2) or takes longer than [`GETENT_TIMEOUT`]. Spawning starts no thread, so
/// this is safe before the namespaces are made.
fn getent(database: &str, key: u32) -> Option<String> {
    let spawn = |exe: &str| {
        Command::new(exe)
            .arg(database)
            .arg(key.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    // PATH may lack getent (a scrubbed environment): try the usual places too.
    let mut child = spawn("getent")
        .or_else(|_| spawn("/usr/bin/getent"))
        .or_else(|_| spawn("/bin/getent"))
        .ok()?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < GETENT_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(2))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_for_their_uid_only() {
        let e = parse_passwd_line(
            "alice:*:123456:5000:Alice Liddell,Room 1:/home/alice:/bin/zsh\n",
            123456,
        )
        .unwrap();
        assert_eq!(
            e,
            UserEntry {
                name: "alice".into(),
                gecos: "Alice Liddell,Room 1".into(),
                home: "/home/alice".into(),
                shell: "/bin/zsh".into(),
            }
        );
        // Another uid, too few or too many fields, a bad number, no name: nothing.
        let line = "alice:*:123456:5000::/home/alice:/bin/zsh";
        assert_eq!(parse_passwd_line(line, 1), None);
        assert_eq!(
            parse_passwd_line("alice:*:123456:5000:/home/alice:/bin/zsh", 123456),
            None
        );
        assert_eq!(
            parse_passwd_line("alice:*:123456:5000::/h:/bin/sh:x", 123456),
            None
        );
        assert_eq!(parse_passwd_line("alice:*:12x:5000::/h:/bin/sh", 12), None);
        assert_eq!(parse_passwd_line("alice:*:12:gid::/h:/bin/sh", 12), None);
        assert_eq!(parse_passwd_line(":*:12:1::/h:/bin/sh", 12), None);
        // Empty home and shell get the defaults the rest of the runtime assumes.
        let e = parse_passwd_line("svc:x:7:7:::", 7).unwrap();
        assert_eq!(
            (e.home, e.shell),
            (PathBuf::from("/"), "/bin/sh".to_string())
        );
    }

    #[test]
    fn group_lines_parse_for_their_gid_only() {
        assert_eq!(
            parse_group_line("hpc-users:*:5000:alice,bob\n", 5000),
            Some("hpc-users".into())
        );
        assert_eq!(parse_group_line("g:x:5000:", 5000), Some("g".into()));
        assert_eq!(parse_group_line("g:x:5000:", 5001), None);
        assert_eq!(parse_group_line("g:x:5000", 5000), None);
        assert_eq!(parse_group_line(":x:5000:", 5000), None);
    }

    #[test]
    fn getent_answers_like_the_libc_for_root() {
        // Every Linux system has uid and gid 0 in its databases, and getent (Debian's
        // essential libc-bin ships it).
        let out = getent("passwd", 0).expect("getent passwd 0");
        let e = out.lines().find_map(|l| parse_passwd_line(l, 0)).unwrap();
        assert_eq!(Some(e), lookup_user(0));
        let g = getent("group", 0).expect("getent group 0");
        assert_eq!(
            g.lines().find_map(|l| parse_group_line(l, 0)),
            lookup_group(0)
        );
        // A uid nobody has: getent exits 2, no entry.
        assert_eq!(getent("passwd", 4_000_000_123), None);
    }
}
