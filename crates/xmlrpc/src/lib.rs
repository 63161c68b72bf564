//! Pure XML-RPC codec (no I/O) for OneHA's `/RPC2` endpoint and its clients.
//!
//! * [`parse_call`] / [`write_call`] handle `<methodCall>` documents,
//! * [`parse_response`] / [`write_response`] / [`write_fault`] handle `<methodResponse>`,
//! * [`Params`] gives positional parameter access with xmlrpc-c's fault texts (as oned uses),
//! * [`one`] builds and interprets OpenNebula's `[success, value, code, ...]` envelopes.
//!
//! The parser accepts what Python's `xmlrpc.client`, pyone, Ruby and xmlrpc-c send (`<i4>`,
//! `<i8>`, bare `<value>text</value>` strings, `<value/>`, CDATA, entities, pretty-printing
//! whitespace) and rejects DTDs, unknown tags, out-of-range numbers, nesting deeper than
//! [`MAX_DEPTH`] and trailing garbage with an [`Error`] — it never panics.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fmt::{self, Write as _};

/// Maximum nesting of arrays/structs accepted by the parsers.
pub const MAX_DEPTH: usize = 64;

/// An XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>` or `<i4>`.
    Int(i32),
    /// `<i8>` (xmlrpc-c / Apache extension).
    I8(i64),
    Bool(bool),
    Double(f64),
    String(String),
    /// `<dateTime.iso8601>`, kept verbatim (trimmed).
    DateTime(String),
    Base64(Vec<u8>),
    Array(Vec<Value>),
    /// Members in document order.
    Struct(Vec<(String, Value)>),
    Nil,
}

impl Value {
    /// `Int` or `I8` widened to `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::I8(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A parsed `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

/// A parsed `<methodResponse>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Success(Value),
    Fault { code: i32, message: String },
}

/// Parse errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not well-formed XML or not a valid XML-RPC document.
    #[error("malformed XML-RPC document: {0}")]
    Malformed(String),
    /// Arrays/structs nested deeper than [`MAX_DEPTH`].
    #[error("XML-RPC value nested deeper than {MAX_DEPTH} arrays/structs")]
    TooDeep,
    /// A `<!DOCTYPE ...>` (and thus possible entity declarations) was present.
    #[error("DOCTYPE/entity declarations are not allowed in XML-RPC")]
    Doctype,
}

fn malformed(msg: impl Into<String>) -> Error {
    Error::Malformed(msg.into())
}

/// Owned, simplified XML event.
enum Ev {
    Start(String),
    Empty(String),
    End(String),
    Text(String),
    Eof,
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    seen_root: bool,
}

