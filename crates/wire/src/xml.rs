//! A minimal element tree built with `quick-xml`, enough to read OpenNebula's
//! small XML documents (`<ZONE>`, `<ZONE_POOL>`, `<RAFT>`).
//!
//! Text and CDATA sections are both accepted and concatenated; attributes,
//! comments and processing instructions are ignored.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Error raised when an XML document cannot be read or lacks an element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid XML: {0}")]
pub struct XmlError(pub String);

/// One XML element: its name, its text content and its child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Element name, e.g. `ZONE`.
    pub name: String,
    /// Concatenated text and CDATA content (meaningful for leaf elements).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// Parses a whole document and returns its root element.
    pub fn parse(xml: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = Vec::new();
        let err = |e: &dyn std::fmt::Display| XmlError(e.to_string());
        loop {
            match reader.read_event().map_err(|e| err(&e))? {
                Event::Start(start) => stack.push(Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    ..Element::default()
                }),
                Event::Empty(start) => {
                    let el = Element {
                        name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                        ..Element::default()
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => return Ok(el),
                    }
                }
                Event::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text.unescape().map_err(|e| err(&e))?);
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&String::from_utf8_lossy(&data.into_inner()));
                    }
                }
                Event::End(_) => {
                    let el = stack
                        .pop()
                        .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => return Ok(el),
                    }
                }
                Event::Eof => return Err(XmlError("unexpected end of document".into())),
                _ => {}
            }
        }
    }

    /// First child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All child elements called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the required child `name`.
    pub fn text_of(&self, name: &str) -> Result<&str, XmlError> {
        self.child(name)
            .map(|c| c.text.as_str())
            .ok_or_else(|| XmlError(format!("<{}> has no <{name}>", self.name)))
    }

    /// Integer value of the required child `name`.
    pub fn int_of(&self, name: &str) -> Result<i64, XmlError> {
        let text = self.text_of(name)?;
        text.trim().parse().map_err(|_| {
            XmlError(format!(
                "<{}>/<{name}> is not an integer: {text:?}",
                self.name
            ))
        })
    }

    /// Checks that the element is called `name`.
    pub fn expect(self, name: &str) -> Result<Element, XmlError> {
        if self.name == name {
            Ok(self)
        } else {
            Err(XmlError(format!(
                "expected <{name}>, found <{}>",
                self.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_text_and_empty() {
        let root = Element::parse(
            "<?xml version=\"1.0\"?><A><B><![CDATA[x<y]]></B><C>a &amp; b</C><D/></A>",
        )
        .unwrap();
        assert_eq!(root.name, "A");
        assert_eq!(root.text_of("B").unwrap(), "x<y");
        assert_eq!(root.text_of("C").unwrap(), "a & b");
        assert_eq!(root.text_of("D").unwrap(), "");
        assert!(root.text_of("E").is_err());
    }

    #[test]
    fn malformed() {
        assert!(Element::parse("<A><B></A>").is_err());
        assert!(Element::parse("<A>").is_err());
        assert!(Element::parse("").is_err());
    }
}
