//! `top` of the eight CLIs that have it in OpenNebula 7.0.2: the family's `list` printed again
//! on a cleared screen every `--delay` seconds, showing what changed in between.

use cli::objects::Kind;

use crate::zone::{allocate, Server, Zone};

const CLEAR: &str = "\x1b[2J\x1b[H\x1b[0;0H";

/// `frames` screens of `<kind> top <args>` through `server`: exit code, stdout, stderr.
fn top(server: &Server, kind: Kind, args: &[&str], frames: u64) -> (i32, String, String) {
    let endpoint = server.endpoint();
    let password = server.password();
    let mut all: Vec<String> = ["top"].iter().chain(args).map(|a| a.to_string()).collect();
    all.extend(
        [
            "--endpoint",
            &endpoint,
            "--user",
            "oneadmin",
            "--password",
            &password,
        ]
        .map(String::from),
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::objects::run_frames(kind, &all, &mut out, &mut err, Some(frames));
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn top_prints_the_list_on_a_cleared_screen_each_period() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let c = server.client();
    for name in ["t-a", "t-b"] {
        allocate(&c, name).unwrap();
    }
    let tpl = "NAME = \"topped\"\nCPU = 0.1\nMEMORY = 16\n";
    c.call(
        "one.template.allocate",
        vec![xmlrpc::Value::String(tpl.into())],
    )
    .unwrap();

    let list = server.cli(Kind::Template, &["list"]).ok();
    let (code, out, err) = top(server, Kind::Template, &["-d", "0"], 2);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    // Two screens, each the whole list as `list` prints it.
    assert_eq!(out, format!("{CLEAR}{list}{CLEAR}{list}"));
    assert!(list.contains("topped"), "{list}");

    // Every CLI that has `top` in OpenNebula answers it with its own list.
    for kind in [
        Kind::Host,
        Kind::Vm,
        Kind::Hook,
        Kind::Image,
        Kind::VnTemplate,
        Kind::Vrouter,
        Kind::BackupJob,
    ] {
        let list = server.cli(kind, &["list"]).ok();
        let (code, out, err) = top(server, kind, &["--delay", "0"], 1);
        assert_eq!((code, err.as_str()), (0, ""), "{}", kind.command());
        assert_eq!(out, format!("{CLEAR}{list}"), "{}", kind.command());
    }
    // list's options and filter flag reach the list.
    let (_, out, _) = top(server, Kind::Vm, &["m", "--csv", "-d", "0"], 1);
    assert_eq!(
        out,
        format!(
            "{CLEAR}{}",
            server.cli(Kind::Vm, &["list", "m", "--csv"]).ok()
        )
    );

    // A delay that is not a number is refused before anything is shown.
    let (code, out, err) = top(server, Kind::Vm, &["-d", "soon"], 1);
    assert_eq!((code, out.as_str()), (255, ""));
    assert_eq!(err, "invalid argument: --delay soon\n");
    // A family without top in OpenNebula has none here either.
    let (code, _, _) = top(server, Kind::User, &["-d", "0"], 1);
    assert_eq!(code, 255);
}
