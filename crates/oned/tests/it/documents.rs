//! Generic documents (`one.document.*`), where OneFlow keeps its services: their names and
//! types as OpenNebula's `Document`, the pool filtered by type, clones of the same type, on
//! every server of a zone.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL, NO_EXISTS};

const ALLOCATE: i32 = 0x4000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn pool(c: &cli::Client, kind: i32) -> String {
    c.call_xml(
        "one.documentpool.info",
        vec![
            Value::Int(-2),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(kind),
        ],
    )
    .unwrap()
}

#[test]
fn documents_keep_their_type_and_name_as_opennebula_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    // Written through a follower, forwarded to the leader.
    let c = zone.servers[follower].client();
    let id = |v: Value| v.as_i64().unwrap() as i32;

    let service = id(c
        .call(
            "one.document.allocate",
            vec![
                s("NAME = \"web\"\nBODY = \"{\\\"roles\\\":[]}\""),
                Value::Int(100),
            ],
        )
        .unwrap());
    // Without a NAME, OpenNebula calls it after its id.
    let unnamed = id(c
        .call(
            "one.document.allocate",
            vec![s("BODY = \"x\""), Value::Int(101)],
        )
        .unwrap());
    // Names are not unique among documents.
    id(c.call(
        "one.document.allocate",
        vec![s("NAME = web"), Value::Int(100)],
    )
    .unwrap());

    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has the documents"), || {
            c.call_xml("one.document.info", vec![Value::Int(unnamed)])
                .is_ok()
        });
        let body = c
            .call_xml("one.document.info", vec![Value::Int(service)])
            .unwrap();
        assert!(
            body.contains("<NAME>web</NAME><TYPE>100</TYPE><PERMISSIONS>"),
            "{body}"
        );
        // NAME is the document's, not its template's.
        assert!(!body.contains("<TEMPLATE><NAME>"), "{body}");
        assert!(
            body.contains("<BODY><![CDATA[{\"roles\":[]}]]></BODY>"),
            "{body}"
        );
        let body = c
            .call_xml("one.document.info", vec![Value::Int(unnamed)])
            .unwrap();
        assert!(
            body.contains(&format!("<NAME>document-{unnamed}</NAME><TYPE>101</TYPE>")),
            "{body}"
        );
    }

    // From here on the leader's answers, which its own writes are in.
    let c = zone.servers[leader].client();
    // The pool lists one type at a time.
    let services = pool(&c, 100);
    assert_eq!(services.matches("<DOCUMENT>").count(), 2, "{services}");
    assert!(
        !services.contains(&format!("<ID>{unnamed}</ID>")),
        "{services}"
    );
    assert_eq!(pool(&c, 7).matches("<DOCUMENT>").count(), 0);

    // A clone keeps the type and the template, under the new name.
    let copy = id(c
        .call(
            "one.document.clone",
            vec![Value::Int(service), s("web-copy")],
        )
        .unwrap());
    let body = c
        .call_xml("one.document.info", vec![Value::Int(copy)])
        .unwrap();
    assert!(
        body.contains("<NAME>web-copy</NAME><TYPE>100</TYPE>"),
        "{body}"
    );
    assert!(body.contains("<BODY>"), "{body}");

    // Document::insert's own limit, answered as each call reports it.
    let long = "n".repeat(129);
    let (code, msg) = one_error(c.call(
        "one.document.allocate",
        vec![s(&format!("NAME = {long}")), Value::Int(100)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.document.allocate] NAME is too long; max length is 128 chars."
        )
    );
    let (code, msg) = one_error(c.call("one.document.clone", vec![Value::Int(service), s(&long)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ALLOCATE,
            "[one.document.clone] Error allocating a new document. NAME is too long; max length is 128 chars."
        )
    );
    // USE on the source and CREATE in one request: both refusals named.
    let g = c
        .call("one.group.allocate", vec![s("bare")])
        .unwrap()
        .as_i64()
        .unwrap();
    let u = c
        .call(
            "one.user.allocate",
            vec![
                s("nobody"),
                s("pw"),
                s(""),
                Value::Array(vec![Value::Int(g as i32)]),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let nobody = zone.servers[0].client_as("nobody", "pw");
    assert_eq!(
        one_error(nobody.call("one.document.clone", vec![Value::Int(service), s("mine")])),
        (
            crate::zone::AUTHORIZATION,
            format!(
                "[one.document.clone] User [{u}] : Not authorized to perform USE DOCUMENT \
                 [{service}]; Not authorized to perform CREATE DOCUMENT."
            )
        )
    );

    // update replaces the template; delete removes the document.
    c.call(
        "one.document.update",
        vec![Value::Int(service), s("BODY = \"v2\""), Value::Int(0)],
    )
    .unwrap();
    let body = c
        .call_xml("one.document.info", vec![Value::Int(service)])
        .unwrap();
    assert!(body.contains("<BODY><![CDATA[v2]]></BODY>"), "{body}");
    c.call("one.document.delete", vec![Value::Int(copy)])
        .unwrap();
    let (code, msg) = one_error(c.call("one.document.info", vec![Value::Int(copy)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            NO_EXISTS,
            format!("[one.document.info] Error getting document [{copy}].").as_str()
        )
    );
    let (code, msg) = one_error(c.call("one.document.clone", vec![Value::Int(copy), s("again")]));
    assert_eq!(code, NO_EXISTS, "{msg}");
}
