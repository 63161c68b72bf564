//! Small helpers for OpenNebula's compact XML bodies.
//!
//! Every value OneHA prints goes through [`esc`] or [`cdata`] (templates through
//! `Template::to_xml`), so a body is well-formed XML 1.0 whatever the database holds, even a
//! value stored before the edge checked it: one bad object would otherwise make pyone fail on
//! its whole pool, for every user.

/// Escapes text for an element body. A character XML 1.0 cannot carry at all is written as
/// U+FFFD (see `template::xml_text`).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in template::xml_text(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Wraps text in CDATA, splitting any `]]>` it contains; characters XML 1.0 cannot carry are
/// written as U+FFFD, as in [`esc`].
pub fn cdata(s: &str) -> String {
    format!(
        "<![CDATA[{}]]>",
        template::xml_text(s).replace("]]>", "]]]]><![CDATA[>")
    )
}

/// Writes OpenNebula's compact XML into a string, element by element: every name is written
/// once, next to its value, in the order OpenNebula's XSDs give, and every text is escaped.
pub struct Xml<'a> {
    out: &'a mut String,
}

impl<'a> Xml<'a> {
    pub fn new(out: &'a mut String) -> Xml<'a> {
        Xml { out }
    }

    /// `<name>`, then `body`'s elements, then `</name>`.
    pub fn elem(&mut self, name: &str, body: impl FnOnce(&mut Xml<'_>)) -> &mut Self {
        self.open(name);
        body(&mut Xml { out: self.out });
        self.close(name)
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>value</name>` for a number (or anything whose text needs no escaping).
    pub fn num(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write;
        // Writing into a String cannot fail.
        let _ = write!(self.out, "<{name}>{value}</{name}>");
        self
    }

    /// An OpenNebula `ObjectCollection`: `<name><ID>..</ID>...</name>`.
    pub fn ids(&mut self, name: &str, list: &[i64]) -> &mut Self {
        self.elem(name, |x| {
            for id in list {
                x.num("ID", id);
            }
        })
    }

    /// `<name>text</name>`, escaped.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.open(name);
        self.out.push_str(&esc(value));
        self.close(name)
    }

    /// `<name/>`-like empty element, written as OpenNebula does: `<name></name>`.
    pub fn empty(&mut self, name: &str) -> &mut Self {
        self.open(name).close(name)
    }

    /// `<name><![CDATA[value]]></name>`, as OpenNebula's templates write their values.
    pub fn cdata(&mut self, name: &str, value: &str) -> &mut Self {
        let value = cdata(value);
        self.open(name).raw(&value).close(name)
    }

    /// An already well-formed fragment (a template's XML).
    pub fn raw(&mut self, fragment: &str) -> &mut Self {
        self.out.push_str(fragment);
        self
    }
}

/// Builds one XML body.
pub fn build(body: impl FnOnce(&mut Xml<'_>)) -> String {
    let mut out = String::new();
    body(&mut Xml::new(&mut out));
    out
}

/// Builds one XML body with a writer that appends to a string (the shape pool printing uses).
pub fn build_with(body: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    body(&mut out);
    out
}

/// The head of every owned object: `ID`, `UID`, `GID`, `UNAME`, `GNAME`, `NAME`, the `LOCK`
/// of a lockable family that has it there (`lock`), `PERMISSIONS`.
pub fn owned_head(x: &mut Xml<'_>, h: &sqlstore::Head, lock: Option<&sqlstore::Lock>) {
    owner_and_name(x, h);
    if let Some(l) = lock {
        self::lock(x, l);
    }
    permissions(x, h.owned.perms);
}

/// `ID`, `UID`, `GID`, `UNAME`, `GNAME`, `NAME`: how every owned object starts, whatever
/// its family puts next.
pub fn owner_and_name(x: &mut Xml<'_>, h: &sqlstore::Head) {
    x.num("ID", h.owned.oid)
        .num("UID", h.owned.uid)
        .num("GID", h.owned.gid)
        .text("UNAME", &h.uname)
        .text("GNAME", &h.gname)
        .text("NAME", &h.name);
}

/// `LOCK` (`LOCKED`, `OWNER`, `TIME`, `REQ_ID`) while the object is locked, nothing otherwise
/// (`PoolObjectSQL::lock_db_to_xml`).
pub fn lock(x: &mut Xml<'_>, l: &sqlstore::Lock) {
    if l.level == 0 {
        return;
    }
    x.elem("LOCK", |x| {
        x.num("LOCKED", l.level)
            .num("OWNER", l.owner)
            .num("TIME", l.time)
            .num("REQ_ID", l.req_id);
    });
}

/// The `PERMISSIONS` element: nine bits, owner u m a, group u m a, other u m a.
pub fn permissions(x: &mut Xml<'_>, perms: i64) {
    const NAMES: [&str; 9] = [
        "OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M",
        "OTHER_A",
    ];
    x.elem("PERMISSIONS", |x| {
        for (i, n) in NAMES.iter().enumerate() {
            x.num(n, (perms >> (8 - i)) & 1);
        }
    });
}

/// The permission bits of a `PERMISSIONS` element as [`permissions`] prints them.
pub fn read_permissions(el: &wire::xml::Element) -> Result<i64, String> {
    const NAMES: [&str; 9] = [
        "OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M",
        "OTHER_A",
    ];
    let mut perms = 0;
    for (i, n) in NAMES.iter().enumerate() {
        match el.int_of(n).map_err(|e| e.to_string())? {
            0 => {}
            1 => perms |= 1 << (8 - i),
            other => return Err(format!("{n} is {other}, not 0 or 1")),
        }
    }
    Ok(perms)
}

/// A `TEMPLATE` element read back into a stored template (absent: empty), checked as a client's.
pub fn read_template(el: Option<&wire::xml::Element>) -> Result<template::Template, String> {
    let mut template = template::Template::default();
    for a in el.map(|t| t.children.as_slice()).unwrap_or_default() {
        let value = if a.children.is_empty() {
            template::Value::Single(a.text.clone())
        } else {
            template::Value::Vector(
                a.children
                    .iter()
                    .map(|k| (k.name.clone(), k.text.clone()))
                    .collect(),
            )
        };
        template.push(&a.name, value);
    }
    template.validate().map_err(|e| e.message)?;
    Ok(template)
}

/// A stored template as `<root>...</root>`. A template that no longer parses is shown empty,
/// with a warning and a count ([`CORRUPT_TEMPLATES`]): one bad row must not make a whole pool
/// unreadable, and an update refuses to merge into it (`api::merged`).
pub fn template(text: &str, root: &str) -> String {
    match template::Template::parse(text) {
        Ok(t) => t.to_xml_as(root),
        Err(e) => {
            corrupt_template(&e);
            format!("<{root}></{root}>")
        }
    }
}

/// Stored templates that did not parse when shown, since start.
pub static CORRUPT_TEMPLATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn corrupt_template(e: &dyn std::fmt::Display) {
    CORRUPT_TEMPLATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(error = %e, "a stored template does not parse; shown empty");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_escapes_and_nests() {
        let body = build(|x| {
            x.elem("A", |x| {
                x.num("ID", 3).text("NAME", "a<b").empty("E");
            });
        });
        assert_eq!(body, "<A><ID>3</ID><NAME>a&lt;b</NAME><E></E></A>");
    }

    #[test]
    fn issue_10_escaped_text_is_always_legal_xml() {
        let nasty = "a\u{1}b\u{1b}\u{0}\u{FFFF}<&>\"'\t😀]]>";
        assert_eq!(
            esc(nasty),
            "a\u{FFFD}b\u{FFFD}\u{FFFD}\u{FFFD}&lt;&amp;&gt;&quot;&apos;\t😀]]&gt;"
        );
        assert_eq!(
            cdata(nasty),
            "<![CDATA[a\u{FFFD}b\u{FFFD}\u{FFFD}\u{FFFD}<&>\"'\t😀]]]]><![CDATA[>]]>"
        );
    }
}
