//! `squashbox inspect`: an image's metadata, read from the SIF's objects and the image's
//! `/.singularity.d` files without running anything (labels, definition file, runscript,
//! startscript, test script, environment, help), as text or Apptainer-shaped JSON.

use std::path::{Path, PathBuf};

use squashbox_sif::{DataType, Sif};
use squashbox_squashfs::{Image, InodeKind, OpenOptions};

use crate::image::{ImageInfo, RootFs};
use crate::{Result, rt_err};

/// Which parts to show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    /// `-l`: labels (the default when nothing is chosen).
    pub labels: bool,
    /// `-d`: the definition file.
    pub deffile: bool,
    /// `-r`: the runscript.
    pub runscript: bool,
    /// `-s`: the startscript.
    pub startscript: bool,
    /// `-t`: the test script.
    pub test: bool,
    /// `-e`: the environment files.
    pub environment: bool,
    /// `-H`: the help file.
    pub helpfile: bool,
    /// `-j`: JSON output.
    pub json: bool,
    /// `--all`: everything, as JSON.
    pub all: bool,
}

/// Reads files from an image's root filesystem.
enum Reader {
    Squash(Box<Image>),
    Dir(PathBuf),
}

impl Reader {
    fn open(info: &ImageInfo) -> Result<Reader> {
        match info.root {
            RootFs::Squashfs { offset } => {
                let opts = OpenOptions {
                    offset,
                    cache_bytes: 4 << 20,
                    metadata_cache_bytes: 2 << 20,
                };
                Image::open(&info.path, &opts)
                    .map(|i| Reader::Squash(Box::new(i)))
                    .map_err(|e| rt_err!("{}: {e}", info.path.display()))
            }
            RootFs::Dir => Ok(Reader::Dir(info.path.clone())),
            RootFs::Ext3 { .. } => Err(rt_err!(
                "{}: ext3 root filesystems cannot be inspected yet",
                info.path.display()
            )),
        }
    }

    /// A regular file's bytes (symlinks inside the image are not followed).
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        match self {
            Reader::Dir(d) => std::fs::read(d.join(path.trim_start_matches('/'))).ok(),
            Reader::Squash(img) => {
                let inode = img.lookup_path(path.as_bytes()).ok()??;
                if inode.kind != InodeKind::File {
                    return None;
                }
                let mut out = vec![0u8; usize::try_from(inode.size).ok()?];
                let mut off = 0;
                while off < out.len() {
                    let n = img.read(&inode, off as u64, &mut out[off..]).ok()?;
                    if n == 0 {
                        return None;
                    }
                    off += n;
                }
                Some(out)
            }
        }
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

/// Parse a flat JSON object of strings (`labels.json`); `None` if it is anything else.
pub fn parse_flat_json(s: &str) -> Option<Vec<(String, String)>> {
    let mut chars = s.trim().chars().peekable();
    let mut out = Vec::new();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while c.peek().is_some_and(|x| x.is_whitespace()) {
            c.next();
        }
    };
    let string = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        if c.next()? != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match c.next()? {
                '"' => return Some(s),
                '\\' => match c.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| c.next()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    o => s.push(o),
                },
                o => s.push(o),
            }
        }
    };
    if chars.next()? != '{' {
        return None;
    }
    loop {
        skip_ws(&mut chars);
        match chars.peek()? {
            '}' => return Some(out),
            ',' => {
                chars.next();
                continue;
            }
            _ => {}
        }
        let k = string(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next()? != ':' {
            return None;
        }
        skip_ws(&mut chars);
        let v = string(&mut chars)?;
        out.push((k, v));
    }
}

/// `s` as a JSON string.
pub fn json_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

const ENV_FILES: &[&str] = &[
    "10-docker2singularity.sh",
    "90-environment.sh",
    "91-environment.sh",
];

