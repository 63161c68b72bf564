//! Issue 10, "well-formed always": whatever a client sends, and whatever the database already
//! holds, every answer is XML that pyone can read.
//!
//! Calls are sent as Python's `xmlrpc.client` writes them (it escapes only `&`, `<` and `>`, so
//! control characters go out raw), and every answer and every XML body in it is read the way
//! pyone's expat does: only XML 1.0 characters, balanced tags, names that are namespace-safe.

use std::time::Duration;

use quick_xml::events::Event;
use xmlrpc::{Response, Value};

use crate::zone::{Zone, ACTION_CODE, INTERNAL};

/// Python's `xmlrpc.client.escape`: `&`, `<` and `>` only.
fn py_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn py_value(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("<value><int>{i}</int></value>\n"),
        Value::Bool(b) => format!("<value><boolean>{}</boolean></value>\n", u8::from(*b)),
        Value::String(s) => format!("<value><string>{}</string></value>\n", py_escape(s)),
        Value::Array(items) => format!(
            "<value><array><data>\n{}</data></array></value>\n",
            items.iter().map(py_value).collect::<String>()
        ),
        other => panic!("not used by these tests: {other:?}"),
    }
}

/// A call as pyone sends it.
fn py_call(method: &str, session: &str, params: &[Value]) -> String {
    let mut body = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n"
    );
    for p in std::iter::once(&Value::String(session.to_string())).chain(params) {
        body.push_str("<param>\n");
        body.push_str(&py_value(p));
        body.push_str("</param>\n");
    }
    body.push_str("</params>\n</methodCall>\n");
    body
}

/// Whether `c` is a name character a namespace-aware XML 1.0 parser accepts. Only ASCII and
/// letters are needed here; `:` is refused since no prefix is ever bound.
fn name_char(c: char, first: bool) -> bool {
    c.is_alphabetic() || c == '_' || (!first && (c.is_ascii_digit() || matches!(c, '-' | '.')))
}

fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Reads `doc` as expat with namespaces (pyone's parsers) would, or says why it cannot.
fn strict_parse(doc: &str) -> Result<(), String> {
    if let Some(c) = doc.chars().find(|&c| !xml_char(c)) {
        return Err(format!("character {c:?} is not allowed in XML 1.0"));
    }
    let mut reader = quick_xml::Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = std::str::from_utf8(e.name().as_ref())
                    .map_err(|e| e.to_string())?
                    .to_string();
                let mut chars = name.chars();
                let ok = chars.next().is_some_and(|c| name_char(c, true))
                    && chars.all(|c| name_char(c, false));
                if !ok {
                    return Err(format!("element name <{name}> is not a valid NCName"));
                }
                if depth == 0 {
                    roots += 1;
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => depth -= 1,
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| e.to_string())?;
                if let Some(c) = text.chars().find(|&c| !xml_char(c)) {
                    return Err(format!("reference to character {c:?}"));
                }
                if depth == 0 && !text.trim().is_empty() {
                    return Err(format!("text {text:?} outside the root"));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || roots != 1 {
        return Err(format!("{roots} roots, {depth} elements left open"));
    }
    Ok(())
}

/// What a call answered, once both its XML-RPC envelope and the XML body of a successful info
/// call have been read strictly (panics otherwise, naming the call).
enum Answer {
    Ok(Value),
    Failed { code: i32, message: String },
}

struct Raw {
    endpoint: String,
    session: String,
}

impl Raw {
    fn call(&self, method: &str, params: &[Value]) -> Answer {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let body = agent
            .post(&self.endpoint)
            .set("Content-Type", "text/xml")
            .send_string(&py_call(method, &self.session, params))
            .unwrap()
            .into_string()
            .unwrap();
        if let Err(e) = strict_parse(&body) {
            panic!("{method}: the XML-RPC answer is not well-formed ({e}): {body:?}");
        }
        let Response::Success(Value::Array(items)) = xmlrpc::parse_response(body.as_bytes())
            .unwrap_or_else(|e| panic!("{method}: {e}: {body:?}"))
        else {
            panic!("{method}: not an OpenNebula envelope: {body:?}");
        };
        match items.as_slice() {
            [Value::Bool(true), value, ..] => {
                if let Value::String(doc) = value {
                    if doc.starts_with('<') {
                        if let Err(e) = strict_parse(doc) {
                            panic!("{method}: the body is not well-formed ({e}): {doc:?}");
                        }
                    }
                }
                Answer::Ok(value.clone())
            }
            [Value::Bool(false), Value::String(message), Value::Int(code), ..] => Answer::Failed {
                code: *code,
                message: message.clone(),
            },
            _ => panic!("{method}: not an OpenNebula envelope: {body:?}"),
        }
    }

    fn id(&self, method: &str, params: &[Value]) -> i32 {
        match self.call(method, params) {
            Answer::Ok(Value::Int(id)) => id,
            Answer::Ok(v) => panic!("{method}: {v:?}"),
            Answer::Failed { code, message } => panic!("{method} failed: {code:#x} {message}"),
        }
    }

    fn xml(&self, method: &str, params: &[Value]) -> String {
        match self.call(method, params) {
            Answer::Ok(Value::String(doc)) => doc,
            Answer::Ok(v) => panic!("{method}: {v:?}"),
            Answer::Failed { code, message } => panic!("{method} failed: {code:#x} {message}"),
        }
    }

    /// Asserts the call failed with `code` and a message containing `text`; nothing stored.
    fn refused(&self, method: &str, params: &[Value], code: i32, text: &str) {
        match self.call(method, params) {
            Answer::Failed { code: c, message } => {
                assert_eq!(c, code, "{method}{params:?}: {message}");
                assert!(
                    message.contains(text),
                    "{method}{params:?}: {message:?} does not say {text:?}"
                );
            }
            Answer::Ok(v) => panic!("{method}{params:?} was accepted: {v:?}"),
        }
    }

    /// Every pool, read as pyone reads it; each must be well-formed (checked by `call`).
    fn read_every_pool(&self) -> String {
        let filter = [Value::Int(-2), Value::Int(-1), Value::Int(-1)];
        let mut all = String::new();
        for (method, params) in [
            ("one.userpool.info", &[][..]),
            ("one.grouppool.info", &[][..]),
            ("one.hostpool.info", &[][..]),
            ("one.datastorepool.info", &[][..]),
            ("one.acl.info", &[][..]),
            ("one.zonepool.info", &[][..]),
            ("one.templatepool.info", &filter[..]),
            ("one.imagepool.info", &filter[..]),
            ("one.vnpool.info", &filter[..]),
            (
                "one.vmpool.info",
                &[
                    Value::Int(-2),
                    Value::Int(-1),
                    Value::Int(-1),
                    Value::Int(-2),
                ][..],
            ),
        ] {
            all.push_str(&self.xml(method, params));
        }
        all
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// Names OpenNebula refuses (`PoolObjectSQL::name_is_valid`), and control characters, which
/// OneHA refuses as well: the name, what the message says when it is a parameter, and what it
/// says when it is the NAME of a template (the template's own check sees a control character
/// first).
const BAD_NAMES: &[(&str, &str, &str)] = &[
    (
        "ctl\u{1}name",
        "Invalid NAME, char '\\x01' is not allowed",
        "Parse error: invalid character \\x01 in the value of \"NAME\"",
    ),
    (
        "esc\u{1b}[31mname",
        "Invalid NAME, char '\\x1B' is not allowed",
        "Parse error: invalid character \\x1B in the value of \"NAME\"",
    ),
    (
        "nul\u{0}name",
        "Invalid NAME, char '\\x00' is not allowed",
        "Parse error: invalid character \\x00 in the value of \"NAME\"",
    ),
    (
        "amp&name",
        "Invalid NAME, char '&' is not allowed",
        "Invalid NAME, char '&' is not allowed",
    ),
    (
        "lt<name",
        "Invalid NAME, char '<' is not allowed",
        "Invalid NAME, char '<' is not allowed",
    ),
    (
        "quote\"name",
        "Invalid NAME, char '\"' is not allowed",
        "Invalid NAME, char '\"' is not allowed",
    ),
    (
        "apos'name",
        "Invalid NAME, char ''' is not allowed",
        "Invalid NAME, char ''' is not allowed",
    ),
    (
        "end]]>name",
        "Invalid NAME, char '>' is not allowed",
        "Invalid NAME, char '>' is not allowed",
    ),
];

/// Template text with `NAME = name` (quoted as the template syntax wants) and `rest`.
fn with_name(name: &str, rest: &str) -> String {
    format!(
        "NAME = \"{}\"\n{rest}",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

#[test]
fn issue_10_bad_names_and_templates_are_refused_and_every_pool_stays_well_formed() {
    let zone = Zone::solo();
    let raw = Raw {
        endpoint: zone.servers[0].endpoint(),
        session: zone.servers[0].session(),
    };
    const VM: &str = "CPU = 1\nMEMORY = 64";
    const IMAGE: &str = "TYPE = DATABLOCK\nSIZE = 10";
    const NET: &str = "VN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = \"ETHER\", SIZE = \"2\" ]";

    eprintln!("--- objects to rename, with awkward but valid names and values");
    let fancy = "fancy 😀 x]]y";
    let uid = raw.id(
        "one.user.allocate",
        &[s("u😀"), s("pw"), s(""), Value::Array(vec![])],
    );
    let hid = raw.id(
        "one.host.allocate",
        &[s("node-1"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let odd_values = "A = \"]]> <b> &amp; \\\"q\\\" 'a' 😀\"\nV = [ K = \"]]>\", L = \"<&>\" ]";
    let tid = raw.id(
        "one.template.allocate",
        &[s(&with_name(fancy, &format!("{VM}\n{odd_values}")))],
    );
    let vid = raw.id(
        "one.vm.allocate",
        &[s(&with_name(fancy, VM)), Value::Bool(true)],
    );
    let iid = raw.id(
        "one.image.allocate",
        &[s(&with_name(fancy, IMAGE)), Value::Int(1)],
    );
    let nid = raw.id(
        "one.vn.allocate",
        &[s(&with_name(fancy, NET)), Value::Int(-1)],
    );
    let shown = raw.xml("one.template.info", &[Value::Int(tid)]);
    let body = shown
        .split_once("<TEMPLATE>")
        .map(|(_, t)| format!("<TEMPLATE>{t}"))
        .unwrap();
    let body = body[..body.find("</TEMPLATE>").unwrap() + "</TEMPLATE>".len()].to_string();
    let t = template::Template::parse(&body).unwrap();
    assert_eq!(t.single("A"), Some("]]> <b> &amp; \"q\" 'a' 😀"), "{body}");
    assert_eq!(t.get("V").unwrap().vector_get("K"), Some("]]>"));
    assert_eq!(t.get("V").unwrap().vector_get("L"), Some("<&>"));
    assert!(
        shown.contains(&format!("<NAME>{}</NAME>", "fancy 😀 x]]y")),
        "{shown}"
    );

    eprintln!("--- names refused at allocate and rename");
    for &(bad, says, in_template) in BAD_NAMES {
        let user_says = format!("{says}.");
        let nothing = Value::Array(vec![]);
        raw.refused(
            "one.user.allocate",
            &[s(bad), s("pw"), s(""), nothing],
            INTERNAL,
            &user_says,
        );
        raw.refused("one.group.allocate", &[s(bad)], INTERNAL, says);
        raw.refused(
            "one.host.allocate",
            &[s(bad), s("dummy"), s("dummy"), Value::Int(-1)],
            INTERNAL,
            "Invalid HOSTNAME",
        );
        raw.refused(
            "one.template.allocate",
            &[s(&with_name(bad, VM))],
            INTERNAL,
            in_template,
        );
        raw.refused(
            "one.vm.allocate",
            &[s(&with_name(bad, VM)), Value::Bool(true)],
            INTERNAL,
            in_template,
        );
        // A template that parses with a bad name: `ImagePool::allocate` refuses it, ALLOCATE.
        let image_code = if in_template == says {
            0x4000
        } else {
            INTERNAL
        };
        raw.refused(
            "one.image.allocate",
            &[s(&with_name(bad, IMAGE)), Value::Int(1)],
            image_code,
            in_template,
        );
        raw.refused(
            "one.vn.allocate",
            &[s(&with_name(bad, NET)), Value::Int(-1)],
            INTERNAL,
            in_template,
        );
        // `RequestManagerClone` answers the pool's refusal as ALLOCATE.
        raw.refused(
            "one.template.clone",
            &[Value::Int(tid), s(bad)],
            0x4000,
            &format!("Error allocating a new virtual machine template. {says}"),
        );
        // OpenNebula's instantiate reports a bad name as ALLOCATE (0x4000) for the template.
        raw.refused(
            "one.template.instantiate",
            &[Value::Int(tid), s(bad), Value::Bool(true), s("")],
            0x4000,
            &format!("Error allocating a new virtual machine template. {says}"),
        );
        for (method, id) in [
            ("one.host.rename", hid),
            ("one.template.rename", tid),
            ("one.vm.rename", vid),
            ("one.image.rename", iid),
            ("one.vn.rename", nid),
        ] {
            raw.refused(method, &[Value::Int(id), s(bad)], ACTION_CODE, says);
        }
    }
    let pools = raw.read_every_pool();
    for (bad, _, _) in BAD_NAMES {
        assert!(!pools.contains(&xmlrpc_text(bad)), "{bad:?} was stored");
    }

    eprintln!(
        "--- templates refused: bad attribute names, bad characters, XML that cannot be kept"
    );
    for (text, says) in [
        ("1BAD = x", "Parse error: invalid attribute name \"1BAD\""),
        ("-X = 1", "Parse error: invalid attribute name \"-X\""),
        (".X = 1", "Parse error: invalid attribute name \".X\""),
        ("A:B = 1", "Parse error: invalid attribute name \"A:B\""),
        (
            "A\u{1}B = 1",
            "Parse error: invalid attribute name \"A\\x01B\"",
        ),
        (
            "V = [ 2K = 1 ]",
            "Parse error: invalid key in vector \"V\" \"2K\"",
        ),
        (
            "A = \"x\u{1}y\"",
            "Parse error: invalid character \\x01 in the value of \"A\"",
        ),
        (
            "A = x\u{1b}[0m",
            "Parse error: invalid character \\x1B in the value of \"A\"",
        ),
        (
            "<TEMPLATE><A:B>x</A:B></TEMPLATE>",
            "Parse error: XML Template malformed. invalid attribute name \"A:B\"",
        ),
        (
            "<TEMPLATE><V><x:y>1</x:y></V></TEMPLATE>",
            "Parse error: XML Template malformed. invalid key in vector \"V\" \"X:Y\"",
        ),
        (
            "<TEMPLATE><A>&#1;</A></TEMPLATE>",
            "Parse error: XML Template malformed. invalid character \\x01",
        ),
        (
            "<TEMPLATE><A>x</B></TEMPLATE>",
            "Parse error: XML Template malformed.",
        ),
    ] {
        let xml = text.starts_with('<');
        let full = if xml {
            text.replacen(
                "<TEMPLATE>",
                "<TEMPLATE><NAME>t-bad</NAME><CPU>1</CPU><MEMORY>64</MEMORY>",
                1,
            )
        } else {
            format!("NAME = t-bad\n{VM}\n{text}")
        };
        raw.refused("one.template.allocate", &[s(&full)], INTERNAL, says);
        raw.refused(
            "one.vm.allocate",
            &[s(&full), Value::Bool(true)],
            INTERNAL,
            says,
        );
        let update = format!("Cannot update template. {says}");
        for (method, id) in [
            ("one.template.update", tid),
            ("one.image.update", iid),
            ("one.vn.update", nid),
            ("one.host.update", hid),
            ("one.user.update", uid),
        ] {
            for merge in [0, 1] {
                raw.refused(
                    method,
                    &[Value::Int(id), s(text), Value::Int(merge)],
                    INTERNAL,
                    &update,
                );
            }
        }
        // A VM parses its update itself: ACTION, the parser's words bare
        // (`VirtualMachineUpdateTemplate`).
        for merge in [0, 1] {
            raw.refused(
                "one.vm.update",
                &[Value::Int(vid), s(text), Value::Int(merge)],
                ACTION_CODE,
                says,
            );
        }
        raw.refused(
            "one.template.instantiate",
            &[Value::Int(tid), s("vm-x"), Value::Bool(true), s(text)],
            INTERNAL,
            says,
        );
    }
    let pools = raw.read_every_pool();
    assert!(
        !pools.contains("t-bad") && !pools.contains("vm-x"),
        "{pools}"
    );

    eprintln!("--- an XML template that can be kept is kept faithfully");
    let xml = "<TEMPLATE><NAME>t-xml</NAME><CPU>1</CPU><MEMORY>64</MEMORY>\
               <Q><![CDATA[x]]]]><![CDATA[>y]]></Q><U>😀 &lt;&amp;&quot;</U>\
               <DISK><SIZE>1</SIZE><K>]]&gt;</K></DISK></TEMPLATE>";
    let xid = raw.id("one.template.allocate", &[s(xml)]);
    let shown = raw.xml("one.template.info", &[Value::Int(xid)]);
    let body = &shown[shown.find("<TEMPLATE>").unwrap()..];
    let body = &body[..body.find("</TEMPLATE>").unwrap() + "</TEMPLATE>".len()];
    let t = template::Template::parse(body).unwrap();
    assert_eq!(t.single("Q"), Some("x]]>y"));
    assert_eq!(t.single("U"), Some("😀 <&\""));
    assert_eq!(t.get("DISK").unwrap().vector_get("K"), Some("]]>"));
    raw.read_every_pool();
}

/// The text a string becomes inside an XML-RPC answer (for "was it stored" checks).
fn xmlrpc_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn issue_10_values_stored_before_the_checks_never_break_an_answer() {
    let mut zone = Zone::solo();
    let raw = Raw {
        endpoint: zone.servers[0].endpoint(),
        session: zone.servers[0].session(),
    };
    let uid = raw.id(
        "one.user.allocate",
        &[s("old-user"), s("pw"), s(""), Value::Array(vec![])],
    );
    let hid = raw.id(
        "one.host.allocate",
        &[s("old-host"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let tid = raw.id(
        "one.template.allocate",
        &[s("NAME = old-t\nCPU = 1\nMEMORY = 64")],
    );
    let vid = raw.id(
        "one.vm.allocate",
        &[s("NAME = old-vm\nCPU = 1\nMEMORY = 64"), Value::Bool(true)],
    );
    let iid = raw.id(
        "one.image.allocate",
        &[
            s("NAME = old-i\nTYPE = DATABLOCK\nSIZE = 10"),
            Value::Int(1),
        ],
    );
    let nid = raw.id(
        "one.vn.allocate",
        &[
            s("NAME = old-n\nVN_MAD = dummy\nBRIDGE = br0"),
            Value::Int(-1),
        ],
    );

    eprintln!("--- write what older versions let in straight into the database");
    zone.servers[0].stop();
    let db = zone.servers[0].location().join("var/one.db");
    let conn = sqlstore::rusqlite::Connection::open(&db).unwrap();
    let name = "n\u{1}\u{1b}[31m<&>\"']]>\u{FFFF}😀";
    let legacy = "1BAD=\"x\"\nA:B=\"y\"\n-K=\"z\"\nCTL=\"a\u{1}b\u{1b}c\u{0}\"\n\
                  V=[\n  .K=\"1\",\n  OK=\"]]>\u{b}\" ]\nTEMPLATE=\"t\"\nFOO_TEMPLATE=\"TEMPLATE>\"\n";
    for (table, column, id) in [
        ("user_pool", "template", uid),
        ("host_pool", "template", hid),
        ("template_pool", "template", tid),
        ("vm_pool", "user_template", vid),
        ("vm_pool", "template", vid),
        ("image_pool", "template", iid),
        ("vnet_pool", "template", nid),
    ] {
        let changed = conn
            .execute(
                &format!("UPDATE {table} SET name = ?1, {column} = ?2 WHERE oid = ?3"),
                sqlstore::rusqlite::params![format!("{name}{table}{column}"), legacy, id],
            )
            .unwrap();
        assert_eq!(changed, 1, "{table}");
    }
    drop(conn);
    zone.servers[0].start();

    eprintln!("--- every info and pool answer is still well-formed");
    // The dummy monitor rewrites a host's template: the host's answer is only checked to be
    // well-formed (by `raw.xml`), with its bad name.
    assert!(raw
        .xml("one.host.info", &[Value::Int(hid)])
        .contains("host_pooltemplate"));
    for (method, id) in [
        ("one.user.info", uid),
        ("one.template.info", tid),
        ("one.vm.info", vid),
        ("one.image.info", iid),
        ("one.vn.info", nid),
    ] {
        let doc = raw.xml(method, &[Value::Int(id)]);
        // Bad names are skipped, bad characters replaced, the rest kept.
        assert!(
            doc.contains("<CTL><![CDATA[a\u{FFFD}b\u{FFFD}c\u{FFFD}]]></CTL>"),
            "{method}: {doc}"
        );
        assert!(
            doc.contains("<FOO_TEMPLATE><![CDATA[TEMPLATE>]]></FOO_TEMPLATE>"),
            "{method}: {doc}"
        );
        assert!(
            !doc.contains("1BAD") && !doc.contains("A:B"),
            "{method}: {doc}"
        );
    }
    let pools = raw.read_every_pool();
    assert!(
        pools.contains("n\u{FFFD}\u{FFFD}[31m&lt;&amp;&gt;&quot;&apos;]]&gt;\u{FFFD}😀"),
        "{pools}"
    );

    eprintln!("--- such objects can still be renamed and updated");
    raw.id("one.vm.rename", &[Value::Int(vid), s("fixed")]);
    raw.id(
        "one.vm.update",
        &[Value::Int(vid), s("GOOD = 1"), Value::Int(1)],
    );
    let doc = raw.xml("one.vm.info", &[Value::Int(vid)]);
    assert!(
        doc.contains("<NAME>fixed</NAME>") && doc.contains("<GOOD><![CDATA[1]]></GOOD>"),
        "{doc}"
    );
}
