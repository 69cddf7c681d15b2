//! The unprivileged container runtime: user and mount namespaces, image mounts, sessions and
//! the `exec`/`run`/`shell` actions. Empty for now; later issues fill it in.
