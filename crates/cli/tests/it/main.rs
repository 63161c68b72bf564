//! End-to-end tests of the `onezone` and `onedb` binaries, against an
//! unreachable endpoint and against a tiny fake oned (std `TcpListener`
//! answering canned XML-RPC).

#![allow(clippy::unwrap_used)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use xmlrpc::{one, MethodCall, Value};

const UNREACHABLE: &str = "http://127.0.0.1:9/RPC2";

/// A fake oned: records every call and answers with `handler`.
struct FakeOned {
    url: String,
    calls: Arc<Mutex<Vec<MethodCall>>>,
}

type Handler = Arc<dyn Fn(&MethodCall, &str) -> Value + Send + Sync>;

impl FakeOned {
    fn start(handler: impl Fn(&MethodCall, &str) -> Value + Send + Sync + 'static) -> FakeOned {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/RPC2", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (calls2, url2) = (calls.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (calls, url, handler) = (calls2.clone(), url2.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, &*handler, &calls, &url));
            }
        });
        FakeOned { url, calls }
    }

    fn calls(&self) -> Vec<MethodCall> {
        self.calls.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    handler: &dyn Fn(&MethodCall, &str) -> Value,
    calls: &Mutex<Vec<MethodCall>>,
    url: &str,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let call = xmlrpc::parse_call(&body).unwrap();
    let reply = xmlrpc::write_response(&handler(&call, url));
    calls.lock().unwrap().push(call);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )
    .unwrap();
}

fn zone_xml(url: &str) -> String {
    format!(
        "<ZONE><ID>0</ID><NAME>OpenNebula</NAME><STATE>0</STATE><TEMPLATE><ENDPOINT><![CDATA[{url}]]></ENDPOINT>\
         </TEMPLATE><SERVER_POOL><SERVER><ENDPOINT><![CDATA[{url}]]></ENDPOINT><ID><![CDATA[0]]></ID>\
         <NAME><![CDATA[server-0]]></NAME></SERVER><SERVER><ENDPOINT>{UNREACHABLE}</ENDPOINT><ID>1</ID>\
         <NAME>server-1</NAME></SERVER></SERVER_POOL></ZONE>"
    )
}

fn oned(call: &MethodCall, url: &str) -> Value {
    let id = call.params.get(1).and_then(Value::as_i64);
    match (call.method.as_str(), id) {
        ("one.zone.info", Some(0)) => one::success(Value::String(zone_xml(url))),
        ("one.zone.info", _) => one::failure("[one.zone.info] Error getting zone [7].", 0x400, 7),
        ("one.zonepool.info", _) => one::success(Value::String(format!("<ZONE_POOL>{}</ZONE_POOL>", zone_xml(url)))),
        ("one.zone.raftstatus", _) => one::success(Value::String(
            "<RAFT><SERVER_ID>0</SERVER_ID><STATE>3</STATE><TERM>1</TERM><VOTEDFOR>0</VOTEDFOR><COMMIT>19</COMMIT>\
             <LOG_INDEX>19</LOG_INDEX><LOG_TERM>1</LOG_TERM><FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>"
                .into(),
        )),
        ("one.zone.addserver" | "one.zone.delserver" | "one.zone.resetserver", _) => one::success(Value::Int(0)),
        _ => one::failure("unexpected", 0x1000, -1),
    }
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("ONE_XMLRPC")
        .env("ONE_AUTH", "/nonexistent/one_auth")
        .output()
        .unwrap()
}

fn onezone(args: &[&str]) -> (i32, String, String) {
    let o = run(env!("CARGO_BIN_EXE_onezone"), args);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (o.status.code().unwrap(), text(o.stdout), text(o.stderr))
}

