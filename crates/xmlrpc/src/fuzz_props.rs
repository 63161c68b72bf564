//! Property tests of the decoder, the same properties as the fuzz target `xmlrpc_decode`
//! (`fuzz/`, docs/fuzzing.md), and the replay of the inputs it found crashing.

use proptest::prelude::*;

use crate::{parse_call, parse_response, write_call, write_fault, write_response};
use crate::{MethodCall, Response, Value};

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
fn as_written(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(as_written_str(s)),
        Value::DateTime(s) => Value::DateTime(as_written_str(s)),
        Value::Array(a) => Value::Array(a.iter().map(as_written).collect()),
        Value::Struct(m) => Value::Struct(
            m.iter()
                .map(|(k, v)| (as_written_str(k), as_written(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Never panics; whatever parses survives the writer and the parser again, but for characters
/// XML cannot carry, which the writer replaces (compared through `Debug`, so NaN equals NaN).
fn decode_holds(data: &[u8]) {
    if let Ok(call) = parse_call(data) {
        let text = write_call(&call);
        let again = parse_call(text.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(
            format!("{again:?}"),
            format!(
                "{:?}",
                Ok::<_, String>(MethodCall {
                    method: as_written_str(&call.method),
                    params: call.params.iter().map(as_written).collect(),
                })
            ),
            "{text}"
        );
    }
    if let Ok(resp) = parse_response(data) {
        let text = match &resp {
            Response::Success(v) => write_response(v),
            Response::Fault { code, message } => write_fault(*code, message),
        };
        let again = parse_response(text.as_bytes()).map_err(|e| e.to_string());
        let expected = match &resp {
            Response::Success(v) => Response::Success(as_written(v)),
            Response::Fault { code, message } => Response::Fault {
                code: *code,
                message: as_written_str(message),
            },
        };
        assert_eq!(
            format!("{again:?}"),
            format!("{:?}", Ok::<_, String>(&expected)),
            "{text}"
        );
    }
}

/// Values the parser can produce (a dateTime is trimmed, so none starts or ends with spaces).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::I8),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(Value::Double),
        any::<String>().prop_map(Value::String),
        "[0-9]{8}T[0-9:]{8}".prop_map(Value::DateTime),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Base64),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(Value::Struct),
        ]
    })
}

/// Bits of XML-RPC documents, so random concatenations often get deep into the parser.
fn xmlrpc_token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "<?xml version=\"1.0\"?>",
        "<methodCall>",
        "</methodCall>",
        "<methodName>",
        "</methodName>",
        "<methodResponse>",
        "</methodResponse>",
        "<params>",
        "</params>",
        "<param>",
        "</param>",
        "<value>",
        "</value>",
        "<value/>",
        "<fault>",
        "</fault>",
        "<struct>",
        "</struct>",
        "<member>",
        "</member>",
        "<name>",
        "</name>",
        "faultCode",
        "faultString",
        "<array>",
        "</array>",
        "<data>",
        "</data>",
        "<int>",
        "</int>",
        "<i8>",
        "</i8>",
        "<boolean>",
        "</boolean>",
        "<double>",
        "</double>",
        "<string>",
        "</string>",
        "<base64>",
        "</base64>",
        "<dateTime.iso8601>",
        "</dateTime.iso8601>",
        "<nil/>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&#13;",
        "&#x0;",
        "one.vm.info",
        "-1",
        "1",
        "2147483648",
        "1e400",
        "NaN",
        "QUJD",
        "=",
        " ",
        "\r\n",
        "\u{0}",
        "\u{FFFD}",
    ])
}

proptest! {
    // Failures are kept as files in fuzz/regressions/ by hand, not in proptest-regressions/.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn written_calls_parse_back_unchanged(
        method in "[a-z][a-z.]{0,20}",
        params in proptest::collection::vec(value(), 0..4),
    ) {
        let call = MethodCall { method, params };
        let text = write_call(&call);
        let again = parse_call(text.as_bytes()).map_err(|e| e.to_string());
        let expected = MethodCall {
            method: call.method.clone(),
            params: call.params.iter().map(as_written).collect(),
        };
        prop_assert_eq!(format!("{again:?}"), format!("{:?}", Ok::<_, String>(&expected)));
    }

    #[test]
    fn written_responses_parse_back_unchanged(v in value(), code in any::<i32>(), msg in any::<String>()) {
        let again = parse_response(write_response(&v).as_bytes()).map_err(|e| e.to_string());
        prop_assert_eq!(format!("{again:?}"), format!("{:?}", Ok::<_, String>(Response::Success(as_written(&v)))));
        let fault = parse_response(write_fault(code, &msg).as_bytes()).map_err(|e| e.to_string());
        prop_assert_eq!(fault.ok(), Some(Response::Fault { code, message: as_written_str(&msg) }));
    }

    #[test]
    fn decoder_holds_on_token_soup(tokens in proptest::collection::vec(xmlrpc_token(), 0..60)) {
        decode_holds(tokens.concat().as_bytes());
    }

    #[test]
    fn decoder_holds_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_holds(&data);
    }
}

/// Every input kept in `fuzz/regressions/<target>/`, as bytes.
fn regression_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    inputs.sort();
    inputs
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn fuzz_regressions_xmlrpc_decode() {
    for (name, data) in regression_inputs("xmlrpc_decode") {
        println!("replaying {name}");
        decode_holds(&data);
    }
}
