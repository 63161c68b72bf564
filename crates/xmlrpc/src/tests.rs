use super::*;

const PYONE: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>one.vm.allocate</methodName>\n<params>\n<param>\n<value><string>oneadmin:secret</string></value>\n</param>\n<param>\n<value><string>NAME=\"x\"\nMEMORY=64</string></value>\n</param>\n<param>\n<value><boolean>0</boolean></value>\n</param>\n</params>\n</methodCall>\n";

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn one_param(xml_value: &str) -> Result<Value, Error> {
    let body = format!("<methodCall><methodName>m</methodName><params><param>{xml_value}</param></params></methodCall>");
    parse_call(body.as_bytes()).map(|mut c| c.params.remove(0))
}

#[test]
fn golden_pyone_request() {
    let call = parse_call(PYONE.as_bytes()).unwrap();
    assert_eq!(call.method, "one.vm.allocate");
    assert_eq!(
        call.params,
        vec![
            s("oneadmin:secret"),
            s("NAME=\"x\"\nMEMORY=64"),
            Value::Bool(false)
        ]
    );
    let p = Params(&call.params);
    assert_eq!(p.string(1).unwrap(), "NAME=\"x\"\nMEMORY=64");
    assert_eq!(p.bool(2), Ok(false));
    assert_eq!(parse_call(write_call(&call).as_bytes()).unwrap(), call);
}

#[test]
fn client_dialects() {
    assert_eq!(
        one_param("<value><i4> 7 </i4></value>").unwrap(),
        Value::Int(7)
    );
    assert_eq!(
        one_param("<value><int>\n-3\n</int></value>").unwrap(),
        Value::Int(-3)
    );
    assert_eq!(
        one_param("<value><i8>9999999999</i8></value>").unwrap(),
        Value::I8(9_999_999_999)
    );
    assert_eq!(
        one_param("<value>bare text</value>").unwrap(),
        s("bare text")
    );
    assert_eq!(one_param("<value/>").unwrap(), s(""));
    assert_eq!(one_param("<value></value>").unwrap(), s(""));
    assert_eq!(one_param("<value><string/></value>").unwrap(), s(""));
    assert_eq!(
        one_param("<value><string></string></value>").unwrap(),
        s("")
    );
    assert_eq!(one_param("<value><nil/></value>").unwrap(), Value::Nil);
    assert_eq!(
        one_param("<value><double>1.5</double></value>").unwrap(),
        Value::Double(1.5)
    );
    assert_eq!(
        one_param("<value><boolean>1</boolean></value>").unwrap(),
        Value::Bool(true)
    );
    assert_eq!(
        one_param("<value><dateTime.iso8601>20240101T10:00:00</dateTime.iso8601></value>").unwrap(),
        Value::DateTime("20240101T10:00:00".into())
    );
    assert_eq!(
        one_param("<value><base64>\naGVsbG8=\n</base64></value>").unwrap(),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        one_param("<value><array><data>\n</data></array></value>").unwrap(),
        Value::Array(vec![])
    );
    assert_eq!(
        one_param("<value>\n  <array>\n <data>\n<value><int>1</int></value>\n<value>x</value>\n</data>\n</array>\n</value>")
            .unwrap(),
        Value::Array(vec![Value::Int(1), s("x")])
    );
    assert_eq!(
        one_param("<value><struct>\n<member>\n<name>a</name>\n<value><int>1</int></value>\n</member>\n</struct></value>")
            .unwrap(),
        Value::Struct(vec![("a".into(), Value::Int(1))])
    );
    for body in [
        "<?xml version=\"1.0\"?><methodCall><methodName>one.system.version</methodName><params/></methodCall>",
        "<methodCall><methodName>one.system.version</methodName></methodCall>",
        "<methodCall><methodName>one.system.version</methodName><params></params></methodCall>",
    ] {
        let c = parse_call(body.as_bytes()).unwrap();
        assert_eq!((c.method.as_str(), c.params.len()), ("one.system.version", 0));
    }
}

