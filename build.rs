//! Compiles the headscale.v1 admin API (`proto/headscale/v1/*.proto`) into
//! Rust with `protox` (a pure-Rust protobuf compiler, so no `protoc` is
//! needed on the build machine) and `tonic-prost-build` (server and client).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    // Without the `server` feature (the fuzz build) there is no gRPC API.
    #[cfg(feature = "server")]
    grpc::compile()?;
    Ok(())
}

#[cfg(feature = "server")]
mod grpc {
    use std::path::Path;

    const PROTO_ROOT: &str = "proto";
    const PROTO_DIR: &str = "proto/headscale/v1";

    pub fn compile() -> Result<(), Box<dyn std::error::Error>> {
        println!("cargo:rerun-if-changed={PROTO_ROOT}");

        // Every file in the package, sorted so the output does not depend on
        // directory order.
        let mut files = Vec::new();
        for entry in std::fs::read_dir(PROTO_DIR)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "proto") {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(format!("no .proto files under {PROTO_DIR}").into());
        }

        let descriptors = protox::compile(&files, [Path::new(PROTO_ROOT)])?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(descriptors)?;
        Ok(())
    }
}
