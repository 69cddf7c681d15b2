//! Facts about the caller, gathered once before anything changes: ids, user entry, home,
//! working directory, environment. Tests build one by hand.

use std::path::PathBuf;

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
        let pw = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let (user, gecos, home, shell) = match pw {
            Some(u) => (
                u.name,
                u.gecos.to_string_lossy().into_owned(),
                u.dir,
                u.shell.display().to_string(),
            ),
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
            if let Ok(Some(gr)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(*g)) {
                group_names.push((*g, gr.name));
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
