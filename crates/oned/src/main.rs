//! `oned [-f]`: runs one OneHA server in the foreground, configured by `oned.conf`.

use std::process::ExitCode;

use oned::{Config, Paths};

fn usage() {
    println!(
        "Usage: oned [-f] [-h] [-v]\n\
         Runs the OneHA server in the foreground.\n\
         Configuration: $ONE_LOCATION/etc/oned.conf, or /etc/one/oned.conf\n\
         \x20 -f  run in the foreground (always the case; kept for OpenNebula compatibility)\n\
         \x20 -h  this help\n\
         \x20 -v  print the version"
    );
}

fn init_logging(paths: &Paths) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = paths.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("opening {}", paths.log.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => std::future::pending::<()>().await,
    }
}

fn main() -> ExitCode {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-f" => {}
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            "-v" | "--version" => {
                println!("OneHA oned {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("oned: unknown option {other}");
                usage();
                return ExitCode::from(1);
            }
        }
    }
    let paths = Paths::from_env();
    let config = match Config::load(&paths.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oned: error in configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = init_logging(&paths) {
        eprintln!("oned: {e:#}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oned: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let addr = format!("{}:{}", config.listen_address, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        oned::run(config, paths, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "oned stopped");
            eprintln!("oned: {e:#}");
            ExitCode::from(1)
        }
    }
}
