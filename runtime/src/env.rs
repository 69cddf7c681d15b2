//! The container's environment, by Apptainer's rules.
//!
//! - Host variables are forwarded, except `APPTAINER_*`, `SINGULARITY_*`, `SQUASHBOX*`,
//!   `HOME`, `PATH`, `LD_LIBRARY_PATH`, the shell and app names and `--no-env` names;
//!   `-e/--cleanenv` forwards only `TERM` and the proxy variables and sets `LANG=C`.
//! - `SINGULARITYENV_X`, then `APPTAINERENV_X`, then `SQUASHBOXENV_X`, then `--env-file`,
//!   then `--env` set `X` (the later wins); `PATH`, `PREPEND_PATH` and `APPEND_PATH` become
//!   `SING_USER_DEFINED_*`; an `LD_LIBRARY_PATH` gets `:/.singularity.d/libs` appended.
//! - Inside, [`script`] sources `/.singularity.d/env/*.sh` in order with the container's
//!   `/bin/sh`, exports the overrides right after `99-base.sh` (double-quoted, so evaluated,
//!   or single-quoted with `--no-eval`), applies the `SING_USER_DEFINED_*` path rules, and
//!   restores forwarded host variables the image did not set. Image ENV beats host ENV;
//!   the overrides beat image ENV.

use std::path::Path;

use crate::options::{Action, RunOptions};
use crate::{Result, rt_err};

/// The default PATH the runtime sets.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PROXIES: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "ftp_proxy",
];

/// The environment of one run, in three parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEnv {
    /// What the container's first process starts with (HOME, PATH, runtime variables).
    pub base: Vec<(String, String)>,
    /// Overrides exported after the image's scripts (`APPTAINERENV_`, `--env`, ...).
    pub overrides: Vec<(String, String)>,
    /// Forwarded host variables, restored when the image did not set them.
    pub inherited: Vec<(String, String)>,
}

fn set(v: &mut Vec<(String, String)>, k: &str, val: &str) {
    match v.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = val.to_string(),
        None => v.push((k.to_string(), val.to_string())),
    }
}

fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn forwarded(name: &str, opts: &RunOptions) -> bool {
    if opts.cleanenv || opts.containall {
        return name == "TERM"
            || PROXIES
                .iter()
                .any(|p| name == *p || name == p.to_ascii_uppercase());
    }
    !(name.starts_with("APPTAINER")
        || name.starts_with("SINGULARITY")
        || name.starts_with("SQUASHBOX")
        || matches!(name, "HOME" | "PATH" | "LD_LIBRARY_PATH")
        || opts.no_env.iter().any(|n| n == name))
}

