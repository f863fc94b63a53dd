//! Converts `openapi.yaml` to JSON once, at build time, for `GET /openapi.json`: the two
//! are always the same document, and a document that is not valid YAML fails the build.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=openapi.yaml");
    let yaml = std::fs::read_to_string("openapi.yaml").expect("cannot read openapi.yaml");
    let document: serde_json::Value =
        serde_yaml::from_str(&yaml).expect("openapi.yaml is not valid YAML");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("openapi.json");
    std::fs::write(out, serde_json::to_string(&document).expect("JSON"))
        .expect("cannot write openapi.json");
}
