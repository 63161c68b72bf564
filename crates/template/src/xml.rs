//! Templates given as XML: `<ROOT><NAME>value</NAME><VEC><KEY>v</KEY></VEC></ROOT>`. The root's
//! name does not matter; a child with element children is a vector attribute, any other child a
//! single one. Attribute names are upper-cased as in text templates.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::{Attribute, ParseError, Template, Value};

/// A child of the root while it is being read.
struct Open {
    name: String,
    text: String,
    pairs: Vec<(String, String)>,
    /// Inside a vector: the current pair's name and text.
    pair: Option<(String, String)>,
}

fn error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

pub(crate) fn parse(text: &str) -> Result<Template, ParseError> {
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    let mut attrs = Vec::new();
    let mut open: Option<Open> = None;
    let line_of = |pos: u64| text[..(pos as usize).min(text.len())].matches('\n').count() + 1;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| error(line_of(pos), format!("malformed XML template: {e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e) if depth >= 3 => {
                return Err(error(
                    line_of(pos),
                    format!(
                        "XML template nested too deep at <{}>",
                        String::from_utf8_lossy(e.name().as_ref())
                    ),
                ))
            }
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_uppercase();
                depth += 1;
                match depth {
                    2 => {
                        open = Some(Open {
                            name,
                            text: String::new(),
                            pairs: Vec::new(),
                            pair: None,
                        })
                    }
                    3 => {
                        if let Some(o) = open.as_mut() {
                            o.pair = Some((name, String::new()));
                        }
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_uppercase();
                match depth {
                    0 => return Ok(Template::default()),
                    1 => attrs.push(Attribute {
                        name,
                        value: Value::Single(String::new()),
                        line: line_of(pos),
                    }),
                    _ => {
                        if let Some(o) = open.as_mut() {
                            o.pairs.push((name, String::new()));
                        }
                    }
                }
            }
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| error(line_of(pos), format!("malformed XML template: {e}")))?;
                push_text(&mut open, depth, &s);
            }
            Event::CData(t) => {
                let bytes = t.into_inner();
                push_text(&mut open, depth, &String::from_utf8_lossy(&bytes));
            }
            Event::End(_) => {
                match depth {
                    3 => {
                        if let Some(o) = open.as_mut() {
                            if let Some(pair) = o.pair.take() {
                                o.pairs.push(pair);
                            }
                        }
                    }
                    2 => {
                        if let Some(o) = open.take() {
                            let value = if o.pairs.is_empty() {
                                Value::Single(o.text.trim().to_string())
                            } else {
                                Value::Vector(o.pairs)
                            };
                            attrs.push(Attribute {
                                name: o.name,
                                value,
                                line: line_of(pos),
                            });
                        }
                    }
                    1 => return Ok(Template { attrs }),
                    _ => {}
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                return Err(error(
                    line_of(pos),
                    "malformed XML template: unexpected end",
                ))
            }
            Event::DocType(_) => {
                return Err(error(line_of(pos), "XML template with a DOCTYPE refused"))
            }
            _ => {}
        }
    }
}

fn push_text(open: &mut Option<Open>, depth: usize, s: &str) {
    let Some(o) = open.as_mut() else { return };
    match (depth, o.pair.as_mut()) {
        (3, Some((_, text))) => text.push_str(s),
        (2, _) => o.text.push_str(s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singles_and_vectors_as_pyone_sends_them() {
        let t = Template::parse(
            "<TEMPLATE><color>blue</color><REG><![CDATA[a b]]></REG><DISK><IMAGE>x</IMAGE><SIZE>10</SIZE></DISK><EMPTY/></TEMPLATE>",
        )
        .unwrap();
        assert_eq!(t.single("COLOR"), Some("blue"));
        assert_eq!(t.single("REG"), Some("a b"));
        assert_eq!(
            t.vector("DISK"),
            Some(
                &[
                    ("IMAGE".to_string(), "x".to_string()),
                    ("SIZE".to_string(), "10".to_string())
                ][..]
            )
        );
        assert_eq!(t.single("EMPTY"), Some(""));
    }

    #[test]
    fn malformed_or_too_deep_xml_is_refused_with_a_line() {
        assert!(Template::parse("<TEMPLATE><A>1</B></TEMPLATE>").is_err());
        assert!(Template::parse("<TEMPLATE><A>1</A>").is_err());
        let deep = Template::parse("<T><A><B><C>1</C></B></A></T>").unwrap_err();
        assert!(deep.message.contains("too deep"), "{deep}");
        assert!(Template::parse("<!DOCTYPE x><T/>").is_err());
    }
}
