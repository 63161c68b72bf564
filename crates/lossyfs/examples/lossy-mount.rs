//! Mounts a lossy filesystem over a directory until stdin ends; each line read is a command:
//! `cut` (a power cut: forget what was not synced) or `sync` (make everything durable). For
//! trying a program on it by hand, e.g. whether a database's data directory works there.
//!
//! `cargo run -p lossyfs --example lossy-mount -- [--journaled|--lying] /mnt/dir` (as root, with
//! /dev/fuse): `--journaled` keeps metadata as ext4 does, `--lying` acknowledges fsync and keeps
//! nothing (see [`lossyfs::Fs`]).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let flag = match args.first().and_then(|a| a.to_str()) {
        Some(f @ ("--journaled" | "--lying")) => {
            let f = f.to_string();
            args.remove(0);
            Some(f)
        }
        _ => None,
    };
    let [dir] = args.as_slice() else {
        eprintln!("usage: lossy-mount [--journaled|--lying] DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let mounted = match flag.as_deref() {
        Some("--journaled") => lossyfs::Mount::journaled(&dir),
        Some(_) => lossyfs::Mount::lying(&dir),
        None => lossyfs::Mount::new(&dir),
    };
    let mount = match mounted {
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
