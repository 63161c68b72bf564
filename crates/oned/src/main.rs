//! `oned [-f]`: runs one OneHA server in the foreground, configured by `oned.conf`.

use std::process::ExitCode;

use oned::{Config, Paths};

fn usage() {
    println!(
        "Usage: oned [-f] [--follower-cleanup] [-h] [-v]\n\
         Runs the OneHA server in the foreground.\n\
         Configuration: $ONE_LOCATION/etc/oned.conf, or /etc/one/oned.conf\n\
         \x20 -f  run in the foreground (always the case; kept for OpenNebula compatibility)\n\
         \x20 --follower-cleanup  run RAFT_FOLLOWER_HOOK once and exit (systemd ExecStopPost)\n\
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
    let default = || tracing_subscriber::EnvFilter::new("info,openraft=warn");
    let filter = match std::env::var("RUST_LOG") {
        Err(_) => default(),
        Ok(spec) => tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("oned: RUST_LOG=\"{spec}\" is not a log filter ({e}); logging at info");
            default()
        }),
    };
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
        (Err(e), _) | (_, Err(e)) => {
            // Serving on matters more; only SIGKILL stops this server now.
            tracing::error!(error = %e, "cannot watch SIGTERM and SIGINT: no orderly shutdown");
            std::future::pending::<()>().await
        }
    }
}

/// `oned --follower-cleanup`: runs RAFT_FOLLOWER_HOOK once and exits, for systemd's
/// `ExecStopPost`, so a crashed leader's floating IP is released as OpenNebula's
/// `follower_cleanup` does.
fn run_follower_cleanup(config: &Config, paths: &Paths) -> ExitCode {
    let Some(hook) = &config.follower_hook else {
        return ExitCode::SUCCESS;
    };
    if config.server_id < 0 {
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(paths) {
        // The hook still runs: releasing the floating IP matters more than its log lines.
        eprintln!("oned: {e:#}; RAFT_FOLLOWER_HOOK runs without a log");
    }
    let cmd = oned::hooks::HookCmd::new("RAFT_FOLLOWER_HOOK", hook, &paths.remotes);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oned: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd.run(oned::hooks::HOOK_TIMEOUT)) {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    let refused_malloc = oned::memory::configure_allocator();
    let mut follower_cleanup = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-f" => {}
            "--follower-cleanup" => follower_cleanup = true,
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
    if follower_cleanup {
        return run_follower_cleanup(&config, &paths);
    }
    if let Err(e) = init_logging(&paths) {
        eprintln!("oned: {e:#}");
        return ExitCode::from(1);
    }
    log_panics();
    if !refused_malloc.is_empty() {
        tracing::warn!(settings = ?refused_malloc, "glibc refused these malloc settings: kept its defaults (docs/memory.md)");
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
    // The server runs as a task of the runtime, not on this thread (`block_on`): its accept loop
    // then runs on a worker, which is woken by the listener's readiness itself and spawns each
    // connection's task into its own queue. On this thread, every connection cost two more
    // thread wake-ups (this thread, then a worker for the new task).
    let result = runtime.block_on(async {
        let addr = format!("{}:{}", config.listen_address, config.port);
        let listener = bind(&addr, config.limits.max_conn_backlog)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let server = tokio::spawn(oned::run(config, paths, listener, shutdown_signal()));
        match server.await {
            Ok(served) => served.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("the server task ended abnormally: {e}")),
        }
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

/// A panic in a task (openraft's RaftCore runs in one) goes to `oned.log` as well as stderr:
/// operators read the log, and the default hook alone prints only to stderr.
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            panic = %info,
            "panicked"
        );
        default(info);
    }));
}

/// Binds with MAX_CONN_BACKLOG as the listen backlog.
fn bind(addr: &str, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let sock_addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let socket = if sock_addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(sock_addr)?;
    socket.listen(backlog)
}
