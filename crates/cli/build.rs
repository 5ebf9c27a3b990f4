//! Links the functions' start-up code first and side by side
//! (`startup/order.ld`, made by `startup/trace.py`).
//!
//! Why: a function runs about 2,000 functions spread over 12 MiB of code
//! while it starts, and the kernel maps whole page-cache folios (128 KiB to
//! over 1 MiB) around every page it touches. An idle trainer over S3 held
//! 7.9 MiB of mapped code (11.8 MiB RSS); with its start-up code in one
//! 2 MiB block it holds 2.3 MiB (6.5 MiB RSS with packed relocations, below).
//!
//! Where the C library can read them (glibc 2.36 and later), relative
//! relocations are also packed (`-z pack-relative-relocs`, DT_RELR): the
//! loader reads all of them at start-up, and packed they are 7 KiB instead
//! of 615 KiB (an idle trainer 7.4 -> 6.7 MiB RSS).
//!
//! Inside the block, functions are grouped by the roles and modes that run
//! them, so that one start-up's 1.3 to 2.2 MiB of code sits together; and
//! every function a start-up runs must match a pattern (merged aliases,
//! assembly objects, the C runtime's `.text` included), or the folio around
//! it maps unrelated code: a driver mapped up to 1.1 MiB of `.text` outside
//! the block with a script that had missed 16 functions. Builds link glibc
//! statically (`.cargo/config.toml`), and the script names the archive
//! members of the glibc functions that start-up runs, so that they sit in
//! the block and the rest of glibc does not (an idle trainer 4.7 -> 4.0 MiB
//! against all of `libc.a` in the block).
//!
//! The script only groups sections: a pattern that matches nothing changes
//! nothing, so a stale script costs memory, never correctness. Its patterns
//! are v0 symbol names without crate hashes (`.cargo/config.toml` selects v0
//! mangling); set STACKING_NO_STARTUP_ORDER=1 to link without it.
//! `cargo:rustc-link-arg-bin` reaches only the `stacking` binary, not the
//! tests.

fn main() {
    println!("cargo:rerun-if-changed=startup/order.ld");
    println!("cargo:rerun-if-env-changed=STACKING_NO_STARTUP_ORDER");
    // GNU ld and lld both read the script; Linux means ELF and one of them.
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os != "linux") {
        return;
    }
    if glibc_reads_relr() {
        println!("cargo:rustc-link-arg-bin=stacking=-Wl,-z,pack-relative-relocs");
    }
    if std::env::var_os("STACKING_NO_STARTUP_ORDER").is_some() {
        return;
    }
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = std::path::Path::new(&dir).join("startup").join("order.ld");
    if script.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=stacking=-Wl,-T,{}",
            script.display()
        );
    }
}

/// Whether the binary is built for the glibc it is built on, at 2.36 or
/// later (the first to load DT_RELR; older ones refuse such a binary).
fn glibc_reads_relr() -> bool {
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if !native || !gnu {
        return false;
    }
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