impl<'a> Parser<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(body);
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.trim_text(false);
        Parser {
            reader,
            seen_root: false,
        }
    }

    fn raw(&mut self) -> Result<Ev, Error> {
        loop {
            let pos = self.reader.buffer_position();
            let ev = self
                .reader
                .read_event()
                .map_err(|e| malformed(format!("{e} (near byte {pos})")))?;
            let name = |b: &[u8]| {
                String::from_utf8(b.to_vec()).map_err(|_| malformed("tag name is not UTF-8"))
            };
            return Ok(match ev {
                Event::Start(s) => Ev::Start(name(s.name().as_ref())?),
                Event::Empty(s) => Ev::Empty(name(s.name().as_ref())?),
                Event::End(e) => Ev::End(name(e.name().as_ref())?),
                Event::Text(t) => Ev::Text(
                    t.unescape()
                        .map_err(|e| malformed(format!("bad text: {e}")))?
                        .into_owned(),
                ),
                Event::CData(c) => Ev::Text(
                    String::from_utf8(c.into_inner().into_owned())
                        .map_err(|_| malformed("CDATA is not UTF-8"))?,
                ),
                Event::DocType(_) => return Err(Error::Doctype),
                Event::Decl(_) if !self.seen_root => continue,
                Event::Decl(_) => return Err(malformed("misplaced XML declaration")),
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Eof => Ev::Eof,
            });
        }
    }

    /// Next event that is not whitespace-only text.
    fn next(&mut self) -> Result<Ev, Error> {
        loop {
            match self.raw()? {
                Ev::Text(t) if t.trim().is_empty() => continue,
                Ev::Text(t) => return Err(malformed(format!("unexpected text {:?}", clip(&t)))),
                ev => return Ok(ev),
            }
        }
    }

    fn expect_start(&mut self, tag: &str) -> Result<(), Error> {
        match self.next()? {
            Ev::Start(n) if n == tag => Ok(()),
            other => Err(unexpected(&other, &format!("<{tag}>"))),
        }
    }

    fn expect_end(&mut self, tag: &str) -> Result<(), Error> {
        match self.next()? {
            Ev::End(n) if n == tag => Ok(()),
            other => Err(unexpected(&other, &format!("</{tag}>"))),
        }
    }

    fn expect_eof(&mut self) -> Result<(), Error> {
        match self.next()? {
            Ev::Eof => Ok(()),
            other => Err(unexpected(&other, "end of document")),
        }
    }

    /// Text content up to `</tag>`; child elements are an error.
    fn text_until(&mut self, tag: &str) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            match self.raw()? {
                Ev::Text(t) => out.push_str(&t),
                Ev::End(n) if n == tag => return Ok(out),
                other => return Err(unexpected(&other, &format!("text or </{tag}>"))),
            }
        }
    }

    /// Parses a value whose opening `<value>` was already consumed.
    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        let mut text = String::new();
        loop {
            match self.raw()? {
                Ev::Text(t) => text.push_str(&t),
                Ev::End(n) if n == "value" => return Ok(Value::String(text)),
                Ev::Start(tag) => {
                    ws_only(&text)?;
                    let v = self.typed(&tag, depth)?;
                    self.expect_end("value")?;
                    return Ok(v);
                }
                Ev::Empty(tag) => {
                    ws_only(&text)?;
                    let v = match tag.as_str() {
                        "string" => Value::String(String::new()),
                        "nil" | "ex:nil" => Value::Nil,
                        "array" => Value::Array(Vec::new()),
                        "struct" => Value::Struct(Vec::new()),
                        "base64" => Value::Base64(Vec::new()),
                        _ => {
                            return Err(malformed(format!(
                                "empty <{}/> is not a valid value",
                                clip(&tag)
                            )))
                        }
                    };
                    self.expect_end("value")?;
                    return Ok(v);
                }
                other => return Err(unexpected(&other, "a value")),
            }
        }
    }

    /// Parses the body of `<tag>` (start already consumed) including `</tag>`.
    fn typed(&mut self, tag: &str, depth: usize) -> Result<Value, Error> {
        let scalar = |p: &mut Self| p.text_until(tag);
        Ok(match tag {
            "int" | "i4" => {
                let t = scalar(self)?;
                Value::Int(
                    t.trim()
                        .parse()
                        .map_err(|_| malformed(format!("invalid <{tag}> {:?}", clip(&t))))?,
                )
            }
            "i8" | "ex:i8" => {
                let t = scalar(self)?;
                Value::I8(
                    t.trim()
                        .parse()
                        .map_err(|_| malformed(format!("invalid <i8> {:?}", clip(&t))))?,
                )
            }
            "boolean" => match scalar(self)?.trim() {
                "0" => Value::Bool(false),
                "1" => Value::Bool(true),
                t => {
                    return Err(malformed(format!(
                        "invalid <boolean> {:?} (must be 0 or 1)",
                        clip(t)
                    )))
                }
            },
            "double" => {
                let t = scalar(self)?;
                Value::Double(
                    t.trim()
                        .parse()
                        .map_err(|_| malformed(format!("invalid <double> {:?}", clip(&t))))?,
                )
            }
            "string" => Value::String(scalar(self)?),
            "dateTime.iso8601" => Value::DateTime(scalar(self)?.trim().to_string()),
            "base64" => Value::Base64(base64_decode(&scalar(self)?)?),
            "nil" | "ex:nil" => {
                ws_only(&scalar(self)?)?;
                Value::Nil
            }
            "array" => {
                if depth >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                let mut items = Vec::new();
                match self.next()? {
                    Ev::Empty(n) if n == "data" => {}
                    Ev::Start(n) if n == "data" => loop {
                        match self.next()? {
                            Ev::Start(n) if n == "value" => items.push(self.value(depth + 1)?),
                            Ev::Empty(n) if n == "value" => {
                                items.push(Value::String(String::new()))
                            }
                            Ev::End(n) if n == "data" => break,
                            other => return Err(unexpected(&other, "<value> or </data>")),
                        }
                    },
                    other => return Err(unexpected(&other, "<data>")),
                }
                self.expect_end("array")?;
                Value::Array(items)
            }
            "struct" => {
                if depth >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                let mut members = Vec::new();
                loop {
                    match self.next()? {
                        Ev::Start(n) if n == "member" => {
                            self.expect_start("name")?;
                            let name = self.text_until("name")?;
                            let v = match self.next()? {
                                Ev::Start(n) if n == "value" => self.value(depth + 1)?,
                                Ev::Empty(n) if n == "value" => Value::String(String::new()),
                                other => return Err(unexpected(&other, "<value>")),
                            };
                            self.expect_end("member")?;
                            members.push((name, v));
                        }
                        Ev::End(n) if n == "struct" => break,
                        other => return Err(unexpected(&other, "<member> or </struct>")),
                    }
                }
                Value::Struct(members)
            }
            _ => return Err(malformed(format!("unknown value type <{}>", clip(tag)))),
        })
    }

    /// After `<param>` container start: one `<value>` then `</param>`.
    fn param_value(&mut self, depth: usize) -> Result<Value, Error> {
        let v = match self.next()? {
            Ev::Start(n) if n == "value" => self.value(depth)?,
            Ev::Empty(n) if n == "value" => Value::String(String::new()),
            other => return Err(unexpected(&other, "<value>")),
        };
        Ok(v)
    }

    fn root(&mut self, tag: &str) -> Result<(), Error> {
        self.expect_start(tag)?;
        self.seen_root = true;
        Ok(())
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn ws_only(t: &str) -> Result<(), Error> {
    if t.trim().is_empty() {
        Ok(())
    } else {
        Err(malformed(format!("unexpected text {:?}", clip(t))))
    }
}

fn unexpected(ev: &Ev, wanted: &str) -> Error {
    let got = match ev {
        Ev::Start(n) => format!("<{}>", clip(n)),
        Ev::Empty(n) => format!("<{}/>", clip(n)),
        Ev::End(n) => format!("</{}>", clip(n)),
        Ev::Text(t) => format!("text {:?}", clip(t)),
        Ev::Eof => "end of document".to_string(),
    };
    malformed(format!("expected {wanted}, found {got}"))
}

/// Parses an XML-RPC `<methodCall>` request body.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, Error> {
    let mut p = Parser::new(body);
    p.root("methodCall")?;
    p.expect_start("methodName")?;
    let method = p.text_until("methodName")?.trim().to_string();
    if method.is_empty() {
        return Err(malformed("empty <methodName>"));
    }
    let mut params = Vec::new();
    loop {
        match p.next()? {
            Ev::Empty(n) if n == "params" => {}
            Ev::Start(n) if n == "params" => loop {
                match p.next()? {
                    Ev::Start(n) if n == "param" => {
                        params.push(p.param_value(0)?);
                        p.expect_end("param")?;
                    }
                    Ev::End(n) if n == "params" => break,
                    other => return Err(unexpected(&other, "<param> or </params>")),
                }
            },
            Ev::End(n) if n == "methodCall" => break,
            other => return Err(unexpected(&other, "<params> or </methodCall>")),
        }
    }
    p.expect_eof()?;
    Ok(MethodCall { method, params })
}

