//! Property tests of the `oned.conf` parser, the same property as the fuzz target `oned_config`
//! (`fuzz/`, docs/fuzzing.md): it never panics. Also the replay of the inputs that target found
//! crashing.

use std::path::Path;

use proptest::prelude::*;

use crate::config::Config;

fn parse_holds(text: &str) {
    let _ = Config::parse(text, Path::new("oned.conf"));
}

/// Bits of `oned.conf`, so random concatenations reach the checks of each key.
fn config_token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "PORT",
        "LISTEN_ADDRESS",
        "FEDERATION",
        "MODE",
        "ZONE_ID",
        "SERVER_ID",
        "MASTER_ONED",
        "RAFT",
        "LIMIT_PURGE",
        "LOG_RETENTION",
        "HOOK_LOG_CONF",
        "LOG_PURGE_TIMEOUT",
        "ELECTION_TIMEOUT_MS",
        "BROADCAST_TIMEOUT_MS",
        "XMLRPC_TIMEOUT_MS",
        "RAFT_LEADER_HOOK",
        "RAFT_FOLLOWER_HOOK",
        "COMMAND",
        "ARGUMENTS",
        "DB",
        "BACKEND",
        "MASTER",
        "SLAVE",
        "STANDALONE",
        "sqlite",
        " = ",
        "=",
        "[",
        "]",
        ",",
        "\"",
        "\n",
        " ",
        "#",
        "0",
        "-1",
        "1",
        "65535",
        "65536",
        "18446744073709551616",
        "-9223372036854775809",
        "0.0.0.0",
        "::",
        "1e3",
        "",
    ])
}

proptest! {
    // Failures are kept as files in fuzz/regressions/ by hand, not in proptest-regressions/.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_parser_holds_on_token_soup(tokens in proptest::collection::vec(config_token(), 0..60)) {
        parse_holds(&tokens.concat());
    }

    #[test]
    fn config_parser_holds_on_arbitrary_text(text in any::<String>()) {
        parse_holds(&text);
    }
}

#[test]
fn fuzz_regressions_oned_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/oned_config");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    inputs.sort();
    for path in inputs
        .iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
    {
        println!("replaying {}", path.display());
        if let Ok(text) = String::from_utf8(std::fs::read(path).unwrap()) {
            parse_holds(&text);
        }
    }
}
