//! Converts `openapi.yaml` to JSON once, at build time, for `GET /openapi.json`: the two
//! are always the same document, and a document that is not valid YAML fails the build.
//! Also tells the tests what this machine can run, so tests that cannot run here show as
//! ignored rather than passing: `postgres_tests` when `STOCKBATCH_TEST_POSTGRES_URL` names a
//! server, `netns_tests` when the build runs as root with `ip` (network namespaces).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STOCKBATCH_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(netns_tests)");
    if std::env::var("STOCKBATCH_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=postgres_tests");
    }
    if runs_as_root() && std::process::Command::new("ip").arg("-V").output().is_ok() {
        println!("cargo:rustc-cfg=netns_tests");
    }
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = std::fs::read_to_string("openapi.yaml").expect("cannot read openapi.yaml");
    let document: serde_json::Value =
        serde_yaml::from_str(&yaml).expect("openapi.yaml is not valid YAML");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("openapi.json");
    std::fs::write(out, serde_json::to_string(&document).expect("JSON"))
        .expect("cannot write openapi.json");
}

fn runs_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