/// Parses an XML-RPC `<methodResponse>` (success or fault).
pub fn parse_response(body: &[u8]) -> Result<Response, Error> {
    let mut p = Parser::new(body);
    p.root("methodResponse")?;
    let resp = match p.next()? {
        Ev::Start(n) if n == "params" => {
            p.expect_start("param")?;
            let v = p.param_value(0)?;
            p.expect_end("param")?;
            p.expect_end("params")?;
            Response::Success(v)
        }
        Ev::Start(n) if n == "fault" => {
            let v = p.param_value(0)?;
            p.expect_end("fault")?;
            let Value::Struct(members) = v else {
                return Err(malformed("<fault> value is not a struct"));
            };
            let get = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
            let code = match get("faultCode") {
                Some(Value::Int(c)) => *c,
                Some(Value::I8(c)) => {
                    i32::try_from(*c).map_err(|_| malformed("faultCode out of range"))?
                }
                _ => return Err(malformed("fault without integer faultCode")),
            };
            let message = match get("faultString") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(malformed("fault without string faultString")),
            };
            Response::Fault { code, message }
        }
        other => return Err(unexpected(&other, "<params> or <fault>")),
    };
    p.expect_end("methodResponse")?;
    p.expect_eof()?;
    Ok(resp)
}

const HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Escapes text for the XML body. A character XML 1.0 cannot carry at all (a control character
/// other than tab, newline and carriage return, U+FFFE, U+FFFF) is written as U+FFFD: no
/// reference can express it, and one such character in a string would make the whole answer
/// unreadable for expat-based clients (pyone), whoever stored it and however.
///
/// Scans bytes and copies the runs between replacements whole: a pool answer is megabytes of
/// text of which only the markup needs escaping. Every byte replaced is ASCII, or the lead byte
/// 0xEF of U+FFFE/U+FFFF (EF BF BE, EF BF BF), so every cut falls on a character boundary.
pub fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(s.len() + s.len() / 8);
    let (mut from, mut i) = (0, 0);
    while i < bytes.len() {
        let (with, len) = match bytes[i] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'\r' => ("&#13;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0..=0x1f => ("\u{FFFD}", 1),
            0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => ("\u{FFFD}", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[from..i]);
        out.push_str(with);
        i += len;
        from = i;
    }
    out.push_str(&s[from..]);
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    // `write!` into a String cannot fail.
    let _ = match v {
        Value::Int(i) => write!(out, "<i4>{i}</i4>"),
        Value::I8(i) => write!(out, "<i8>{i}</i8>"),
        Value::Bool(b) => write!(out, "<boolean>{}</boolean>", u8::from(*b)),
        Value::Double(d) => write!(out, "<double>{d}</double>"),
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
            Ok(())
        }
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
            Ok(())
        }
        Value::Base64(b) => write!(out, "<base64>{}</base64>", base64_encode(b)),
        Value::Array(items) => {
            out.push_str("<array><data>");
            items.iter().for_each(|i| write_value(out, i));
            out.push_str("</data></array>");
            Ok(())
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, val) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, val);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
            Ok(())
        }
        Value::Nil => write!(out, "<nil/>"),
    };
    out.push_str("</value>");
}

