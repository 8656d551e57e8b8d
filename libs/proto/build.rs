//! Compiles every `.proto` under `proto/` (the repository root) and writes the
//! descriptor sets: the shipped one that reflection and the gateway read, without the
//! test-only `festival.testing` package, and one with it for tests.
use std::path::{Path, PathBuf};

use prost::Message;

/// Test-only protos: compiled (behind the `testing` feature) but never in the shipped set.
const TEST_ONLY_PACKAGE: &str = "festival.testing";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files = Vec::new();
    collect_protos(&root.join("festival"), &mut files)?;
    files.sort();

    // An explicit PROTOC wins; otherwise the vendored binary, so a fresh clone builds offline.
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let include = protoc_bin_vendored::include_path()?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    config.enable_type_names();
    // Ordered maps: a message encodes to the same bytes every time, so idempotency keys
    // can compare requests by their hash (a HashMap's order changes from run to run).
    config.btree_map(["."]);
    let with_testing = out.join("festival_testing_descriptor.bin");
    tonic_prost_build::configure().file_descriptor_set_path(&with_testing).compile_with_config(
        config,
        &files,
        &[root.clone(), include],
    )?;
    let shipped = without_test_only(&std::fs::read(&with_testing)?)?;
    std::fs::write(out.join("festival_descriptor.bin"), shipped)?;

    println!("cargo:rerun-if-changed={}", root.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    Ok(())
}

/// The descriptor set minus the test-only files, copied byte for byte: decoding into
/// prost_types and encoding again would drop the custom options (`google.api.http`)
/// that the gateway's REST routes are read from.
fn without_test_only(set: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
    let mut input = set;
    let mut shipped = Vec::with_capacity(set.len());
    while !input.is_empty() {
        let (tag, wire_type) = decode_key(&mut input)?;
        if tag != 1 || wire_type != WireType::LengthDelimited {
            return Err(format!("unexpected field {tag} in a FileDescriptorSet").into());
        }
        let len = usize::try_from(decode_varint(&mut input)?)?;
        let (file, rest) = input.split_at_checked(len).ok_or("truncated FileDescriptorSet")?;
        input = rest;
        if prost_types::FileDescriptorProto::decode(file)?.package().starts_with(TEST_ONLY_PACKAGE) {
            continue;
        }
        encode_key(1, WireType::LengthDelimited, &mut shipped);
        encode_varint(len as u64, &mut shipped);
        shipped.extend_from_slice(file);
    }
    Ok(shipped)
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
