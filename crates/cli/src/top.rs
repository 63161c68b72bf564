//! `top`: a family's `list`, printed again every `--delay` seconds on a cleared screen, as
//! OpenNebula's `OneHelper#list_pool_top` and `CLIHelper::ShowTable#top` do. It runs until
//! interrupted; a failed listing ends it with the error, as Ruby's `CLIHelper.fail`.

use std::io::Write;
use std::time::Duration;

use crate::client::Client;
use crate::objects::{Kind, Opts, EXIT_FAILURE};

/// The CLIs with a `top` subcommand in OpenNebula 7.0.2.
pub(crate) const KINDS: &[Kind] = &[
    Kind::Host,
    Kind::Vm,
    Kind::Template,
    Kind::Hook,
    Kind::Image,
    Kind::VnTemplate,
    Kind::Vrouter,
    Kind::BackupJob,
];

/// `top`'s own valued option, besides `list`'s (`-d` is already valued for every subcommand).
pub(crate) const VALUED: &[&str] = &["--delay"];

/// Its line in the usage text.
pub(crate) const USAGE: &str = " | top [a|m|g|G|<user>] [<list options>] [-d|--delay <s>]";

/// `CLIHelper.scr_cls` then `scr_move(0, 0)`.
const CLEAR: &str = "\x1b[2J\x1b[H\x1b[0;0H";

pub(crate) fn handles(kind: Kind, o: &Opts) -> bool {
    KINDS.contains(&kind) && o.words.first().is_some_and(|w| w == "top")
}

/// `--delay` in seconds: OptionParser's `Integer`, 1 when absent (`options[:delay] || 1`).
fn delay(o: &Opts) -> Result<Duration, String> {
    match o.value(&["-d", "--delay"]) {
        None => Ok(Duration::from_secs(1)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("invalid argument: --delay {v}")),
    }
}

/// Runs until interrupted, or until a listing fails (then its error, and [`EXIT_FAILURE`]).
/// `frames` bounds the screens printed (`None` in the binaries).
pub(crate) fn run(
    kind: Kind,
    o: &Opts,
    client: &Client,
    out: &mut dyn Write,
    err: &mut dyn Write,
    frames: Option<u64>,
) -> i32 {
    let delay = match delay(o) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
    };
    let mut words = o.words.clone();
    words[0] = "list".into();
    let list = Opts {
        words,
        flags: o
            .flags
            .iter()
            .filter(|(f, _)| f != "-d" && f != "--delay")
            .cloned()
            .collect(),
    };
    let mut shown = 0;
    loop {
        let mut screen = Vec::new();
        if let Err(e) = crate::objects::execute(kind, &list, client, &mut screen) {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
        let printed = out
            .write_all(CLEAR.as_bytes())
            .and_then(|()| out.write_all(&screen))
            .and_then(|()| out.flush());
        // The terminal went away (a closed pipe): nothing is left to show it to.
        if printed.is_err() {
            return 0;
        }
        shown += 1;
        if frames.is_some_and(|n| shown >= n) {
            return 0;
        }
        std::thread::sleep(delay);
    }
}