/// Serialises a `<methodCall>` (compact, UTF-8).
pub fn write_call(call: &MethodCall) -> String {
    let mut out = String::from(HEADER);
    out.push_str("<methodCall><methodName>");
    escape_into(&mut out, &call.method);
    out.push_str("</methodName><params>");
    for p in &call.params {
        out.push_str("<param>");
        write_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// Serialises a successful `<methodResponse>` carrying `value`.
pub fn write_response(value: &Value) -> String {
    let mut out = String::from(HEADER);
    out.push_str("<methodResponse><params><param>");
    write_value(&mut out, value);
    out.push_str("</param></params></methodResponse>");
    out
}

/// Serialises a `<fault>` `<methodResponse>`.
pub fn write_fault(code: i32, message: &str) -> String {
    let mut out = String::from(HEADER);
    out.push_str("<methodResponse><fault>");
    let v = Value::Struct(vec![
        ("faultCode".into(), Value::Int(code)),
        ("faultString".into(), Value::String(message.into())),
    ]);
    write_value(&mut out, &v);
    out.push_str("</fault></methodResponse>");
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            pad += 1;
            continue;
        }
        let v = B64
            .iter()
            .position(|&x| x == c)
            .ok_or_else(|| malformed("invalid character in <base64>"))?;
        if pad > 0 {
            return Err(malformed("data after padding in <base64>"));
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if pad > 2 || bits >= 6 {
        return Err(malformed("invalid <base64> length"));
    }
    Ok(out)
}

/// A fault to be returned to an XML-RPC client (see [`write_fault`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Fault {}

/// xmlrpc-c's `fault::CODE_TYPE`.
const CODE_TYPE: i32 = -501;

/// Positional parameter access with xmlrpc-c's fault semantics (oned uses these exact texts).
pub struct Params<'a>(pub &'a [Value]);

impl<'a> Params<'a> {
    fn get(&self, i: usize) -> Result<&'a Value, Fault> {
        self.0
            .get(i)
            .ok_or_else(|| type_fault("Not enough parameters"))
    }

    /// `Int`, or an `I8` that fits in `i32`.
    pub fn int(&self, i: usize) -> Result<i32, Fault> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            Value::I8(v) => i32::try_from(*v).map_err(|_| not("integer")),
            _ => Err(not("integer")),
        }
    }
    /// `Int` or `I8`.
    pub fn i8(&self, i: usize) -> Result<i64, Fault> {
        self.get(i)?.as_i64().ok_or_else(|| not("64-bit integer"))
    }
    pub fn string(&self, i: usize) -> Result<&'a str, Fault> {
        match self.get(i)? {
            Value::String(s) => Ok(s),
            _ => Err(not("string")),
        }
    }
    /// Only `<boolean>`; like xmlrpc-c, ints are not accepted.
    pub fn bool(&self, i: usize) -> Result<bool, Fault> {
        self.get(i)?.as_bool().ok_or_else(|| not("boolean"))
    }
    /// `None` if the parameter is absent.
    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, Fault> {
        if i >= self.0.len() {
            return Ok(None);
        }
        self.bool(i).map(Some)
    }
    pub fn array(&self, i: usize) -> Result<&'a [Value], Fault> {
        match self.get(i)? {
            Value::Array(a) => Ok(a),
            _ => Err(not("array")),
        }
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn type_fault(msg: &str) -> Fault {
    Fault {
        code: CODE_TYPE,
        message: msg.to_string(),
    }
}

