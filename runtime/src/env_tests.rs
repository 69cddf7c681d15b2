use super::*;
use std::process::Command;

fn host_env() -> Vec<(String, String)> {
    [
        ("PATH", "/host/bin"),
        ("HOME", "/home/alice"),
        ("TERM", "xterm"),
        ("LANG", "en_US.UTF-8"),
        ("FROM_HOST", "host"),
        ("SET_BY_IMAGE", "host"),
        ("APPTAINER_BIND", "/x"),
        ("LD_LIBRARY_PATH", "/host/lib"),
        ("SINGULARITYENV_A", "sing"),
        ("APPTAINERENV_A", "app"),
        ("APPTAINERENV_B", "app"),
        ("SQUASHBOXENV_C", "sb"),
        ("APPTAINERENV_PREPEND_PATH", "/pre"),
        ("APPTAINERENV_EVAL", "$HOME/x"),
        ("http_proxy", "http://p"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn build_env(opts: &RunOptions) -> ContainerEnv {
    build(
        opts,
        &host_env(),
        &[("f.env".into(), "# c\nexport B=file\nD='quoted'\n".into())],
        Path::new("/imgs/box.sif"),
        Path::new("/home/alice"),
        Action::Exec,
        &["/data".into()],
    )
    .unwrap()
}

fn get<'a>(v: &'a [(String, String)], k: &str) -> Option<&'a str> {
    v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn forwarding_and_precedence_of_the_prefixes() {
    let opts = RunOptions {
        env: vec!["D=cli".into()],
        ..Default::default()
    };
    let e = build_env(&opts);
    assert_eq!(get(&e.inherited, "FROM_HOST"), Some("host"));
    for dropped in [
        "PATH",
        "HOME",
        "APPTAINER_BIND",
        "LD_LIBRARY_PATH",
        "APPTAINERENV_A",
    ] {
        assert_eq!(get(&e.inherited, dropped), None, "{dropped}");
    }
    assert_eq!(get(&e.overrides, "A"), Some("app"));
    assert_eq!(get(&e.overrides, "B"), Some("file"));
    assert_eq!(get(&e.overrides, "C"), Some("sb"));
    assert_eq!(get(&e.overrides, "D"), Some("cli"));
    assert_eq!(
        get(&e.overrides, "SING_USER_DEFINED_PREPEND_PATH"),
        Some("/pre")
    );
    assert_eq!(get(&e.base, "HOME"), Some("/home/alice"));
    assert_eq!(get(&e.base, "PATH"), Some(DEFAULT_PATH));
    assert_eq!(get(&e.base, "APPTAINER_CONTAINER"), Some("/imgs/box.sif"));
    assert_eq!(get(&e.base, "APPTAINER_NAME"), Some("box.sif"));
    assert_eq!(get(&e.base, "APPTAINER_BIND"), Some("/data"));

    let clean = build_env(&RunOptions {
        cleanenv: true,
        ..Default::default()
    });
    let names: Vec<&str> = clean.inherited.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, vec!["TERM", "http_proxy"]);
    assert_eq!(get(&clean.base, "LANG"), Some("C"));
}

/// Run the script with the host's sh over an env directory holding `files`.
fn run_script(e: &ContainerEnv, no_eval: bool, files: &[(&str, &str)], tail: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (n, c) in files {
        std::fs::write(dir.path().join(n), c).unwrap();
    }
    let s = script(e, no_eval, &dir.path().display().to_string(), tail);
    let out = Command::new("/bin/sh")
        .env_clear()
        .envs(e.base.iter().cloned())
        .args(["-c", &s, "sh"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{s}\n{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inside_image_env_beats_host_and_overrides_beat_image() {
    let e = build_env(&RunOptions::default());
    let files = [
        (
            "10-docker2singularity.sh",
            "export SET_BY_IMAGE=image\nexport A=image\n",
        ),
        ("99-base.sh", "export AFTER_BASE_SEES_A=\"$A\"\n"),
        ("99-zz.sh", "export LATE_SEES_A=\"$A\"\n"),
    ];
    let out = run_script(
        &e,
        false,
        &files,
        "echo \"$SET_BY_IMAGE|$A|$FROM_HOST|$AFTER_BASE_SEES_A|$LATE_SEES_A|$EVAL|$PATH\"",
    );
    assert_eq!(
        out.trim(),
        format!("image|app|host|image|app|/home/alice/x|/pre:{DEFAULT_PATH}")
    );
    let out = run_script(&e, true, &files, "echo \"$EVAL\"");
    assert_eq!(out.trim(), "$HOME/x");
}
