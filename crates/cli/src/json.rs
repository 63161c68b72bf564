//! `-j/--json`: a document as OpenNebula's CLI prints it, `JSON.pretty_generate(pool.to_hash)`.
//!
//! `XMLElement#to_hash` (the Nokogiri branch): an element whose only child is a text or CDATA
//! node is that string; any other element is a hash of its child elements (so an empty one is
//! `{}`), and a name seen twice becomes an array, in document order. OpenNebula's `list -j`
//! then wraps some single items in arrays when the schema files are installed
//! (`check_resource_xsd`); that step is not done here.

use quick_xml::events::Event;
use quick_xml::Reader;

/// A node as libxml2 keeps it, as far as `to_hash` looks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Element(XmlElement),
    /// A text or CDATA node.
    Text(String),
    /// A comment or processing instruction: counted, never read.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct XmlElement {
    name: String,
    children: Vec<Node>,
}

/// A Ruby value of `to_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    Str(String),
    /// A Hash, in insertion order.
    Obj(Vec<(String, Json)>),
    Arr(Vec<Json>),
}

/// The root element of `xml`, with its text, CDATA and other nodes.
fn parse(xml: &str) -> Result<XmlElement, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<XmlElement> = Vec::new();
    let name = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("invalid XML: {e}"))?;
        let node = match event {
            Event::Start(start) => {
                stack.push(XmlElement {
                    name: name(start.name().as_ref()),
                    children: Vec::new(),
                });
                continue;
            }
            Event::Empty(start) => Node::Element(XmlElement {
                name: name(start.name().as_ref()),
                children: Vec::new(),
            }),
            Event::End(_) => match stack.pop() {
                Some(done) => Node::Element(done),
                None => return Err("invalid XML: unbalanced end tag".into()),
            },
            Event::Text(text) => Node::Text(
                text.unescape()
                    .map_err(|e| format!("invalid XML: {e}"))?
                    .into_owned(),
            ),
            Event::CData(data) => Node::Text(String::from_utf8_lossy(&data.into_inner()).into()),
            Event::Comment(_) | Event::PI(_) => Node::Other,
            Event::Eof => return Err("invalid XML: unexpected end of document".into()),
            Event::Decl(_) | Event::DocType(_) => continue,
        };
        match (stack.last_mut(), node) {
            (Some(parent), node) => parent.children.push(node),
            (None, Node::Element(root)) => return Ok(root),
            // Text, comments and blanks around the root.
            (None, _) => {}
        }
    }
}

/// `build_hash` of one element's content.
fn content(e: &XmlElement) -> Json {
    if let [Node::Text(text)] = &e.children[..] {
        return Json::Str(text.clone());
    }
    let mut members: Vec<(String, Json)> = Vec::new();
    for child in &e.children {
        if let Node::Element(c) = child {
            insert(&mut members, &c.name, content(c));
        }
    }
    Json::Obj(members)
}

/// A key seen again turns into an array of its values, where it first was.
fn insert(members: &mut Vec<(String, Json)>, key: &str, value: Json) {
    match members.iter_mut().find(|(k, _)| k == key) {
        Some((_, Json::Arr(values))) => values.push(value),
        Some((_, old)) => {
            let first = std::mem::replace(old, Json::Arr(Vec::new()));
            *old = Json::Arr(vec![first, value]);
        }
        None => members.push((key.to_string(), value)),
    }
}

/// `XMLElement#to_hash` of the document `xml`.
pub(crate) fn to_hash(xml: &str) -> Result<Json, String> {
    let root = parse(xml)?;
    Ok(Json::Obj(vec![(root.name.clone(), content(&root))]))
}

/// The document as `JSON.pretty_generate(to_hash)`, without a final line break.
pub(crate) fn pool_json(xml: &str) -> Result<String, String> {
    let mut s = String::new();
    pretty(&to_hash(xml)?, 0, &mut s);
    Ok(s)
}

