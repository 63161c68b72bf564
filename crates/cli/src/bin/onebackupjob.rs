//! `onebackupjob`: OpenNebula's CLI for backup jobs.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::objects::run(
        cli::objects::Kind::BackupJob,
        &args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
