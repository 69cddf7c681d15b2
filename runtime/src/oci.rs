//! The process of an OCI-derived image: `Entrypoint` and `Cmd` from the image config that
//! `apptainer build` stores in a SIF as the JSON.Generic object `oci-config.json`. `run`
//! uses it when the image has no runscript (a distroless image may not even have a shell).

use squashbox_sif::{DataType, Sif};

use crate::actions::OciProcess;

/// The name of the SIF object that holds the image config.
pub const OBJECT_NAME: &str = "oci-config.json";

/// The largest config read (a config is a few KiB; the object size comes from the image).
const MAX_CONFIG: i64 = 4 << 20;

/// The OCI process of the SIF at `path`, if it holds a config with an entrypoint or a
/// command. Anything unreadable or malformed counts as no config.
pub fn from_sif(path: &std::path::Path) -> Option<OciProcess> {
    let f = std::fs::File::open(path).ok()?;
    let sif = Sif::load(&f).ok()?;
    let d = sif
        .objects_of_type(DataType::GENERIC_JSON)
        .find(|d| d.name_str() == OBJECT_NAME && d.size <= MAX_CONFIG)?
        .clone();
    parse(&sif.read_data(&f, &d).ok()?)
}

/// `Entrypoint` and `Cmd` of an image config: the OCI image config (fields under
/// `config`) or its `config` object alone.
pub fn parse(json: &[u8]) -> Option<OciProcess> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let conf = v.get("config").filter(|c| c.is_object()).unwrap_or(&v);
    let strings = |key: &str| -> Vec<String> {
        conf.get(key)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let p = OciProcess {
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
    };
    (!p.entrypoint.is_empty() || !p.cmd.is_empty()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_and_cmd_from_either_form() {
        let full = br#"{"architecture":"amd64","config":{"Entrypoint":["/bin/app","-v"],"Cmd":["serve"],"Env":["A=1"]}}"#;
        let p = parse(full).unwrap();
        assert_eq!(p.entrypoint, vec!["/bin/app", "-v"]);
        assert_eq!(p.cmd, vec!["serve"]);
        let inner = br#"{"Cmd":["python3"]}"#;
        assert_eq!(parse(inner).unwrap().cmd, vec!["python3"]);
    }

    #[test]
    fn nothing_to_run_or_garbage_is_none() {
        assert_eq!(parse(br#"{"config":{"Env":["A=1"]}}"#), None);
        assert_eq!(parse(br#"{"Entrypoint":null,"Cmd":[1,2]}"#), None);
        assert_eq!(parse(b"\xff\x00not json"), None);
        assert_eq!(parse(b""), None);
    }
}