#[test]
fn argument_errors_exit_255() {
    let ep = ["--endpoint", UNREACHABLE, "--user", "a", "--password", "b"];
    let cases: &[(&[&str], &str)] = &[
        (&["server-add"], "Command server-add requires one parameter to run\n## USAGE\nserver-add <zoneid>\n"),
        (&["server-del"], "Command server-del requires 2 parameters to run.\n## USAGE\nserver-del <zoneid> <serverid>\n"),
        (&["show", "zero"], "Invalid zone id 'zero'"),
        (&["frobnicate"], "Unknown command 'frobnicate'"),
        (&["server-add", "0", "-n", "s"], "--rpc"),
        (&["server-add", "0", "-n", "s", "-r", "192.168.1.1:2633"], "Invalid --rpc '192.168.1.1:2633'"),
    ];
    for (args, msg) in cases {
        let all: Vec<&str> = args.iter().chain(&ep).copied().collect();
        let (code, out, err) = onezone(&all);
        assert_eq!(code, 255, "{args:?}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn unreachable_endpoint_and_missing_auth() {
    let (code, _, err) = onezone(&[
        "show",
        "0",
        "--endpoint",
        UNREACHABLE,
        "--user",
        "a",
        "--password",
        "b",
    ]);
    assert_eq!(code, 255);
    assert!(err.contains(UNREACHABLE), "{err}");
    let (code, _, err) = onezone(&["list", "--endpoint", UNREACHABLE]);
    assert_eq!(code, 255);
    assert!(err.contains("/nonexistent/one_auth"), "{err}");
}

#[test]
fn show_end_to_end() {
    let fake = FakeOned::start(oned);
    let (code, out, err) = onezone(&[
        "show",
        "0",
        "--endpoint",
        &fake.url,
        "--user",
        "oneadmin",
        "--password",
        "pw",
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let url = &fake.url;
    let expected = format!(
        "ZONE 0 INFORMATION\nID                : 0\nNAME              : OpenNebula\n\n\n\
         ZONE SERVERS\nID NAME            ENDPOINT\n 0 server-0        {url}\n 1 server-1        {UNREACHABLE}\n\n\
         HA & FEDERATION SYNC STATUS\n\
         ID NAME            STATE      TERM       INDEX      COMMIT     VOTE  FED_INDEX\n \
         0 server-0        leader     1          19         19         0     -1\n \
         1 server-1        error      -          -          -          -\n\n\
         ZONE TEMPLATE\nENDPOINT=\"{url}\"\n"
    );
    assert_eq!(out, expected);
    let calls = fake.calls();
    assert!(calls
        .iter()
        .all(|c| c.params[0] == Value::String("oneadmin:pw".into())));
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.method == "one.zone.raftstatus")
            .count(),
        1
    );
}

#[test]
fn list_end_to_end_with_one_auth_file() {
    let fake = FakeOned::start(oned);
    let auth = std::env::temp_dir().join(format!("onezone-it-auth-{}", std::process::id()));
    std::fs::write(&auth, "oneadmin:filepw\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_onezone"))
        .args(["list"])
        .env("ONE_XMLRPC", &fake.url)
        .env("ONE_AUTH", &auth)
        .output()
        .unwrap();
    std::fs::remove_file(&auth).unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("C    ID NAME                      ENDPOINT"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("*     0 OpenNebula                {}", fake.url)),
        "{out}"
    );
    assert!(lines[1].ends_with(" -1         on"), "{out}");
    assert!(fake
        .calls()
        .iter()
        .all(|c| c.params[0] == Value::String("oneadmin:filepw".into())));
}

