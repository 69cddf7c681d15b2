//! The generated `/etc/passwd` and `/etc/group`: the image's files with the caller added
//! (Apptainer's rules).
//!
//! - passwd: a line with the container uid is rewritten as
//!   `name:x:uid:gid:gecos:HOME:shell` (name and gecos from the host, except for uid 0, whose
//!   own are kept; the container's shell); otherwise the host entry is appended with the
//!   host shell. The file ends with a newline.
//! - group: the image's lines, then `name:x:gid:user` for each host group that resolves
//!   (supplementary groups, then the primary), skipping gids the file already has.

use std::path::Path;

use crate::host::Host;

/// The container's `/etc/passwd` from the image's `template`, for `uid`/`gid` inside with
/// home `home`.
pub fn passwd(template: &str, host: &Host, uid: u32, gid: u32, home: &Path) -> String {
    let home = home.display();
    let mut out = String::new();
    let mut found = false;
    for line in template.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && !found {
            found = true;
            let (name, gecos) = if uid == 0 {
                (f[0], f[4])
            } else {
                (host.user.as_str(), host.gecos.as_str())
            };
            out.push_str(&format!("{name}:x:{uid}:{gid}:{gecos}:{home}:{}\n", f[6]));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        out.push_str(&format!(
            "{}:x:{uid}:{gid}:{}:{home}:{}\n",
            host.user, host.gecos, host.shell
        ));
    }
    out
}

/// The container's `/etc/group` from the image's `template` (skipped under fakeroot: the
/// host groups are not mapped there).
pub fn group(template: &str, host: &Host) -> String {
    let mut out = template.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let present: Vec<u32> = template
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    let mut added = Vec::new();
    for g in host.groups.iter().chain(std::iter::once(&host.gid)) {
        let Some((_, name)) = host.group_names.iter().find(|(id, _)| id == g) else {
            continue;
        };
        if present.contains(g) || added.contains(g) {
            continue;
        }
        added.push(*g);
        out.push_str(&format!("{name}:x:{g}:{}\n", host.user));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_appends_or_rewrites_the_caller() {
        let h = Host::example();
        let img = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false";
        assert_eq!(
            passwd(img, &h, 1000, 1000, Path::new("/home/alice")),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n\
             alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
        );
        let img2 = "root:x:0:0:root:/root:/bin/sh\nold:x:1000:5:Old:/old:/bin/ash\n";
        assert_eq!(
            passwd(img2, &h, 1000, 1000, Path::new("/h")),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/h:/bin/ash\n"
        );
        // Fakeroot: uid 0 keeps root's name and gecos, gets the home.
        assert_eq!(
            passwd(img, &h, 0, 0, Path::new("/root")).lines().next(),
            Some("root:x:0:0:root:/root:/bin/sh")
        );
    }

    #[test]
    fn group_adds_resolving_host_groups_once() {
        let h = Host::example();
        assert_eq!(
            group("root:x:0:\nusers:x:100:", &h),
            "root:x:0:\nusers:x:100:\nalice:x:1000:alice\n"
        );
    }
}
