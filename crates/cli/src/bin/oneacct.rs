//! `oneacct`: OpenNebula's CLI of the same name (`cli::acct`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::acct::oneacct(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
