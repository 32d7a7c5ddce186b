//! Marks the real-model tests as ignored (so test runners list them as skipped, with the reason)
//! when no model folder is named in `TWIN_EMBED_MODEL_PATH`, unless `TWIN_REQUIRE_MODEL=1` asks for
//! them to run, and fail, anyway.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_embed_model)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TWIN_EMBED_MODEL_PATH");
    println!("cargo::rerun-if-env-changed=TWIN_REQUIRE_MODEL");
    let has_model = std::env::var_os("TWIN_EMBED_MODEL_PATH").is_some();
    let required = std::env::var("TWIN_REQUIRE_MODEL").is_ok_and(|value| value == "1");
    if !has_model && !required {
        println!("cargo::rustc-cfg=no_embed_model");
    }
}
