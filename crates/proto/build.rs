//! Compiles `proto/rickshaw/**/*.proto` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed) and generates the messages, clients and servers with tonic-prost-build.

use std::path::{Path, PathBuf};

const ROOT: &str = "proto";

/// Messages holding a password or a token: their `Debug` is written by hand (redacted).
const SECRET_MESSAGES: [&str; 5] = [
    ".rickshaw.identity.v1.SignUpRequest",
    ".rickshaw.identity.v1.LogInRequest",
    ".rickshaw.identity.v1.Tokens",
    ".rickshaw.identity.v1.RefreshRequest",
    ".rickshaw.identity.v1.LogOutRequest",
];

fn protos(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={ROOT}");
    let mut files = Vec::new();
    protos(Path::new(ROOT), &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [ROOT])?;
    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(descriptors)?;
    Ok(())
}
