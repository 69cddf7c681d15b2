//! `squashbox squashfs extract` and `ls -l` on the fixture tree packed with every compressor,
//! block size and packing option mksquashfs has: the extract must equal the source tree, and
//! the listing must equal `unsquashfs -lln`.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use cli::*;

/// One mksquashfs configuration.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "gzip-128k",
        args: &[],
    },
    Case {
        name: "gzip-4k",
        args: &["-b", "4K"],
    },
    Case {
        name: "gzip-1m",
        args: &["-b", "1M"],
    },
    Case {
        name: "lzma",
        args: &["-comp", "lzma"],
    },
    Case {
        name: "lzo",
        args: &["-comp", "lzo"],
    },
    Case {
        name: "xz",
        args: &["-comp", "xz"],
    },
    Case {
        name: "xz-bcj",
        args: &["-comp", "xz", "-Xbcj", "x86,arm"],
    },
    Case {
        name: "lz4",
        args: &["-comp", "lz4"],
    },
    Case {
        name: "lz4-hc",
        args: &["-comp", "lz4", "-Xhc"],
    },
    Case {
        name: "zstd",
        args: &["-comp", "zstd"],
    },
    Case {
        name: "zstd-4k",
        args: &["-comp", "zstd", "-b", "4K"],
    },
    Case {
        name: "uncompressed",
        args: &["-noI", "-noD", "-noF", "-noX"],
    },
    Case {
        name: "no-fragments",
        args: &["-no-fragments"],
    },
    Case {
        name: "always-fragments",
        args: &["-always-use-fragments"],
    },
    Case {
        name: "tailends",
        args: &["-tailends"],
    },
    Case {
        name: "no-duplicates",
        args: &["-no-duplicates"],
    },
];

/// Pack, extract, compare; and compare `ls -l` / `info` with unsquashfs. Returns failures.
fn check_case(tree: &Path, case: &Case) -> Vec<String> {
    let image = fresh(&format!("{}.sqfs", case.name));
    let mut failures = Vec::new();
    if let Err(e) = squashbox_fixtures::mksquashfs(tree, &image, case.args) {
        return vec![format!("{}: {e:#}", case.name)];
    }
    let dest = fresh(&format!("{}-out", case.name));
    let out = squashbox([
        "squashfs".as_ref(),
        "extract".as_ref(),
        image.as_os_str(),
        dest.as_os_str(),
        "-j".as_ref(),
        "2".as_ref(),
    ]);
    if !out.status.success() {
        failures.push(format!(
            "{}: extract failed: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        ));
    } else {
        let opts = Compare {
            ignore_owner: !is_root(),
            ..Compare::default()
        };
        let diffs = compare_trees(tree, &dest, opts);
        if !diffs.is_empty() {
            failures.push(format!(
                "{}: extract differs from the source tree ({}):\n  {}",
                case.name,
                diffs.len(),
                diffs
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dest);

    let ours = squashbox([
        "squashfs".as_ref(),
        "ls".as_ref(),
        "-l".as_ref(),
        image.as_os_str(),
    ]);
    let theirs = unsquashfs_lln(&image, &[]);
    if ours.stdout != theirs {
        failures.push(format!(
            "{}: ls -l differs from unsquashfs -lln: {}",
            case.name,
            first_diff(&ours.stdout, &theirs)
        ));
    }
    let ours = squashbox(["squashfs".as_ref(), "info".as_ref(), image.as_os_str()]);
    let theirs = run_ok(
        std::process::Command::new("unsquashfs")
            .arg("-s")
            .arg(&image),
    );
    if ours.stdout != theirs {
        failures.push(format!(
            "{}: info differs from unsquashfs -s: {}",
            case.name,
            first_diff(&ours.stdout, &theirs)
        ));
    }
    let _ = std::fs::remove_file(&image);
    failures
}

#[test]
fn every_compressor_and_option_extracts_the_exact_tree() {
    if !squashfs_tools_ready() {
        return;
    }
    let tree = fixture_tree();
    // In sequence: the machine has few cores and mksquashfs uses them all.
    let failures: Vec<String> = CASES.iter().flat_map(|c| check_case(tree, c)).collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn huge_sparse_file_over_4gib_extracts_exactly() {
    if !squashfs_tools_ready() {
        return;
    }
    let tree = fresh("huge-tree");
    let opts = squashbox_fixtures::TreeOptions {
        huge_sparse: true,
        big_dir_entries: 10,
        ..Default::default()
    };
    squashbox_fixtures::generate_tree(&tree, &opts).expect("tree");
    let image = fresh("huge.sqfs");
    squashbox_fixtures::mksquashfs(&tree, &image, &[]).expect("mksquashfs");
    let dest = fresh("huge-out");
    squashbox_ok([
        "squashfs".as_ref(),
        "extract".as_ref(),
        image.as_os_str(),
        dest.as_os_str(),
    ]);
    let opts = Compare {
        ignore_owner: !is_root(),
        ..Compare::default()
    };
    assert_same_tree(&tree, &dest, opts, "huge sparse image");
    // The zero blocks must come back as holes, not 5 GiB of written zeros.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dest.join("huge/sparse-5g")).expect("stat");
    assert_eq!(m.len(), squashbox_fixtures::HUGE_SPARSE_SIZE);
    assert!(
        m.blocks() * 512 < 64 << 20,
        "not sparse: {} bytes allocated",
        m.blocks() * 512
    );
    let ours = squashbox([
        "squashfs".as_ref(),
        "ls".as_ref(),
        "-l".as_ref(),
        image.as_os_str(),
    ]);
    let theirs = unsquashfs_lln(&image, &[]);
    assert!(
        ours.stdout == theirs,
        "ls -l: {}",
        first_diff(&ours.stdout, &theirs)
    );
    let _ = std::fs::remove_dir_all(&dest);
    let _ = std::fs::remove_dir_all(&tree);
}