fn not(kind: &str) -> Fault {
    type_fault(&format!("Parameter that is supposed to be {kind} is not"))
}

/// OpenNebula envelopes: `[true, value, 0]` / `[false, message, code, resp_id, 0]`.
pub mod one {
    pub use super::{Response, Value};
    use std::fmt;

    /// `[true, value, 0]`.
    pub fn success(value: Value) -> Value {
        Value::Array(vec![Value::Bool(true), value, Value::Int(0)])
    }

    /// `[false, message, code, resp_id, I8(0)]`.
    pub fn failure(message: &str, code: i32, resp_id: i32) -> Value {
        failure_at(message, code, resp_id, 0)
    }

    /// [`failure`] with the replication index OpenNebula's answers carry last (the index a
    /// federated record's sender resumes from).
    pub fn failure_at(message: &str, code: i32, resp_id: i32, replication_idx: i64) -> Value {
        Value::Array(vec![
            Value::Bool(false),
            Value::String(message.to_string()),
            Value::Int(code),
            Value::Int(resp_id),
            Value::I8(replication_idx),
        ])
    }

    /// An OpenNebula-level error (or transport fault) seen by a client.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OneError {
        pub code: i32,
        pub message: String,
    }

    impl fmt::Display for OneError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for OneError {}

    fn bad(msg: &str) -> OneError {
        OneError {
            code: -1,
            message: format!("unexpected OpenNebula response: {msg}"),
        }
    }

    /// Interprets a response on the client side.
    pub fn result(resp: Response) -> Result<Value, OneError> {
        let items = match resp {
            Response::Fault { code, message } => {
                return Err(OneError {
                    code,
                    message: format!("<Fault {code}: '{message}'>"),
                })
            }
            Response::Success(Value::Array(items)) => items,
            Response::Success(_) => return Err(bad("not an array")),
        };
        let mut it = items.into_iter();
        match it.next() {
            Some(Value::Bool(true)) => it.next().ok_or_else(|| bad("success without a value")),
            Some(Value::Bool(false)) => {
                let message = match it.next() {
                    Some(Value::String(s)) => s,
                    _ => return Err(bad("failure without a message")),
                };
                let code = it
                    .next()
                    .and_then(|c| c.as_i64())
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(-1);
                Err(OneError { code, message })
            }
            _ => Err(bad("first element is not a boolean")),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz_props;
