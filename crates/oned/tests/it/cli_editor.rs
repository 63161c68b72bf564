//! `update` without a file, as OpenNebula's `OneHelper.update_template_helper`: what is piped
//! in, else `$EDITOR` on the object's current template (on nothing with `--append`); a failing
//! editor changes nothing. Run as the real binaries, since the editor and stdin are the
//! process's own.

use std::io::Write;
use std::process::{Command, Stdio};

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{Server, Zone, DEADLINE};

/// `bin args...` against `server` with `EDITOR` set to `editor` and `stdin` piped in: exit code,
/// stdout, stderr.
fn run(
    server: &Server,
    bin: &str,
    args: &[&str],
    editor: &str,
    stdin: &str,
) -> (i32, String, String) {
    let mut child = Command::new(testkit::cli_binary(bin))
        .args(args)
        .args(["--endpoint", &server.endpoint(), "--user", "oneadmin"])
        .args(["--password", &server.password()])
        .env("EDITOR", editor)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        o.status.code().unwrap_or(-1),
        text(o.stdout),
        text(o.stderr),
    )
}

fn template(server: &Server, method: &str, id: i32, root: &str) -> String {
    let xml = server
        .client()
        .call_xml(method, vec![Value::Int(id)])
        .unwrap();
    let body = Element::parse(&xml).unwrap();
    let t = body.child(root).unwrap();
    t.children
        .iter()
        .map(|a| format!("{}={}", a.name, a.text))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn update_without_a_file_takes_the_pipe_or_the_editor_on_the_current_template() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let c = server.client();
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    // An editor that keeps what it was given and adds a line (the template, as OpenNebula's
    // `template_like_str`, has no newline at its end).
    let editor = dir.path().join("edit.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\ncp \"$1\" {}\nprintf '\\nEDITED = \"yes\"\\n' >> \"$1\"\n",
            seen.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let editor = editor.to_str().unwrap();

    let vn = c
        .call(
            "one.vn.allocate",
            vec![Value::String(
                "NAME = \"edited\"\nVN_MAD = \"bridge\"\nCOLOR = \"red\"".into(),
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let id = vn.to_string();

    // The editor on the current template; what it saves replaces it.
    let (code, _, err) = run(server, "onevnet", &["update", &id], editor, "");
    assert_eq!(code, 0, "{err}");
    let given = std::fs::read_to_string(&seen).unwrap();
    assert!(given.contains("COLOR=\"red\""), "{given}");
    let t = template(server, "one.vn.info", vn, "TEMPLATE");
    assert!(t.contains("COLOR=red") && t.contains("EDITED=yes"), "{t}");

    // --append: the editor starts empty, and what it saves is merged.
    std::fs::remove_file(&seen).unwrap();
    let (code, _, err) = run(server, "onevnet", &["update", &id, "--append"], editor, "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "");

    // What is piped in is the template; the editor is not run.
    let (code, _, err) = run(
        server,
        "onevnet",
        &["update", &id, "--append"],
        "false",
        "PIPED = \"1\"\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(template(server, "one.vn.info", vn, "TEMPLATE").contains("PIPED=1"));

    // An editor that fails changes nothing.
    let before = template(server, "one.vn.info", vn, "TEMPLATE");
    let (code, _, err) = run(server, "onevnet", &["update", &id], "false", "");
    assert_eq!((code, err.as_str()), (255, "Editor not defined\n"));
    assert_eq!(template(server, "one.vn.info", vn, "TEMPLATE"), before);

    // onevnet updatear: the editor on the range, without its leases.
    let ranged = c
        .call(
            "one.vn.allocate",
            vec![Value::String(
                "NAME = \"ranged\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"ETHER\", SIZE = \"4\" ]"
                    .into(),
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    // READY once the dummy network driver has run.
    zone.wait_until(DEADLINE, "the network to be READY", || {
        let xml = c.call_xml("one.vn.info", vec![Value::Int(ranged)]).unwrap();
        Element::parse(&xml).unwrap().int_of("STATE") == Ok(wire::VnetState::Ready.as_i64())
    });
    let (code, _, err) = run(
        server,
        "onevnet",
        &["updatear", &ranged.to_string(), "0"],
        editor,
        "",
    );
    assert_eq!(code, 0, "{err}");
    let given = std::fs::read_to_string(&seen).unwrap();
    assert!(
        given.contains("SIZE=\"4\"") && !given.contains("LEASES"),
        "{given}"
    );
    let xml = c.call_xml("one.vn.info", vec![Value::Int(ranged)]).unwrap();
    let body = Element::parse(&xml).unwrap();
    let ar = body.child("AR_POOL").and_then(|p| p.child("AR")).unwrap();
    assert_eq!(ar.text_of("EDITED").ok(), Some("yes"), "{xml}");
    assert_eq!(ar.text_of("SIZE").ok(), Some("4"), "{xml}");

    // onevm edits the VM's USER_TEMPLATE; onetemplate the template's TEMPLATE.
    let vm = c
        .call(
            "one.vm.allocate",
            vec![
                Value::String("NAME = \"v\"\nCPU = 0.1\nMEMORY = 16\nLABEL = \"mine\"".into()),
                Value::Bool(true),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let (code, _, err) = run(server, "onevm", &["update", &vm.to_string()], editor, "");
    assert_eq!(code, 0, "{err}");
    let given = std::fs::read_to_string(&seen).unwrap();
    assert!(
        given.contains("LABEL=\"mine\"") && !given.contains("MEMORY"),
        "{given}"
    );
    let t = template(server, "one.vm.info", vm, "USER_TEMPLATE");
    assert!(t.contains("LABEL=mine") && t.contains("EDITED=yes"), "{t}");
}