/// Ruby's `JSON.pretty_generate`: two blanks a level, `"key": value`, `{}` and `[]` when
/// empty.
pub(crate) fn pretty(value: &Json, depth: usize, s: &mut String) {
    let pad = |s: &mut String, depth: usize| s.push_str(&"  ".repeat(depth));
    match value {
        Json::Str(text) => escape(text, s),
        Json::Obj(members) if members.is_empty() => s.push_str("{}"),
        Json::Arr(values) if values.is_empty() => s.push_str("[]"),
        Json::Obj(members) => {
            s.push_str("{\n");
            for (i, (key, v)) in members.iter().enumerate() {
                pad(s, depth + 1);
                escape(key, s);
                s.push_str(": ");
                pretty(v, depth + 1, s);
                s.push_str(if i + 1 < members.len() { ",\n" } else { "\n" });
            }
            pad(s, depth);
            s.push('}');
        }
        Json::Arr(values) => {
            s.push_str("[\n");
            for (i, v) in values.iter().enumerate() {
                pad(s, depth + 1);
                pretty(v, depth + 1, s);
                s.push_str(if i + 1 < values.len() { ",\n" } else { "\n" });
            }
            pad(s, depth);
            s.push(']');
        }
    }
}

/// A JSON string as Ruby's generator writes it: `"` and `\` escaped, control characters as
/// `\b \f \n \r \t` or `\u00xx`; everything else (`/` and non-ASCII included) as it is.
fn escape(text: &str, s: &mut String) {
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => s.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_become_strings_hashes_and_arrays_as_to_hash() {
        let h = to_hash(
            "<POOL><VM><ID>0</ID><NAME><![CDATA[web]]></NAME><T/><U></U><E><![CDATA[]]></E>\
             <D><X>1</X></D><D><X>2</X></D></VM></POOL>",
        )
        .unwrap();
        let s = |v: &str| Json::Str(v.into());
        let vm = Json::Obj(vec![
            ("ID".into(), s("0")),
            ("NAME".into(), s("web")),
            ("T".into(), Json::Obj(vec![])),
            ("U".into(), Json::Obj(vec![])),
            ("E".into(), s("")),
            (
                "D".into(),
                Json::Arr(vec![
                    Json::Obj(vec![("X".into(), s("1"))]),
                    Json::Obj(vec![("X".into(), s("2"))]),
                ]),
            ),
        ]);
        assert_eq!(
            h,
            Json::Obj(vec![("POOL".into(), Json::Obj(vec![("VM".into(), vm)]))])
        );
    }

    #[test]
    fn mixed_content_keeps_only_the_elements() {
        let h = to_hash("<A>x<![CDATA[y]]></A>").unwrap();
        assert_eq!(h, Json::Obj(vec![("A".into(), Json::Obj(vec![]))]));
        let h = to_hash("<?xml version=\"1.0\"?>\n<A>a &amp; b</A>").unwrap();
        assert_eq!(h, Json::Obj(vec![("A".into(), Json::Str("a & b".into()))]));
        assert!(to_hash("<A><B></A>").is_err());
        assert!(to_hash("").is_err());
    }

    #[test]
    fn json_is_printed_as_ruby_pretty_generate() {
        assert_eq!(
            pool_json("<VM_POOL><VM><ID>0</ID><T/></VM><VM><ID>1</ID><T/></VM></VM_POOL>")
                .unwrap(),
            "{\n  \"VM_POOL\": {\n    \"VM\": [\n      {\n        \"ID\": \"0\",\n        \"T\": {}\n      },\n      {\n        \"ID\": \"1\",\n        \"T\": {}\n      }\n    ]\n  }\n}"
        );
        assert_eq!(
            pool_json("<HOOK_POOL></HOOK_POOL>").unwrap(),
            "{\n  \"HOOK_POOL\": {}\n}"
        );
        let mut s = String::new();
        escape("a\"b\\c/d\n\u{1}é", &mut s);
        assert_eq!(s, "\"a\\\"b\\\\c/d\\n\\u0001é\"");
    }
}