/// Parse an `--env-file`: `K=V` lines, `export K=V` allowed, `#` comments, and one level
/// of matching quotes removed.
pub fn parse_env_file(text: &str, name: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((k, v)) = line.split_once('=') else {
            return Err(rt_err!("{name}:{}: expected NAME=VALUE", i + 1));
        };
        if !valid_name(k) {
            return Err(rt_err!("{name}:{}: bad variable name {k:?}", i + 1));
        }
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Build the environment. `env_files` holds the contents of each `--env-file`, by name.
pub fn build(
    opts: &RunOptions,
    host_env: &[(String, String)],
    env_files: &[(String, String)],
    image: &Path,
    home: &Path,
    action: Action,
    bind_dsts: &[String],
) -> Result<ContainerEnv> {
    let mut e = ContainerEnv::default();
    for (k, v) in host_env {
        if forwarded(k, opts) {
            set(&mut e.inherited, k, v);
        }
    }
    let mut over: Vec<(String, String)> = Vec::new();
    for prefix in ["SINGULARITYENV_", "APPTAINERENV_", "SQUASHBOXENV_"] {
        for (k, v) in host_env {
            if let Some(name) = k.strip_prefix(prefix).filter(|n| valid_name(n)) {
                set(&mut over, name, v);
            }
        }
    }
    for (name, text) in env_files {
        for (k, v) in parse_env_file(text, name)? {
            set(&mut over, &k, &v);
        }
    }
    for kv in &opts.env {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(rt_err!("--env {kv:?}: expected NAME=VALUE"));
        };
        if !valid_name(k) {
            return Err(rt_err!("--env {kv:?}: bad variable name {k:?}"));
        }
        set(&mut over, k, v);
    }
    for (k, v) in over {
        let k = match k.as_str() {
            "PATH" => "SING_USER_DEFINED_PATH".to_string(),
            "PREPEND_PATH" => "SING_USER_DEFINED_PREPEND_PATH".to_string(),
            "APPEND_PATH" => "SING_USER_DEFINED_APPEND_PATH".to_string(),
            _ => k,
        };
        let v = if k == "LD_LIBRARY_PATH" {
            format!("{v}:/.singularity.d/libs")
        } else {
            v
        };
        set(&mut e.overrides, &k, &v);
    }
    let image_s = image.display().to_string();
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let b = &mut e.base;
    set(b, "HOME", &home.display().to_string());
    set(b, "PATH", DEFAULT_PATH);
    if opts.cleanenv || opts.containall {
        set(b, "LANG", "C");
    }
    for p in ["APPTAINER", "SINGULARITY"] {
        set(b, &format!("{p}_CONTAINER"), &image_s);
        set(b, &format!("{p}_NAME"), &name);
        set(b, &format!("{p}_BIND"), &bind_dsts.join(","));
    }
    set(b, "APPTAINER_COMMAND", action.name());
    set(
        b,
        "APPTAINER_ENVIRONMENT",
        "/.singularity.d/env/91-environment.sh",
    );
    set(b, "PS1", "Apptainer> ");
    if let Some(s) = &opts.shell {
        set(b, "SINGULARITY_SHELL", s);
    }
    Ok(e)
}

/// `v` single-quoted for sh.
pub fn sq(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// `v` double-quoted for sh: `$` and backquotes stay live (evaluated), as Apptainer does.
pub fn dq(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The sh script that sets the environment up inside the container and then runs `tail`
/// (the action). Positional parameters are the action's arguments; `env_dir` is
/// `/.singularity.d/env` in a container.
pub fn script(e: &ContainerEnv, no_eval: bool, env_dir: &str, tail: &str) -> String {
    let mut s = String::new();
    let inject: String = e
        .overrides
        .iter()
        .map(|(k, v)| {
            let q = if no_eval { sq(v) } else { dq(v) };
            format!("export {k}={q}\n")
        })
        .collect();
    s.push_str("__sb_inject() {\n");
    s.push_str(&inject);
    s.push_str(":\n}\n__sb_done=\n");
    s.push_str(&format!("for __sb_f in {env_dir}/*.sh; do\n"));
    s.push_str(
        "\
         case \"$__sb_f\" in */99-runtimevars.sh) continue;; esac\n\
         case \"${__sb_f##*/}\" in 99-base.sh) ;; *) if [ -z \"$__sb_done\" ] && \
         [ \"${__sb_f##*/}\" \\> 99-base.sh ]; then __sb_inject; __sb_done=1; fi;; esac\n\
         [ -f \"$__sb_f\" ] && . \"$__sb_f\"\n\
         case \"${__sb_f##*/}\" in 99-base.sh) __sb_inject; __sb_done=1;; esac\n\
         done\n\
         [ -n \"$__sb_done\" ] || __sb_inject\n\
         if [ -n \"${SING_USER_DEFINED_PATH:-}\" ]; then PATH=\"$SING_USER_DEFINED_PATH\"; fi\n\
         if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then \
         PATH=\"$SING_USER_DEFINED_PREPEND_PATH:$PATH\"; fi\n\
         if [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then \
         PATH=\"$PATH:$SING_USER_DEFINED_APPEND_PATH\"; fi\n\
         export PATH\n\
         unset SING_USER_DEFINED_PATH SING_USER_DEFINED_PREPEND_PATH \
         SING_USER_DEFINED_APPEND_PATH __sb_f __sb_done\n",
    );
    for (k, v) in &e.inherited {
        s.push_str(&format!("[ -n \"${{{k}+x}}\" ] || export {k}={}\n", sq(v)));
    }
    s.push_str("unset -f __sb_inject\n");
    s.push_str(tail);
    s.push('\n');
    s
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
