//! Parser and printer for OpenNebula template syntax.
//!
//! The same syntax is used by `oned.conf` and by object templates (VM, host,
//! user ... templates sent over the API):
//!
//! ```text
//! # a comment
//! PORT = 2633
//! LISTEN_ADDRESS = "0.0.0.0"
//! DB = [ BACKEND = "sqlite",
//!        TIMEOUT = 2500 ]
//! ```
//!
//! * Attribute names (and vector keys) are case-insensitive and stored
//!   upper-cased. A valid name ([`is_attribute_name`]) starts with a letter or
//!   `_` and holds letters, digits, `_`, `-` and `.`. The parser reads any
//!   run of characters that cannot end a name (so that text stored before
//!   names were checked still loads); [`Template::validate`], which every input
//!   from a client goes through, refuses the rest.
//! * A value is a double-quoted string (may span lines; `\"` and `\\` are
//!   escapes, any other backslash is literal), an unquoted token (trimmed,
//!   running to the end of the line, a `#`, or inside a vector to `,`/`]`),
//!   or a vector `[ K = V, ... ]` whose pairs are separated by commas and/or
//!   newlines.
//! * `#` starts a comment outside quoted strings; blank lines are ignored and
//!   CRLF line endings are accepted (normalised to `\n`).
//! * Repeated attributes are kept in order.
//!
//! [`Template::to_text`] prints a form that [`Template::parse`] reads back
//! unchanged; [`Template::to_xml`] prints OpenNebula's compact XML form, which is
//! well-formed XML 1.0 whatever the template holds (see [`Template::to_xml`]).

use std::fmt;
use std::str::FromStr;

/// The value of a template attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain (quoted or unquoted) value.
    Single(String),
    /// A vector of `KEY = value` pairs, in source order.
    Vector(Vec<(String, String)>),
}

impl Value {
    /// The string if this is a [`Value::Single`].
    pub fn as_single(&self) -> Option<&str> {
        match self {
            Value::Single(s) => Some(s),
            Value::Vector(_) => None,
        }
    }

    /// The pairs if this is a [`Value::Vector`].
    pub fn as_vector(&self) -> Option<&[(String, String)]> {
        match self {
            Value::Single(_) => None,
            Value::Vector(v) => Some(v),
        }
    }
}

/// One `NAME = value` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Upper-cased attribute name.
    pub name: String,
    /// The attribute's value.
    pub value: Value,
    /// 1-based line where the name appeared; 0 for attributes added by code.
    pub line: usize,
}

impl Attribute {
    /// Case-insensitive lookup of `key` inside a vector value (first match).
    /// Returns `None` for single values.
    pub fn vector_get(&self, key: &str) -> Option<&str> {
        self.value
            .as_vector()
            .and_then(|pairs| vector_get(pairs, key))
    }
}

/// Case-insensitive lookup of `key` in vector pairs (first match).
pub fn vector_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Sets `key` in vector pairs to `value`: any pair of that name (in any case) replaced by one
/// at the end (`VectorAttribute::replace`).
pub fn vector_set(pairs: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    pairs.push((key.to_string(), value.into()));
}

