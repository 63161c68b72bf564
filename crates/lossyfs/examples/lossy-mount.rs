//! Mounts a lossy filesystem over a directory until stdin ends; each line read is a command:
//! `cut` (a power cut: forget what was not synced) or `sync` (make everything durable). For
//! trying a program on it by hand, e.g. whether a database's data directory works there.
//!
//! `cargo run -p lossyfs --example lossy-mount -- /mnt/dir` (as root, with /dev/fuse).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: lossy-mount DIR");
        return ExitCode::from(2);
    };
    let mount = match lossyfs::Mount::new(&dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mounting {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    println!("mounted on {}; commands: cut, sync", dir.display());
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("cut") => {
                mount.cut();
                println!("cut ({} so far)", mount.cuts());
            }
            Ok("sync") => {
                mount.sync_all();
                println!("synced");
            }
            Ok(other) => println!("unknown command {other:?}: cut or sync"),
            Err(e) => {
                eprintln!("reading stdin: {e}");
                break;
            }
        }
    }
    ExitCode::SUCCESS
}