/// Inspect `image`.
pub fn inspect(image: &Path, parts: Parts) -> Result<String> {
    let info = crate::image::inspect_any_arch(image)?;
    let reader = Reader::open(&info)?;
    let mut p = parts;
    if p.all {
        p = Parts {
            labels: true,
            deffile: true,
            runscript: true,
            startscript: true,
            test: true,
            environment: true,
            helpfile: true,
            json: true,
            all: true,
        };
    }
    if !(p.deffile || p.runscript || p.startscript || p.test || p.environment || p.helpfile) {
        p.labels = true;
    }
    let mut attrs: Vec<(&str, String)> = Vec::new();
    let mut labels = Vec::new();
    if p.labels {
        let raw = reader
            .read("/.singularity.d/labels.json")
            .map(text)
            .unwrap_or_else(|| "{}".into());
        labels = parse_flat_json(&raw)
            .ok_or_else(|| rt_err!("{}: labels.json is not a flat JSON object", image.display()))?;
        labels.sort();
    }
    if p.deffile {
        let from_sif = std::fs::File::open(&info.path).ok().and_then(|f| {
            let sif = Sif::load(&f).ok()?;
            let d = sif.objects_of_type(DataType::DEFFILE).next()?.clone();
            sif.read_data(&f, &d).ok()
        });
        let def = from_sif.or_else(|| reader.read("/.singularity.d/Singularity"));
        attrs.push(("deffile", def.map(text).unwrap_or_default()));
    }
    for (on, key, path) in [
        (p.runscript, "runscript", "/.singularity.d/runscript"),
        (p.startscript, "startscript", "/.singularity.d/startscript"),
        (p.test, "test", "/.singularity.d/test"),
        (p.helpfile, "helpfile", "/.singularity.d/runscript.help"),
    ] {
        if on {
            attrs.push((key, reader.read(path).map(text).unwrap_or_default()));
        }
    }
    let mut env_blocks = Vec::new();
    if p.environment {
        for f in ENV_FILES {
            let path = format!("/.singularity.d/env/{f}");
            if let Some(c) = reader.read(&path) {
                env_blocks.push((path, text(c)));
            }
        }
    }
    if p.json {
        let mut fields = Vec::new();
        if p.labels {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("                {}: {}", json_string(k), json_string(v)))
                .collect();
            fields.push(format!(
                "            \"labels\": {{\n{}\n            }}",
                inner.join(",\n")
            ));
        }
        for (k, v) in &attrs {
            fields.push(format!(
                "            {}: {}",
                json_string(k),
                json_string(v)
            ));
        }
        if p.environment {
            let all: String = env_blocks.iter().map(|(_, c)| c.as_str()).collect();
            fields.push(format!(
                "            \"environment\": {}",
                json_string(&all)
            ));
        }
        return Ok(format!(
            "{{\n    \"data\": {{\n        \"attributes\": {{\n{}\n        }}\n    }},\n    \"type\": \"container\"\n}}\n",
            fields.join(",\n")
        ));
    }
    let mut out = String::new();
    for (k, v) in &labels {
        out.push_str(&format!("{k}: {v}\n"));
    }
    for (_, v) in &attrs {
        out.push_str(v);
        if !v.is_empty() && !v.ends_with('\n') {
            out.push('\n');
        }
    }
    for (path, c) in &env_blocks {
        out.push_str(&format!("=== {path} ===\n{c}"));
        if !c.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_json_round_trip() {
        let v = parse_flat_json("{\n\t\"b\": \"2\\n\",\n\t\"a\": \"x\\\"y\\u0041\"\n}").unwrap();
        assert_eq!(
            v,
            vec![("b".into(), "2\n".into()), ("a".into(), "x\"yA".into())]
        );
        assert_eq!(json_string("x\"y\n"), "\"x\\\"y\\n\"");
        assert!(parse_flat_json("{\"a\": 1}").is_none());
        assert_eq!(parse_flat_json("{}"), Some(vec![]));
    }
}