/// Sets `key` to `value` in vector pairs kept in name order (as OpenNebula prints them), or
/// removes it for `None`.
pub fn vector_put_sorted(pairs: &mut Vec<(String, String)>, key: &str, value: Option<String>) {
    pairs.retain(|(k, _)| k != key);
    if let Some(value) = value {
        pairs.push((key.to_string(), value));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// The value of `key` in vector pairs read as a `T`, leading blanks skipped
/// (`VectorAttribute::vector_value(name, T&)`).
pub fn vector_get_as<T: std::str::FromStr>(pairs: &[(String, String)], key: &str) -> Option<T> {
    vector_get(pairs, key)?.trim_start().parse().ok()
}

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected / what went wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// An ordered list of attributes (repeats allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    /// Attributes in source / insertion order.
    pub attrs: Vec<Attribute>,
}

impl Template {
    /// Parses a template given either as text (`NAME = value`) or, as OpenNebula also accepts
    /// and pyone sends for dict templates, as XML (`<TEMPLATE><NAME>value</NAME>...`).
    pub fn parse(text: &str) -> Result<Template, ParseError> {
        if text.trim_start().starts_with('<') {
            return xml::parse(text);
        }
        Template::parse_text(text)
    }

    /// Parses a template from a client: [`Template::parse`], then [`Template::validate`]. Use it
    /// for every template that is going to be stored.
    pub fn parse_checked(text: &str) -> Result<Template, ParseError> {
        let t = Template::parse(text)?;
        t.validate()?;
        Ok(t)
    }

    /// Checks what the parser lets through but must never be stored: every attribute name and
    /// vector key is an [`is_attribute_name`], and no value holds a character that XML 1.0
    /// cannot carry (control characters other than tab, newline and carriage return). Such a
    /// template could not be shown as XML, so pyone (expat) would fail on it and on its pool.
    pub fn validate(&self) -> Result<(), ParseError> {
        let bad_value = |line: usize, what: String, v: &str| -> Result<(), ParseError> {
            match v.chars().find(|&c| !is_xml_char(c)) {
                None => Ok(()),
                Some(c) => Err(ParseError {
                    line,
                    message: format!("invalid character {} in the value of {what}", show_char(c)),
                }),
            }
        };
        for a in &self.attrs {
            check_name(a.line, &a.name, "attribute name")?;
            match &a.value {
                Value::Single(v) => bad_value(a.line, format!("\"{}\"", a.name), v)?,
                Value::Vector(pairs) => {
                    for (k, v) in pairs {
                        check_name(a.line, k, &format!("key in vector \"{}\"", a.name))?;
                        bad_value(a.line, format!("\"{k}\" in vector \"{}\"", a.name), v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Parses template text (`NAME = value` syntax only).
    pub fn parse_text(text: &str) -> Result<Template, ParseError> {
        let normalised = normalise_line_ends(text);
        let mut p = Parser {
            text: &normalised,
            pos: 0,
            line: 1,
        };
        let mut attrs = Vec::new();
        while let Some(attr) = p.attribute()? {
            attrs.push(attr);
        }
        Ok(Template { attrs })
    }

    /// First attribute called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.attrs
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// All attributes called `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> {
        self.attrs
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
    }

    /// Value of the first attribute called `name` that holds a single value.
    pub fn single(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(name))
            .find_map(|a| a.value.as_single())
    }

    /// The single value `name` read as a `T`, leading blanks skipped, as OpenNebula's
    /// `Template::get(name, T&)` reads numbers; `None` if absent or not one.
    pub fn single_as<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.single(name)?.trim_start().parse().ok()
    }

    /// Pairs of the first attribute called `name` that holds a vector.
    pub fn vector(&self, name: &str) -> Option<&[(String, String)]> {
        self.attrs
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(name))
            .find_map(|a| a.value.as_vector())
    }

    /// Replaces every attribute called `name` with one attribute holding
    /// `value`, placed where the first one was (or appended). The stored name
    /// is upper-cased.
    pub fn set(&mut self, name: &str, value: Value) {
        let first = self
            .attrs
            .iter()
            .position(|a| a.name.eq_ignore_ascii_case(name));
        self.remove(name);
        let attr = Attribute {
            name: name.to_ascii_uppercase(),
            value,
            line: 0,
        };
        match first {
            Some(i) => self.attrs.insert(i, attr),
            None => self.attrs.push(attr),
        }
    }

    /// Appends an attribute (the name is upper-cased).
    pub fn push(&mut self, name: &str, value: Value) {
        self.attrs.push(Attribute {
            name: name.to_ascii_uppercase(),
            value,
            line: 0,
        });
    }

    /// Removes every attribute called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.attrs.retain(|a| !a.name.eq_ignore_ascii_case(name));
    }

    /// Prints the template as text: `KEY="value"` lines, vectors as
    /// `KEY=[\n  A="b",\n  C="d" ]`. Round-trips through [`Template::parse`].
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for a in &self.attrs {
            out.push_str(&a.name);
            out.push('=');
            match &a.value {
                Value::Single(s) => push_quoted(&mut out, s),
                Value::Vector(pairs) if pairs.is_empty() => out.push_str("[ ]"),
                Value::Vector(pairs) => {
                    out.push('[');
                    for (i, (k, v)) in pairs.iter().enumerate() {
                        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
                        out.push_str(k);
                        out.push('=');
                        push_quoted(&mut out, v);
                    }
                    out.push_str(" ]");
                }
            }
            out.push('\n');
        }
        out
    }

    /// Prints OpenNebula's compact XML form, attributes and vector keys in name order:
    /// `<TEMPLATE><KEY><![CDATA[v]]></KEY><VEC><A><![CDATA[b]]></A></VEC></TEMPLATE>`.
    ///
    /// The result is well-formed XML 1.0 whatever the template holds, since one bad object
    /// would otherwise make pyone fail on its whole pool for every user:
    /// * an attribute or vector key that is not an [`is_attribute_name`] (stored before names
    ///   were checked, e.g. `1BAD` or `A:B`) is skipped, never printed as a tag. Skipping rather
    ///   than renaming is deterministic and cannot collide with a real attribute;
    /// * a character XML 1.0 cannot carry is printed as U+FFFD (see [`xml_text`]);
    /// * `]]>` inside a value is split across two CDATA sections.
    pub fn to_xml(&self) -> String {
        self.to_xml_as("TEMPLATE")
    }

    /// [`Template::to_xml`] with another root element (`USER_TEMPLATE`...). `root` must be a
    /// valid element name; it is the caller's constant, not data.
    pub fn to_xml_as(&self, root: &str) -> String {
        let mut out = format!("<{root}>");
        // OpenNebula keeps attributes in a multimap and a vector's in a map: both print in name
        // order (attributes of one name in the order they came).
        let mut attrs: Vec<&Attribute> = self
            .attrs
            .iter()
            .filter(|a| is_attribute_name(&a.name))
            .collect();
        attrs.sort_by(|a, b| a.name.cmp(&b.name));
        for a in attrs {
            match &a.value {
                Value::Single(s) => push_xml_element(&mut out, &a.name, s),
                Value::Vector(pairs) => {
                    out.push('<');
                    out.push_str(&a.name);
                    out.push('>');
                    let mut pairs: Vec<&(String, String)> =
                        pairs.iter().filter(|(k, _)| is_attribute_name(k)).collect();
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                    for (k, v) in pairs {
                        push_xml_element(&mut out, k, v);
                    }
                    out.push_str("</");
                    out.push_str(&a.name);
                    out.push('>');
                }
            }
        }
        out.push_str("</");
        out.push_str(root);
        out.push('>');
        out
    }
}

impl FromStr for Template {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Reads CRLF, and any run of CRs before a LF, as LF. Whole runs go: replacing only "\r\n"
/// turned "\r\r\n" into a "\r\n" inside a value, which `to_text` printed and the next parse
/// read as "\n" (found by the fuzz target `template_parse`).
fn normalise_line_ends(text: &str) -> std::borrow::Cow<'_, str> {
    // Stored templates have no CR: pool answers parse thousands of them.
    if !text.contains('\r') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut crs = 0usize;
    for c in text.chars() {
        match c {
            '\r' => crs += 1,
            '\n' => {
                crs = 0;
                out.push('\n');
            }
            c => {
                out.extend(std::iter::repeat_n('\r', crs));
                crs = 0;
                out.push(c);
            }
        }
    }
    out.extend(std::iter::repeat_n('\r', crs));
    std::borrow::Cow::Owned(out)
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

mod xml;

#[cfg(test)]
mod wellformed;

fn push_xml_element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str("><![CDATA[");
    // "]]>" cannot appear inside CDATA: end the section after "]]" and
    // start a new one for ">".
    out.push_str(&xml_text(value).replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]></");
    out.push_str(name);
    out.push('>');
}

/// Whether `c` may appear in an XML 1.0 document at all (the `Char` production): tab, newline,
/// carriage return and everything from U+0020 but the surrogates (which a Rust `char` cannot
/// be), U+FFFE and U+FFFF. Not even a character reference (`&#1;`) can carry the others.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` with every character XML 1.0 cannot carry replaced by U+FFFD (the Unicode replacement
/// character). Replacing rather than dropping keeps a trace that something was there, so
/// `a\u{1}b` never reads as another object's `ab`. Borrowed when nothing needs replacing.
pub fn xml_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

/// Whether `name` may be an attribute name or vector key: an ASCII letter or `_`, then ASCII
/// letters, digits, `_`, `-` and `.`. This is the name syntax templates always had, minus
/// names starting with a digit, `-` or `.`: those are not XML names, so they could never be
/// printed as a tag. Every such name is also a valid XML 1.0 `NCName`, so namespace-aware
/// parsers (pyone's minidom) accept it too; a `:` would make it a namespace prefix.
pub fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_name(line: usize, name: &str, what: &str) -> Result<(), ParseError> {
    if is_attribute_name(name) {
        return Ok(());
    }
    let shown: String = name.chars().map(show_char).collect();
    Err(ParseError {
        line,
        message: format!(
            "invalid {what} \"{shown}\": it must start with a letter or '_' and hold only letters, digits, '_', '-' and '.'"
        ),
    })
}

/// A character as an error message shows it: itself, or `\xNN` / `\u{NNNN}` when it is a
/// control character or could not be carried by the XML answer.
fn show_char(c: char) -> String {
    if c.is_control() || !is_xml_char(c) {
        let n = u32::from(c);
        if n <= 0xff {
            format!("\\x{n:02X}")
        } else {
            format!("\\u{{{n:04X}}}")
        }
    } else {
        c.to_string()
    }
}

/// Characters the parser reads as part of a name: anything that cannot end one. This is wider
/// than [`is_attribute_name`] on purpose, so that a template stored with a bad name (before
/// names were checked) still loads and the rest of it can be shown.
fn is_name_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '=' | '#' | '[' | ']' | ',' | '"'))
}

