//! The properties the fuzz targets check, one function per target. Each takes the raw input and
//! panics when the property fails, so libFuzzer reports the input as a crash. The same properties
//! are checked by proptest tests inside the crates (see docs/fuzzing.md).

use std::path::Path;

#[path = "../../crates/template/src/wellformed.rs"]
pub mod wellformed;

/// What the writer makes of a string: a character XML 1.0 cannot carry becomes U+FFFD.
fn as_written_str(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t'
            | '\n'
            | '\r'
            | '\u{20}'..='\u{D7FF}'
            | '\u{E000}'..='\u{FFFD}'
            | '\u{10000}'.. => c,
            _ => '\u{FFFD}',
        })
        .collect()
}

/// What the writer makes of a value (see [`as_written_str`]).
fn as_written(v: &xmlrpc::Value) -> xmlrpc::Value {
    match v {
        xmlrpc::Value::String(s) => xmlrpc::Value::String(as_written_str(s)),
        xmlrpc::Value::DateTime(s) => xmlrpc::Value::DateTime(as_written_str(s)),
        xmlrpc::Value::Array(a) => xmlrpc::Value::Array(a.iter().map(as_written).collect()),
        xmlrpc::Value::Struct(m) => xmlrpc::Value::Struct(
            m.iter()
                .map(|(k, v)| (as_written_str(k), as_written(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The XML-RPC decoder: never panics on any body, and whatever it accepts survives the writer
/// and the parser again unchanged, but for characters XML cannot carry (the writer replaces them).
pub fn xmlrpc_decode(data: &[u8]) {
    if let Ok(call) = xmlrpc::parse_call(data) {
        let text = xmlrpc::write_call(&call);
        let again = xmlrpc::parse_call(text.as_bytes());
        // Debug, not PartialEq, so NaN equals NaN.
        let expected = xmlrpc::MethodCall {
            method: as_written_str(&call.method),
            params: call.params.iter().map(as_written).collect(),
        };
        assert_eq!(
            format!("{again:?}"),
            format!("{:?}", Ok::<_, ()>(&expected)),
            "call written as {text}"
        );
    }
    if let Ok(resp) = xmlrpc::parse_response(data) {
        let text = match &resp {
            xmlrpc::Response::Success(v) => xmlrpc::write_response(v),
            xmlrpc::Response::Fault { code, message } => xmlrpc::write_fault(*code, message),
        };
        let again = xmlrpc::parse_response(text.as_bytes());
        let expected = match &resp {
            xmlrpc::Response::Success(v) => xmlrpc::Response::Success(as_written(v)),
            xmlrpc::Response::Fault { code, message } => xmlrpc::Response::Fault {
                code: *code,
                message: as_written_str(message),
            },
        };
        assert_eq!(
            format!("{again:?}"),
            format!("{:?}", Ok::<_, ()>(&expected)),
            "response written as {text}"
        );
    }
}

/// Names and values, without the source line numbers.
fn contents(t: &template::Template) -> Vec<(&str, &template::Value)> {
    t.attrs
        .iter()
        .map(|a| (a.name.as_str(), &a.value))
        .collect()
}

/// The template parser (text and XML forms): never panics, and a text template it accepts prints
/// (`to_text`) to text that parses back to the same attributes.
pub fn template_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = template::Template::parse(text);
    if let Ok(t) = template::Template::parse_text(text) {
        let printed = t.to_text();
        // Read back as text: a loosely read name such as `<` would make `parse` take it for XML.
        match template::Template::parse_text(&printed) {
            Ok(again) => assert_eq!(contents(&again), contents(&t), "printed as {printed:?}"),
            Err(e) => panic!("to_text printed {printed:?}, which does not parse: {e}"),
        }
    }
}

/// The `oned.conf` parser: never panics.
pub fn oned_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = oned::config::Config::parse(text, Path::new("oned.conf"));
}

/// A template built from arbitrary names and values, as API callers can make through
/// `one.*.update` or XML templates.
pub type TemplateInput = Vec<(String, Result<String, Vec<(String, String)>>)>;

/// Builds the template of a [`TemplateInput`].
pub fn build_template(input: &TemplateInput) -> template::Template {
    let mut t = template::Template::default();
    for (name, value) in input {
        let value = match value {
            Ok(s) => template::Value::Single(s.clone()),
            Err(pairs) => template::Value::Vector(pairs.clone()),
        };
        t.push(name, value);
    }
    t
}

/// The template-to-XML writer: never panics, and, when `strict`, its output is well-formed XML
/// (see [`wellformed::check`]).
pub fn template_xml(input: &TemplateInput, strict: bool) {
    let t = build_template(input);
    let xml = t.to_xml();
    if strict {
        if let Err(e) = wellformed::check(&xml) {
            panic!("to_xml wrote ill-formed XML ({e}): {xml:?}");
        }
    }
    // Whatever the writer printed, the XML template reader must not panic on it.
    let _ = template::Template::parse(&xml);
}

/// Which peer call a fuzz input is: its first byte picks it, the rest is the body.
pub fn peer_call(data: &[u8]) -> (&'static str, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (
            ["append", "vote", "snapshot", "other"][usize::from(*b % 4)],
            rest,
        ),
        None => ("append", data),
    }
}

/// The peer message decoder: never panics nor allocates without bound, whatever the body.
pub fn peer_decode(data: &[u8]) {
    let (call, body) = peer_call(data);
    let _ = consensus::network::decode_request(call, body);
}
