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

#[cfg(test)]
mod tests {
    use super::*;

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
