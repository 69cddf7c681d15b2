//! `squashbox sif add`: siftool's flags mapped onto the library's object input.

use std::path::PathBuf;

use anyhow::{Context, bail};
use squashbox_sif::{
    Arch, DataType, EditOptions, FsType, HashType, Link, Metadata, ObjectData, ObjectInput,
    PartType, SbomFormat,
};

/// Arguments of `squashbox sif add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// SIF image to add to.
    sif_path: PathBuf,
    /// File holding the object data.
    object_path: PathBuf,
    /// the type of data to add
    /// [NEEDED, no default]:
    ///   1-Deffile,   2-EnvVar,    3-Labels,
    ///   4-Partition, 5-Signature, 6-GenericJSON,
    ///   7-Generic,   8-CryptoMessage, 9-SBOM,
    ///   10-OCI.RootIndex, 11-OCI.Blob
    #[arg(long, default_value_t = 0, verbatim_doc_comment)]
    datatype: i32,
    /// the type of partition (with -datatype 4-Partition)
    /// [NEEDED, no default]:
    ///   1-System,    2-PrimSys,   3-Data,
    ///   4-Overlay
    #[arg(long, default_value_t = 0, verbatim_doc_comment)]
    parttype: i32,
    /// the filesystem used (with -datatype 4-Partition)
    /// [NEEDED, no default]:
    ///   1-Squash,    2-Ext3,      3-ImmuObj,
    ///   4-Raw
    #[arg(long, default_value_t = 0, verbatim_doc_comment)]
    partfs: i32,
    /// the main architecture used (with -datatype 4-Partition)
    /// [NEEDED, no default]:
    ///   1-386,       2-amd64,     3-arm,
    ///   4-arm64,     5-ppc64,     6-ppc64le,
    ///   7-mips,      8-mipsle,    9-mips64,
    ///   10-mips64le, 11-s390x,    12-riscv64,
    ///   13-loong64
    #[arg(long, default_value_t = 0, verbatim_doc_comment)]
    partarch: i32,
    /// the signature hash used (with -datatype 5-Signature)
    /// [NEEDED, no default]:
    ///   1-SHA256,    2-SHA384,    3-SHA512,
    ///   4-BLAKE2S,   5-BLAKE2B
    #[arg(long, default_value_t = 0, verbatim_doc_comment)]
    signhash: i32,
    /// the entity that signs (with -datatype 5-Signature)
    /// [NEEDED, no default]:
    ///   example: 433FE984155206BD962725E20E8713472A879943
    #[arg(long, default_value = "", verbatim_doc_comment)]
    signentity: String,
    /// the SBOM format (with -datatype 9-sbom):
    ///   cyclonedx-json, cyclonedx-xml, github-json, spdx-json,
    ///   spdx-rdf, spdx-tag-value, spdx-yaml, syft-json
    #[arg(long, default_value = "", verbatim_doc_comment)]
    sbomformat: String,
    /// set groupid [default: 0]
    #[arg(long, default_value_t = 0)]
    groupid: u32,
    /// set link pointer [default: 0]
    #[arg(long, default_value_t = 0)]
    link: u32,
    /// set alignment [default: 4096 with -datatype 4-Partition, 0 otherwise]
    #[arg(long, default_value_t = 0)]
    alignment: u64,
    /// set logical filename/handle [default: input filename]
    #[arg(long, default_value = "")]
    filename: String,
}

/// Translate siftool flags into an [`ObjectInput`], rejecting what siftool rejects.
fn object_input(a: &AddArgs) -> anyhow::Result<ObjectInput> {
    if !(1..=11).contains(&a.datatype) {
        bail!("--datatype must be 1..11 (got {})", a.datatype);
    }
    let dt = DataType(0x4000 + a.datatype);
    let mut input = ObjectInput::new(dt, ObjectData::File(a.object_path.clone()));
    input.group = a.groupid;
    if a.link != 0 {
        input.link = Link::Object(a.link);
    }
    if a.alignment != 0 {
        input.alignment = Some(a.alignment);
    }
    input.name = a.filename.clone();
    if dt == DataType::PARTITION {
        if a.partfs == 0 || a.parttype == 0 || a.partarch == 0 {
            bail!("with partition datatype, --partfs, --parttype and --partarch must be passed");
        }
        let arch = u32::try_from(a.partarch)
            .ok()
            .and_then(Arch::from_code)
            .filter(|a| !a.is_unknown())
            .with_context(|| format!("unknown --partarch {}", a.partarch))?;
        input.metadata = Metadata::Partition {
            fs: FsType(a.partfs),
            part: PartType(a.parttype),
            arch,
        };
    } else if dt == DataType::SIGNATURE {
        if a.signhash == 0 || a.signentity.is_empty() {
            bail!("with signature datatype, --signhash and --signentity must be passed");
        }
        let hash = HashType(a.signhash);
        if hash.name().is_none() {
            bail!("unknown --signhash {}", a.signhash);
        }
        let entity = parse_fingerprint(&a.signentity)?;
        input.metadata = Metadata::Signature { hash, entity };
    } else if dt == DataType::SBOM {
        if a.sbomformat.is_empty() {
            bail!("with SBOM datatype, --sbomformat must be passed");
        }
        let f = SbomFormat::from_name(&a.sbomformat)
            .with_context(|| format!("unknown --sbomformat {:?}", a.sbomformat))?;
        input.metadata = Metadata::Sbom(f);
    }
    Ok(input)
}

/// A 20-byte OpenPGP fingerprint written as 40 hex digits.
fn parse_fingerprint(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() != 40 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("--signentity must be a 40-hex-digit fingerprint (got {s:?})");
    }
    Ok((0..20)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex checked"))
        .collect())
}

/// Run `squashbox sif add`.
pub fn run(a: AddArgs) -> anyhow::Result<()> {
    let input = object_input(&a)?;
    let f = super::open_rw(&a.sif_path)?;
    squashbox_sif::add_object(&f, input, &EditOptions::default())
        .with_context(|| format!("{}", a.sif_path.display()))?;
    Ok(())
}
