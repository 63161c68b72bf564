//! A strict well-formedness check of the XML that [`crate::Template::to_xml`] writes: one root
//! element, balanced tags, element names that are XML `Name`s, no attributes, comments,
//! processing instructions or DOCTYPE, well-formed references, and only XML `Char`s in text.
//! quick-xml alone accepts more than XML 1.0 (names starting with a digit, control characters),
//! hence the extra checks. Shared, through `#[path]`, with the fuzz targets (`fuzz/src/lib.rs`).

use quick_xml::events::Event;
use quick_xml::Reader;

/// XML 1.0 `Char`: what a document may contain at all.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// XML 1.0 `Name`.
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

fn check_chars(what: &str, s: &str) -> Result<(), String> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(format!("{what} holds {c:?}, not an XML character")),
        None => Ok(()),
    }
}

/// `Ok` if `xml` is a well-formed document as `to_xml` should write it, else what is wrong.
pub fn check(xml: &str) -> Result<(), String> {
    check_chars("the document", xml)?;
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.trim_text(false);
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {pos}: {e}"))?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = utf8(e.name().as_ref())?.to_string();
                if !is_xml_name(&name) {
                    return Err(format!("<{name}> is not an XML name"));
                }
                if !e.attributes_raw().iter().all(u8::is_ascii_whitespace) {
                    return Err(format!("<{name}> has attributes or a name with spaces"));
                }
                if depth == 0 {
                    roots += 1;
                }
                if is_start {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("end tag without start at byte {pos}"))?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| format!("at byte {pos}: {e}"))?;
                if depth == 0 && !text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
                    return Err(format!("text outside the root at byte {pos}"));
                }
                check_chars("text", &text)?;
            }
            Event::CData(t) => {
                if depth == 0 {
                    return Err(format!("CDATA outside the root at byte {pos}"));
                }
                check_chars("CDATA", utf8(&t)?)?;
            }
            Event::Eof => break,
            other => return Err(format!("unexpected {other:?} at byte {pos}")),
        }
    }
    if depth != 0 {
        return Err(format!("{depth} element(s) left open"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}
