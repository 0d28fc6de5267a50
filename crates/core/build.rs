//! Embeds the shipped Jiangxi boundary files so the binary needs no data
//! directory to draw its province map.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/boundaries/jiangxi");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("data/boundaries/jiangxi is shipped with the source")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("geojson"))
        .collect();
    names.sort();
    let mut out = String::from("vec![\n");
    for p in names {
        let stem = p.file_stem().unwrap().to_string_lossy();
        let abs = p.canonicalize().unwrap();
        writeln!(
            out,
            "    BoundaryFile {{ adcode: {stem:?}.to_string(), text: include_str!({:?}).to_string() }},",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("jiangxi_boundaries.rs");
    std::fs::write(dest, out).unwrap();
}