#[test]
fn server_errors_go_to_stderr() {
    let fake = FakeOned::start(oned);
    let (code, out, err) = onezone(&[
        "show",
        "7",
        "--endpoint",
        &fake.url,
        "--user",
        "a",
        "--password",
        "b",
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (255, "", "[one.zone.info] Error getting zone [7].\n")
    );
}

#[test]
fn server_add_del_reset() {
    let fake = FakeOned::start(oned);
    let auth = [
        "--endpoint",
        fake.url.as_str(),
        "--user",
        "a",
        "--password",
        "b",
    ];
    let with = |args: &[&str]| onezone(&args.iter().chain(&auth).copied().collect::<Vec<_>>());

    let (code, out, _) = with(&[
        "server-add",
        "0",
        "--name",
        "server-1",
        "--rpc",
        "http://192.168.150.2:2633/RPC2",
        "-v",
    ]);
    assert_eq!((code, out.as_str()), (0, "ZONE 0: server added\n"));
    let (code, out, _) = with(&["server-add", "0", "-n", "q\"x", "-r", "http://h:1/RPC2"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, _) = with(&["server-del", "0", "1", "-v"]);
    assert_eq!((code, out.as_str()), (0, "ZONE 0: server deleted\n"));
    let (code, out, _) = with(&["server-reset", "0", "2", "-v"]);
    assert_eq!((code, out.as_str()), (0, "ZONE 0: server reset\n"));

    let calls: Vec<(String, Vec<Value>)> = fake
        .calls()
        .into_iter()
        .map(|c| (c.method, c.params[1..].to_vec()))
        .collect();
    let s = |v: &str| Value::String(v.into());
    assert_eq!(
        calls,
        vec![
            (
                "one.zone.addserver".into(),
                vec![
                    Value::Int(0),
                    s(r#"SERVER=[NAME="server-1", ENDPOINT="http://192.168.150.2:2633/RPC2"]"#)
                ]
            ),
            (
                "one.zone.addserver".into(),
                vec![
                    Value::Int(0),
                    s(r#"SERVER=[NAME="q\"x", ENDPOINT="http://h:1/RPC2"]"#)
                ]
            ),
            (
                "one.zone.delserver".into(),
                vec![Value::Int(0), Value::Int(1)]
            ),
            (
                "one.zone.resetserver".into(),
                vec![Value::Int(0), Value::Int(2)]
            ),
        ]
    );
}

#[test]
fn onedb_help_and_a_missing_backup_file() {
    let o = run(env!("CARGO_BIN_EXE_onedb"), &["-h"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(
        help.contains("backup") && help.contains("restore") && help.contains("--sqlite"),
        "{help}"
    );
    let o = run(
        env!("CARGO_BIN_EXE_onedb"),
        &["restore", "-f", "/tmp/x.sql"],
    );
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "File /tmp/x.sql doesn't exist, backup restoration aborted.\n"
    );
}

/// Servers that accept connections but never answer are asked concurrently,
/// each with a 2 s timeout, and shown as `error`.
#[test]
fn hanging_servers_time_out_concurrently() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = format!("http://{}/RPC2", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().take(3).flatten().collect();
        std::thread::sleep(std::time::Duration::from_secs(10));
        drop(held);
    });
    let fake = FakeOned::start(move |_, _| {
        one::success(Value::String(format!(
            "<ZONE><ID>0</ID><NAME>Z</NAME><STATE>0</STATE><TEMPLATE/><SERVER_POOL>\
             <SERVER><ENDPOINT>{hang}</ENDPOINT><ID>0</ID><NAME>a</NAME></SERVER>\
             <SERVER><ENDPOINT>{hang}</ENDPOINT><ID>1</ID><NAME>b</NAME></SERVER>\
             <SERVER><ENDPOINT>{hang}</ENDPOINT><ID>2</ID><NAME>c</NAME></SERVER></SERVER_POOL></ZONE>"
        )))
    });
    let start = std::time::Instant::now();
    let (code, out, _) = onezone(&[
        "show",
        "0",
        "--endpoint",
        &fake.url,
        "--user",
        "a",
        "--password",
        "b",
    ]);
    let elapsed = start.elapsed();
    assert_eq!(code, 0);
    assert_eq!(
        out.matches(" error      -          -          -          -\n")
            .count(),
        3,
        "{out}"
    );
    assert!(
        elapsed < std::time::Duration::from_millis(3500),
        "{elapsed:?}"
    );
}
