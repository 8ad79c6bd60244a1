//! Compiles the `.proto` files with protox, a pure-Rust protobuf compiler, so that a fresh
//! machine needs no `protoc`; tonic-prost-build then generates the Rust code into `OUT_DIR`.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let files = [
        "avocet/api/v1/cluster.proto",
        "avocet/api/v1/scheduler.proto",
        "avocet/raft/v1/raft.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
