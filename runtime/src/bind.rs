//! `-B/--bind src[:dst[:opts]]` (comma-separated, `\,` and `\:` escaped) and
//! `--mount type=bind,src=...,dst=...[,ro][,image-src=...][,id=N]`.

use crate::{Result, rt_err};

/// One bind request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindSpec {
    /// Host path (or image file with `image_src`).
    pub src: String,
    /// Container path (defaults to `src`).
    pub dst: String,
    /// Read-only.
    pub ro: bool,
    /// `image-src=PATH`: bind this path of the image file `src` instead of `src` itself.
    pub image_src: Option<String>,
    /// `id=N`: the SIF partition with this descriptor ID.
    pub id: Option<u32>,
}

/// Split `s` on unescaped `sep`, turning `\sep` into `sep` (other escapes are kept).
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some(&n) if n == sep => {
                    out.last_mut().unwrap().push(n);
                    chars.next();
                }
                _ => out.last_mut().unwrap().push(c),
            }
        } else if c == sep {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

/// Whether a comma-separated element is an option of the bind before it.
fn is_option(elem: &str) -> bool {
    matches!(elem, "ro" | "rw") || elem.starts_with("image-src=") || elem.starts_with("id=")
}

fn apply_option(b: &mut BindSpec, opt: &str, whole: &str) -> Result<()> {
    match opt {
        "ro" => b.ro = true,
        "rw" => b.ro = false,
        o if o.starts_with("image-src=") => b.image_src = Some(o["image-src=".len()..].into()),
        o if o.starts_with("id=") => {
            b.id = Some(
                o[3..]
                    .parse()
                    .map_err(|_| rt_err!("bind {whole:?}: id= takes a number"))?,
            )
        }
        o => return Err(rt_err!("bind {whole:?}: unknown option {o:?}")),
    }
    Ok(())
}

/// Parse one `-B` argument into its binds.
pub fn parse_bind_arg(arg: &str) -> Result<Vec<BindSpec>> {
    // Split on commas, keeping `\:` escapes for the second split.
    let protected = arg.replace("\\:", "\u{1}");
    let mut out: Vec<BindSpec> = Vec::new();
    for elem in split_escaped(&protected, ',') {
        if elem.is_empty() {
            continue;
        }
        if is_option(&elem) {
            let Some(b) = out.last_mut() else {
                return Err(rt_err!("bind {arg:?}: option {elem:?} without a path"));
            };
            apply_option(b, &elem, arg)?;
            continue;
        }
        let parts: Vec<String> = elem.split(':').map(|p| p.replace('\u{1}', ":")).collect();
        if parts.len() > 3 {
            return Err(rt_err!(
                "bind {arg:?}: too many ':' in {elem:?} (escape a ':' in a path as '\\:')"
            ));
        }
        let src = parts[0].clone();
        if src.is_empty() {
            return Err(rt_err!("bind {arg:?}: empty source path"));
        }
        let mut b = BindSpec {
            dst: parts
                .get(1)
                .filter(|d| !d.is_empty())
                .unwrap_or(&src)
                .clone(),
            src,
            ..Default::default()
        };
        if let Some(opt) = parts.get(2) {
            apply_option(&mut b, opt, arg)?;
        }
        out.push(b);
    }
    for b in &out {
        if !b.dst.starts_with('/') {
            return Err(rt_err!(
                "bind {arg:?}: destination {:?} must be an absolute path",
                b.dst
            ));
        }
    }
    Ok(out)
}

/// Parse one `--mount` argument (only `type=bind` is supported, as in Apptainer).
pub fn parse_mount_arg(arg: &str) -> Result<BindSpec> {
    let mut b = BindSpec::default();
    let mut kind = None;
    for field in split_escaped(arg, ',') {
        let (k, v) = field.split_once('=').unwrap_or((field.as_str(), ""));
        match k {
            "type" => kind = Some(v.to_string()),
            "src" | "source" => b.src = v.into(),
            "dst" | "destination" | "target" => b.dst = v.into(),
            "ro" | "readonly" => b.ro = v.is_empty() || v == "true",
            "rw" => b.ro = false,
            "image-src" => b.image_src = Some(v.into()),
            "id" => {
                b.id = Some(
                    v.parse()
                        .map_err(|_| rt_err!("--mount {arg:?}: id= takes a number"))?,
                )
            }
            "bind-propagation" => {}
            _ => return Err(rt_err!("--mount {arg:?}: unknown field {k:?}")),
        }
    }
    match kind.as_deref() {
        Some("bind") => {}
        Some(t) => return Err(rt_err!("--mount {arg:?}: type {t:?} is not supported")),
        None => return Err(rt_err!("--mount {arg:?}: type=bind is required")),
    }
    if b.src.is_empty() || b.dst.is_empty() {
        return Err(rt_err!("--mount {arg:?}: src= and dst= are required"));
    }
    if !b.dst.starts_with('/') {
        return Err(rt_err!(
            "--mount {arg:?}: destination {:?} must be an absolute path",
            b.dst
        ));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(src: &str, dst: &str, ro: bool) -> BindSpec {
        BindSpec {
            src: src.into(),
            dst: dst.into(),
            ro,
            ..Default::default()
        }
    }

    #[test]
    fn bind_forms() {
        assert_eq!(parse_bind_arg("/a").unwrap(), vec![b("/a", "/a", false)]);
        assert_eq!(
            parse_bind_arg("/a:/b:ro,/c:/d").unwrap(),
            vec![b("/a", "/b", true), b("/c", "/d", false)]
        );
        assert_eq!(
            parse_bind_arg("/we\\,ird:/co\\:lon").unwrap(),
            vec![b("/we,ird", "/co:lon", false)]
        );
        let img = parse_bind_arg("/x.sif:/data:image-src=/,id=4").unwrap();
        assert_eq!(img[0].image_src.as_deref(), Some("/"));
        assert_eq!(img[0].id, Some(4));
        assert!(parse_bind_arg("/a:rel").is_err());
        assert!(parse_bind_arg("/a:/b:bogus").is_err());
        assert!(parse_bind_arg("/a:/b:ro:x").is_err());
        assert!(parse_bind_arg("ro").is_err());
    }

    #[test]
    fn mount_forms() {
        assert_eq!(
            parse_mount_arg("type=bind,src=/a,dst=/b,ro").unwrap(),
            b("/a", "/b", true)
        );
        assert_eq!(
            parse_mount_arg("type=bind,source=/a\\,b,target=/c").unwrap(),
            b("/a,b", "/c", false)
        );
        assert!(parse_mount_arg("type=tmpfs,dst=/b").is_err());
        assert!(parse_mount_arg("src=/a,dst=/b").is_err());
    }
}