#[test]
fn entities_cdata_and_whitespace() {
    assert_eq!(
        one_param("<value><string>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;&#10;&#x41;</string></value>").unwrap(),
        s("a & b <c> \"d\" 'e'\nA")
    );
    assert_eq!(
        one_param("<value><string><![CDATA[<x> & y]]> z</string></value>").unwrap(),
        s("<x> & y z")
    );
    assert_eq!(
        one_param("<value><string>\n  A = 1\n\tB = [ C = 2 ]\n  </string></value>").unwrap(),
        s("\n  A = 1\n\tB = [ C = 2 ]\n  ")
    );
    assert_eq!(one_param("<value>  </value>").unwrap(), s("  "));
}

fn sample_values() -> Vec<Value> {
    vec![
        Value::Int(i32::MIN),
        Value::Int(i32::MAX),
        Value::I8(i64::MIN),
        Value::I8(i64::MAX),
        Value::Bool(true),
        Value::Bool(false),
        Value::Double(-0.125),
        Value::Double(1e300),
        Value::Double(5e-324),
        s(""),
        s("<a b=\"c\">&amp;\r\n\ttext ünïcödé ]]> '"),
        Value::DateTime("19980717T14:08:55".into()),
        Value::Base64(vec![]),
        Value::Base64(vec![0, 255, 1]),
        Value::Base64(b"ab".to_vec()),
        Value::Array(vec![]),
        Value::Struct(vec![]),
        Value::Struct(vec![(
            "k&<>".into(),
            Value::Array(vec![Value::Nil, Value::Int(1)]),
        )]),
        Value::Nil,
    ]
}

#[test]
fn round_trip_every_type() {
    let call = MethodCall {
        method: "one.x.y".into(),
        params: sample_values(),
    };
    assert_eq!(parse_call(write_call(&call).as_bytes()).unwrap(), call);
    for v in sample_values() {
        assert_eq!(
            parse_response(write_response(&v).as_bytes()).unwrap(),
            Response::Success(v)
        );
    }
    let empty = MethodCall {
        method: "m".into(),
        params: vec![],
    };
    assert_eq!(parse_call(write_call(&empty).as_bytes()).unwrap(), empty);
}

#[test]
fn writer_format() {
    let out = write_response(&Value::Array(vec![
        Value::Int(1),
        Value::I8(2),
        s("a&<>\r"),
        Value::Nil,
    ]));
    assert_eq!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param><value><array><data>\
         <value><i4>1</i4></value><value><i8>2</i8></value><value><string>a&amp;&lt;&gt;&#13;</string></value>\
         <value><nil/></value></data></array></value></param></params></methodResponse>"
    );
}

