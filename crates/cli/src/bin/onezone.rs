//! `onezone`: manage OpenNebula zones and their HA servers.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::onezone::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
