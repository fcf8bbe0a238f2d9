//! Compiles `proto/kvs.proto` with protox, a protobuf compiler written in
//! Rust, so that building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    println!("cargo:rerun-if-changed={proto_dir}");
    let fds = protox::compile(["kvs.proto"], [proto_dir])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    // Malformed messages are INVALID_ARGUMENT, not tonic's INTERNAL.
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .codec_path("crate::codec::MessageCodec")
        .compile_fds(fds)?;
    Ok(())
}