#[test]
fn faults() {
    let f = write_fault(-501, "Not enough <parameters>");
    assert_eq!(
        parse_response(f.as_bytes()).unwrap(),
        Response::Fault {
            code: -501,
            message: "Not enough <parameters>".into()
        }
    );
    let python = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>boom</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n";
    assert_eq!(
        parse_response(python.as_bytes()).unwrap(),
        Response::Fault {
            code: 1,
            message: "boom".into()
        }
    );
    let bad = "<methodResponse><fault><value><struct></struct></value></fault></methodResponse>";
    assert!(matches!(
        parse_response(bad.as_bytes()),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn params_faults() {
    let vals = vec![
        Value::Int(5),
        Value::I8(1 << 40),
        s("x"),
        Value::Bool(true),
        Value::Array(vec![]),
        Value::I8(7),
    ];
    let p = Params(&vals);
    assert_eq!(p.len(), 6);
    assert_eq!(p.int(0), Ok(5));
    assert_eq!(p.int(5), Ok(7));
    assert_eq!(p.i8(0), Ok(5));
    assert_eq!(p.i8(1), Ok(1 << 40));
    assert_eq!(p.string(2), Ok("x"));
    assert_eq!(p.bool(3), Ok(true));
    assert_eq!(p.opt_bool(3), Ok(Some(true)));
    assert_eq!(p.opt_bool(6), Ok(None));
    assert_eq!(p.array(4).unwrap().len(), 0);
    let fault = |m: &str| Fault {
        code: -501,
        message: m.into(),
    };
    assert_eq!(p.int(6), Err(fault("Not enough parameters")));
    assert_eq!(p.string(9), Err(fault("Not enough parameters")));
    assert_eq!(
        p.int(1),
        Err(fault("Parameter that is supposed to be integer is not"))
    );
    assert_eq!(
        p.int(2),
        Err(fault("Parameter that is supposed to be integer is not"))
    );
    assert_eq!(
        p.i8(2),
        Err(fault(
            "Parameter that is supposed to be 64-bit integer is not"
        ))
    );
    assert_eq!(
        p.string(0),
        Err(fault("Parameter that is supposed to be string is not"))
    );
    assert_eq!(
        p.bool(0),
        Err(fault("Parameter that is supposed to be boolean is not"))
    );
    assert_eq!(
        p.opt_bool(2),
        Err(fault("Parameter that is supposed to be boolean is not"))
    );
    assert_eq!(
        p.array(2),
        Err(fault("Parameter that is supposed to be array is not"))
    );
}

#[test]
fn one_envelopes() {
    let ok = one::success(Value::Int(3));
    assert_eq!(
        ok,
        Value::Array(vec![Value::Bool(true), Value::Int(3), Value::Int(0)])
    );
    let r = parse_response(write_response(&ok).as_bytes()).unwrap();
    assert_eq!(one::result(r), Ok(Value::Int(3)));
    let fail = one::failure("[one.vm.info] Error getting VM [3].", 0x0400, 3);
    assert_eq!(fail.as_array().unwrap()[4], Value::I8(0));
    let e = one::result(Response::Success(fail)).unwrap_err();
    assert_eq!(
        (e.code, e.to_string()),
        (0x0400, "[one.vm.info] Error getting VM [3].".to_string())
    );
    let e = one::result(Response::Fault {
        code: -501,
        message: "Not enough parameters".into(),
    })
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (-501, "<Fault -501: 'Not enough parameters'>")
    );
    assert!(one::result(Response::Success(Value::Int(1))).is_err());
    assert!(one::result(Response::Success(Value::Array(vec![]))).is_err());
    assert!(one::result(Response::Success(Value::Array(vec![Value::Bool(true)]))).is_err());
}

#[test]
fn malformed_inputs() {
    let cut = PYONE.len() / 2;
    let bad_calls: Vec<String> = vec![
        String::new(),
        "not xml".into(),
        PYONE[..cut].into(),
        PYONE[..PYONE.len() - 3].into(),
        "<methodCall><methodName>m</methodName><params><param><value><int>1</value></param></params></methodCall>".into(),
        "<methodCall><methodName>m</methodName><params>".into(),
        "<methodCall><methodName>m</methodName></methodCall><extra/>".into(),
        "<methodCall><methodName>m</methodName></methodCall>garbage".into(),
        "<methodCall><methodName>m</methodName></methodCall><methodCall>".into(),
        "<methodCall><methodName></methodName></methodCall>".into(),
        "<methodResponse/>".into(),
        "<methodCall><methodName>m</methodName><foo/></methodCall>".into(),
    ];
    for b in &bad_calls {
        assert!(
            matches!(parse_call(b.as_bytes()), Err(Error::Malformed(_))),
            "accepted {b:?}"
        );
    }
    for v in [
        "<value><int>abc</int></value>",
        "<value><int>99999999999</int></value>",
        "<value><i4></i4></value>",
        "<value><i8>99999999999999999999</i8></value>",
        "<value><boolean>true</boolean></value>",
        "<value><boolean>2</boolean></value>",
        "<value><double>x</double></value>",
        "<value><base64>!!</base64></value>",
        "<value><base64>a</base64></value>",
        "<value><foo>1</foo></value>",
        "<value><int/></value>",
        "<value>text<int>1</int></value>",
        "<value><string>&bogus;</string></value>",
        "<value><string><b>x</b></string></value>",
        "<value><array><value>1</value></array></value>",
        "<value><struct><member><value>1</value></member></struct></value>",
        "<value><int>1</int><int>2</int></value>",
    ] {
        assert!(
            matches!(one_param(v), Err(Error::Malformed(_))),
            "accepted {v}"
        );
    }
    let bad_resp = [
        "<methodResponse><params/></methodResponse>",
        "<methodResponse></methodResponse>x",
        "<methodCall/>",
    ];
    for b in bad_resp {
        assert!(
            matches!(parse_response(b.as_bytes()), Err(Error::Malformed(_))),
            "accepted {b}"
        );
    }
}

#[test]
fn doctype_refused() {
    let lol = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\
               <methodCall><methodName>&lol2;</methodName></methodCall>";
    assert!(matches!(parse_call(lol.as_bytes()), Err(Error::Doctype)));
    assert!(matches!(
        parse_response(b"<!DOCTYPE x><methodResponse/>"),
        Err(Error::Doctype)
    ));
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!(
        "<value>{}<int>1</int>{}</value>",
        open.repeat(depth),
        close.repeat(depth)
    )
}

#[test]
fn depth_limit() {
    let (ao, ac) = ("<array><data><value>", "</value></data></array>");
    one_param(&nested(MAX_DEPTH, ao, ac)).unwrap();
    assert!(matches!(
        one_param(&nested(MAX_DEPTH + 1, ao, ac)),
        Err(Error::TooDeep)
    ));
    assert!(matches!(
        one_param(&nested(10_000, ao, ac)),
        Err(Error::TooDeep)
    ));
    let (so, sc) = (
        "<struct><member><name>n</name><value>",
        "</value></member></struct>",
    );
    assert!(one_param(&nested(MAX_DEPTH, so, sc)).is_ok());
    assert!(matches!(
        one_param(&nested(MAX_DEPTH + 1, so, sc)),
        Err(Error::TooDeep)
    ));
    let mut v = Value::Int(1);
    for _ in 0..=MAX_DEPTH {
        v = Value::Array(vec![v]);
    }
    assert!(matches!(
        parse_response(write_response(&v).as_bytes()),
        Err(Error::TooDeep)
    ));
}

/// Deterministic xorshift generator for property-style tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn string(&mut self) -> String {
        const CHARS: &[char] = &[
            'a', 'Z', '0', ' ', '\n', '\r', '\t', '&', '<', '>', '"', '\'', ';', '#', ']', 'é',
            '€', '😀',
        ];
        (0..self.below(12))
            .map(|_| CHARS[self.below(CHARS.len() as u64)])
            .collect()
    }
    fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth > 3 { 8 } else { 10 };
        match self.below(kinds) {
            0 => Value::Int(self.next() as i32),
            1 => Value::I8(self.next() as i64),
            2 => Value::Bool(self.next() & 1 == 0),
            3 => Value::Double((self.next() as i64 as f64) / 1024.0),
            4 => Value::String(self.string()),
            5 => Value::DateTime(format!("2024{:04}T00:00:00", self.below(10_000))),
            6 => Value::Base64((0..self.below(9)).map(|_| self.next() as u8).collect()),
            7 => Value::Nil,
            8 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Struct(
                (0..self.below(4))
                    .map(|_| (self.string(), self.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[test]
fn property_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let params: Vec<Value> = (0..rng.below(4)).map(|_| rng.value(0)).collect();
        let call = MethodCall {
            method: format!("one.m{}", rng.below(100)),
            params,
        };
        assert_eq!(parse_call(write_call(&call).as_bytes()).unwrap(), call);
        let v = rng.value(0);
        assert_eq!(
            parse_response(write_response(&v).as_bytes()).unwrap(),
            Response::Success(v)
        );
    }
}

/// Issue 10: a string holding characters XML 1.0 cannot carry (stored before names were
/// checked, or in an error message quoting the input) must not make the answer unreadable.
#[test]
fn issue_10_characters_xml_cannot_carry_are_replaced_in_answers() {
    let nasty = "a\u{1}b\u{1b}[0m\u{0}\u{b}\u{c}\u{7f}\u{FFFE}\u{FFFF}\t\n\r😀<&>]]>";
    let out = write_response(&Value::Array(vec![
        s(nasty),
        Value::Struct(vec![(nasty.into(), s(nasty))]),
    ]));
    let legal = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    assert!(out.chars().all(legal), "{out:?}");
    let expected =
        "a\u{FFFD}b\u{FFFD}[0m\u{FFFD}\u{FFFD}\u{FFFD}\u{7f}\u{FFFD}\u{FFFD}\t\n\r😀<&>]]>";
    assert_eq!(
        parse_response(out.as_bytes()).unwrap(),
        Response::Success(Value::Array(vec![
            s(expected),
            Value::Struct(vec![(expected.into(), s(expected))]),
        ]))
    );
    let fault = write_fault(-503, nasty);
    assert!(fault.chars().all(legal), "{fault:?}");
}
