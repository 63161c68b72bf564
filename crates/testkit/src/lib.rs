//! Dev-only tools for testing OneHA with real processes: a [`zone::Zone`] of `oned` servers on
//! 127.0.0.1, link proxies that cut the network between them ([`proxy::Network`]), and the
//! fault-injection suite ([`faults`]) that checks no acknowledged write is ever lost.
//!
//! A harness failure is a failed test, so this crate panics freely (and unwraps) where a test
//! would.

#![allow(clippy::unwrap_used)]

pub mod faults;
pub mod federation;
pub mod mariadb;
pub mod netns;
pub mod proxy;
pub mod tls;
pub mod zone;

use std::path::PathBuf;

/// The `oned` binary to run: `$ONEHA_ONED`, else `oned` next to the running executable (test
/// binaries live one level deeper, in `deps/`).
pub fn oned_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ONEHA_ONED") {
        return PathBuf::from(p);
    }
    let oned = build_dir().join("oned");
    assert!(
        oned.exists(),
        "{} not found: build it (cargo build -p oned) or set ONEHA_ONED",
        oned.display()
    );
    oned
}

/// A CLI binary (`onevnet`...) of this build, for tests that need it as its own process (its
/// environment, stdin or terminal): `cargo nextest run --workspace` builds them.
pub fn cli_binary(name: &str) -> PathBuf {
    let bin = build_dir().join(name);
    assert!(
        bin.exists(),
        "{} not found: build the CLIs (cargo build -p cli)",
        bin.display()
    );
    bin
}

/// Where this build's binaries are: the running executable's directory (test binaries live
/// one level deeper, in `deps/`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}