fn describe(c: Option<char>) -> String {
    match c {
        None => "end of input".to_string(),
        Some('\n') => "end of line".to_string(),
        Some(c) => format!("'{c}'"),
    }
}

/// Walks the text itself (`pos` is a byte offset on a character boundary), rather than a copy
/// of it as a `Vec<char>`: pool answers parse thousands of templates.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..)?.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn err<T>(&self, line: usize, message: String) -> Result<T, ParseError> {
        // Messages quote names and characters from the input; a control character among them
        // would end up in the XML-RPC answer, so it is shown as `\xNN` instead.
        let message = message.chars().map(show_char).collect();
        Err(ParseError { line, message })
    }

    /// Skips spaces, tabs and stray carriage returns (not newlines).
    fn skip_hspace(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    /// Skips a `#` comment up to (not including) the newline.
    fn skip_comment(&mut self) {
        if self.peek() == Some('#') {
            while !matches!(self.peek(), None | Some('\n')) {
                self.bump();
            }
        }
    }

    /// Skips whitespace, newlines and comments.
    fn skip_blank(&mut self) {
        loop {
            self.skip_hspace();
            self.skip_comment();
            if self.peek() == Some('\n') {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn name(&mut self) -> String {
        // OpenNebula's lexer drops a character no rule matches, so a quoted name stands for
        // the name: its Ruby CLI sends `BACKUP_CONFIG = ["MODE"="FULL"]` (`onevm backupmode`).
        // `"` is one byte: the character after it starts at `pos + 1`.
        let quoted = self.peek() == Some('"')
            && self
                .text
                .get(self.pos + 1..)
                .and_then(|rest| rest.chars().next())
                .is_some_and(is_name_char);
        if quoted {
            self.bump();
        }
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
            s.push(c.to_ascii_uppercase());
            self.bump();
        }
        if quoted && self.peek() == Some('"') {
            self.bump();
        }
        s
    }

    /// Reads a quoted string; the cursor is on the opening quote. `what` names it in the error,
    /// built only then: a pool answer parses thousands of templates that have none.
    fn quoted(&mut self, what: impl FnOnce() -> String) -> Result<String, ParseError> {
        let start = self.line;
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return self.err(start, format!("unterminated string in {}", what())),
                Some('"') => return Ok(s),
                Some('\\') => match self.peek() {
                    Some(c @ ('"' | '\\')) => {
                        s.push(c);
                        self.bump();
                    }
                    _ => s.push('\\'),
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// Reads an unquoted token up to a newline, `#`, end of input or one of
    /// `stops`; the result is trimmed.
    fn unquoted(&mut self, stops: &[char]) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || c == '#' || stops.contains(&c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s.trim().to_string()
    }

    fn attribute(&mut self) -> Result<Option<Attribute>, ParseError> {
        self.skip_blank();
        if self.peek().is_none() {
            return Ok(None);
        }
        let line = self.line;
        let name = self.name();
        if name.is_empty() {
            let found = describe(self.peek());
            return self.err(line, format!("expected attribute name, found {found}"));
        }
        self.skip_hspace();
        if self.peek() != Some('=') {
            return self.err(line, format!("expected '=' after \"{name}\""));
        }
        self.bump();
        self.skip_hspace();
        let value = match self.peek() {
            Some('"') => Value::Single(self.quoted(|| format!("attribute \"{name}\""))?),
            Some('[') => Value::Vector(self.vector(&name)?),
            None | Some('\n' | '#') => {
                return self.err(
                    line,
                    format!("expected value after '=' in attribute \"{name}\""),
                )
            }
            Some(_) => Value::Single(self.unquoted(&[])),
        };
        self.skip_hspace();
        self.skip_comment();
        match self.peek() {
            None | Some('\n') => Ok(Some(Attribute { name, value, line })),
            c => {
                let (l, found) = (self.line, describe(c));
                self.err(
                    l,
                    format!("expected end of line after value of \"{name}\", found {found}"),
                )
            }
        }
    }

    /// Reads a vector; the cursor is on the opening bracket.
    fn vector(&mut self, name: &str) -> Result<Vec<(String, String)>, ParseError> {
        let start = self.line;
        let unterminated = || format!("unterminated vector \"{name}\"");
        self.bump();
        let mut pairs = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => return self.err(start, unterminated()),
                Some(']') => {
                    self.bump();
                    return Ok(pairs);
                }
                _ => {}
            }
            let key = self.name();
            if key.is_empty() {
                let found = describe(self.peek());
                return self.err(
                    self.line,
                    format!("expected key or ']' in vector \"{name}\", found {found}"),
                );
            }
            self.skip_hspace();
            match self.peek() {
                Some('=') => {
                    self.bump();
                }
                None => return self.err(start, unterminated()),
                Some(_) => {
                    return self.err(
                        self.line,
                        format!("expected '=' after \"{key}\" in vector \"{name}\""),
                    )
                }
            }
            self.skip_hspace();
            let value = match self.peek() {
                Some('"') => self.quoted(|| format!("vector \"{name}\" key \"{key}\""))?,
                Some('[') => {
                    return self.err(
                        self.line,
                        format!("nested vector not allowed for \"{key}\" in vector \"{name}\""),
                    )
                }
                None => return self.err(start, unterminated()),
                Some(',' | ']' | '\n' | '#') => {
                    return self.err(
                        self.line,
                        format!("expected value for \"{key}\" in vector \"{name}\""),
                    )
                }
                Some(_) => self.unquoted(&[',', ']']),
            };
            pairs.push((key.clone(), value));
            self.skip_hspace();
            self.skip_comment();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']' | '\n') => {}
                None => return self.err(start, unterminated()),
                c => {
                    let found = describe(c);
                    return self.err(
                        self.line,
                        format!(
                            "expected ',' or ']' after \"{key}\" in vector \"{name}\", found {found}"
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz_props;
