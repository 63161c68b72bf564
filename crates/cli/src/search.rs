//! `onevm list --search`: OpenNebula's query `PATH=VALUE[&PATH=VALUE...]`, which oned turns
//! into `JSON_EXTRACT(body_json, '$.PATH') LIKE '%VALUE%'` over each VM's document
//! (`VirtualMachinePoolInfo::request_execute`). The query is sent as OpenNebula's CLI sends
//! it, and checked here too, so the objects it does not match are left out whatever the
//! server did with it.
//!
//! A path is dot-separated element names from the object's own (`VM.TEMPLATE.DISK[*].IMAGE`),
//! `NAME[n]` picking one of repeated elements and `*` any element; a term without `=`
//! searches the whole document. A term holds when the text of a matched element (all its
//! texts, for an element with children) contains the value.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::xml::Element;

/// One `PATH=VALUE` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    path: Vec<Step>,
    value: String,
}

/// One path step: a name (or `*`) and which of the elements so named.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    name: String,
    nth: Option<usize>,
}

fn step(s: &str) -> Step {
    let (name, nth) = match s.strip_suffix(']').and_then(|s| s.split_once('[')) {
        Some((name, "*")) => (name, None),
        Some((name, n)) => (name, Some(n.trim().parse().unwrap_or(usize::MAX))),
        None => (s, None),
    };
    Step {
        name: name.to_string(),
        nth,
    }
}

/// The query's terms, split at `&` and each at its first `=` (OpenNebula keeps the first two
/// fields of `one_util::split(key, '=')`).
fn parse_query(query: &str) -> Vec<Term> {
    query
        .split('&')
        .filter(|t| !t.is_empty())
        .map(|term| {
            let mut fields = term.split('=');
            let key = fields.next().unwrap_or("");
            let (key, value) = match fields.next() {
                Some(value) => (key, value),
                None => ("*", key),
            };
            Term {
                path: key.split('.').map(step).collect(),
                value: value.to_string(),
            }
        })
        .collect()
}

/// The elements `steps` reach below `from`.
fn reach<'a>(from: Vec<&'a Element>, steps: &[Step]) -> Vec<&'a Element> {
    let Some((first, rest)) = steps.split_first() else {
        return from;
    };
    let next: Vec<&Element> = from
        .iter()
        .flat_map(|e| {
            let named: Vec<&Element> = e
                .children
                .iter()
                .filter(|c| first.name == "*" || c.name == first.name)
                .collect();
            match first.nth {
                Some(n) => named.get(n).copied().into_iter().collect(),
                None => named,
            }
        })
        .collect();
    reach(next, rest)
}

/// Every text under `e`, its own included.
fn texts<'a>(e: &'a Element, all: &mut Vec<&'a str>) {
    all.push(&e.text);
    for c in &e.children {
        texts(c, all);
    }
}

fn holds(term: &Term, object: &Element) -> bool {
    // The object is the document's only member: `$.VM` (or `$.*`) is the object itself.
    let root = Element {
        children: vec![object.clone()],
        ..Element::default()
    };
    let mut all = Vec::new();
    for e in reach(vec![&root], &term.path) {
        texts(e, &mut all);
    }
    all.iter().any(|t| t.contains(term.value.as_str()))
}

/// Whether `object` matches every term of `query`.
pub(crate) fn matches(object: &Element, query: &str) -> bool {
    parse_query(query).iter().all(|t| holds(t, object))
}

/// The pool's start tag, each object's text and the rest, as byte ranges of `xml`.
type Spans = (usize, Vec<(usize, usize)>, usize);

fn spans(xml: &str) -> Result<Spans, String> {
    let mut reader = Reader::from_str(xml);
    let (mut depth, mut open, mut start) = (0usize, None, 0usize);
    let mut items = Vec::new();
    loop {
        let before = position(&reader);
        let event = reader
            .read_event()
            .map_err(|e| format!("invalid XML: {e}"))?;
        let after = position(&reader);
        match event {
            Event::Start(_) => {
                if depth == 1 {
                    start = before;
                }
                depth += 1;
                open.get_or_insert(after);
            }
            Event::Empty(_) if depth == 0 => return Ok((after, items, after)),
            Event::Empty(_) if depth == 1 => items.push((before, after)),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match depth {
                    1 => items.push((start, after)),
                    0 => return Ok((open.unwrap_or(0), items, before)),
                    _ => {}
                }
            }
            Event::Eof => return Err("invalid XML: unexpected end of document".into()),
            _ => {}
        }
    }
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// The pool document `xml` with only the objects `query` matches, each as it was written.
pub(crate) fn filter_pool(xml: &str, query: &str) -> Result<String, String> {
    let (open, items, close) = spans(xml)?;
    let piece = |from: usize, to: usize| {
        xml.get(from..to)
            .ok_or_else(|| "invalid XML: bad offsets".to_string())
    };
    let mut kept = String::from(piece(0, open)?);
    for (from, to) in items {
        let text = piece(from, to)?;
        let object = Element::parse(text).map_err(|e| e.to_string())?;
        if matches(&object, query) {
            kept.push_str(text);
        }
    }
    kept.push_str(piece(close, xml.len())?);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "<VM_POOL><VM><ID>0</ID><NAME>web-1</NAME><TEMPLATE>\
        <DISK><IMAGE>db1</IMAGE></DISK><DISK><IMAGE>os</IMAGE></DISK></TEMPLATE></VM>\
        <VM><ID>1</ID><NAME>db</NAME><TEMPLATE><DISK><IMAGE>os</IMAGE></DISK></TEMPLATE></VM>\
        </VM_POOL>";

    fn ids(query: &str) -> Vec<String> {
        let kept = Element::parse(&filter_pool(POOL, query).unwrap()).unwrap();
        kept.children_named("VM")
            .map(|v| v.text_of("ID").unwrap().to_string())
            .collect()
    }

    #[test]
    fn queries_pick_the_objects_they_match() {
        assert_eq!(ids("VM.NAME=web"), ["0"]);
        assert_eq!(ids("VM.NAME=b"), ["0", "1"]);
        assert_eq!(ids("VM.TEMPLATE.DISK[*].IMAGE=db1"), ["0"]);
        assert_eq!(ids("VM.TEMPLATE.DISK[1].IMAGE=os"), ["0"]);
        assert_eq!(ids("VM.TEMPLATE.DISK[0].IMAGE=os"), ["1"]);
        assert_eq!(ids("VM.NAME=web&VM.TEMPLATE.DISK[*].IMAGE=os"), ["0"]);
        assert_eq!(ids("VM.NAME=nothing"), Vec::<String>::new());
        assert_eq!(ids("db1"), ["0"]);
        assert_eq!(ids("VM.NAME=WEB"), Vec::<String>::new());
    }

    #[test]
    fn the_kept_objects_are_written_as_they_came() {
        assert_eq!(
            filter_pool(POOL, "VM.NAME=db").unwrap(),
            "<VM_POOL><VM><ID>1</ID><NAME>db</NAME><TEMPLATE><DISK><IMAGE>os</IMAGE></DISK>\
             </TEMPLATE></VM></VM_POOL>"
        );
        assert_eq!(
            filter_pool("<VM_POOL/>", "VM.NAME=x").unwrap(),
            "<VM_POOL/>"
        );
        assert_eq!(
            filter_pool("<VM_POOL></VM_POOL>", "VM.NAME=x").unwrap(),
            "<VM_POOL></VM_POOL>"
        );
    }
}
