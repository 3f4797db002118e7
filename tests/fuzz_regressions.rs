//! Every crash the fuzz targets found, kept under `fuzz/regressions/<target>/` and replayed through the same
//! entry function the target calls (`fuzz/src/lib.rs`). Runs in a plain `cargo test`: no cargo-fuzz, no
//! `../shared`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod entries;

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut inputs: Vec<_> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    for input in inputs {
        let data = std::fs::read(&input).expect("read regression input");
        let outcome = std::panic::catch_unwind(|| entry(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} panics again",
            input.display()
        );
    }
}

macro_rules! regressions {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), entries::$target);
            }
        )*
    };
}

regressions!(
    oneroster_csv,
    hmis_csv,
    hsds_csv,
    hsds_json,
    referral_csv,
    edfi_xml,
    sif_xml,
    nibrs_xml,
    fhir_json,
    mapping_toml,
    config_toml,
    http_json,
    fhirpath,
);

/// Every target has its regression folder, and every regression folder is a target.
#[test]
fn regression_folders_name_targets() {
    let known = [
        "oneroster_csv",
        "hmis_csv",
        "hsds_csv",
        "hsds_json",
        "referral_csv",
        "edfi_xml",
        "sif_xml",
        "nibrs_xml",
        "fhir_json",
        "mapping_toml",
        "config_toml",
        "http_json",
        "fhirpath",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let Ok(read) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in read.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            known.contains(&name.as_str()),
            "fuzz/regressions/{name} is no fuzz target"
        );
    }
}
