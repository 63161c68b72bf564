//! Checks of what a client sends, made at the edge before anything is stored (issue 10).
//!
//! Object names follow OpenNebula 7.0's `PoolObjectSQL::name_is_valid` (`src/pool/PoolObjectSQL.cc`),
//! with the extra characters users may not have (`User::INVALID_NAME_CHARS`, `src/um/User.cc`)
//! and the host name rules of `HostPool::allocate` (`src/host/HostPool.cc`). OneHA also refuses
//! every control character: OpenNebula never sees most of them, since xmlrpc-c's expat refuses
//! a call that carries one, while OneHA's codec reads them; stored, they made the object and its
//! whole pool unreadable for pyone.
//!
//! Templates go through [`template::Template::parse_checked`]: attribute names must be XML
//! names and values XML 1.0 characters, so whatever is stored can be answered as XML.

use template::Template;

/// `PoolObjectSQL::INVALID_NAME_CHARS` (`src/pool/PoolObjectSQL.cc`).
const INVALID_NAME_CHARS: &str = "&|:\\\";/'#{}$<>\t\n\u{b}\u{c}\r";
/// `User::INVALID_NAME_CHARS` (`src/um/User.cc`), refused in user names on top of the above.
const USER_INVALID_NAME_CHARS: &str = " :\t\n\u{b}\u{c}\r";
/// `name_is_valid`'s limit, in bytes as OpenNebula's `std::string::length`.
const MAX_NAME_LEN: usize = 128;

/// A character as an error message shows it: control characters as `\xNN`, since the message
/// goes back in an XML answer that could not carry most of them (and a raw tab or newline in a
/// one-line message says nothing).
fn shown(c: char) -> String {
    if c.is_control() {
        format!("\\x{:02X}", u32::from(c))
    } else {
        c.to_string()
    }
}

/// OpenNebula's `name_is_valid(name, extra_chars)`: not empty, none of its invalid characters
/// nor `extra`, at most 128 bytes (checked in that order, as OpenNebula does). Plus: no control
/// character at all. The message is OpenNebula's.
fn name_is_valid(name: &str, extra: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid NAME, it cannot be empty".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_control() || INVALID_NAME_CHARS.contains(c) || extra.contains(c))
    {
        return Err(format!("Invalid NAME, char '{}' is not allowed", shown(c)));
    }
    if name.len() > MAX_NAME_LEN {
        return Err("Invalid NAME, max length is 128 chars".to_string());
    }
    Ok(())
}

/// The name of a VM, template, image, network, datastore or group (allocate, clone, rename).
pub fn object_name(name: &str) -> Result<(), String> {
    name_is_valid(name, "")
}

/// A user name: also no space or `:`; `UserPool::allocate` ends the message with a period.
pub fn user_name(name: &str) -> Result<(), String> {
    name_is_valid(name, USER_INVALID_NAME_CHARS).map_err(|m| m + ".")
}

/// `User::INVALID_PASS_CHARS` (`src/um/User.cc`).
const INVALID_PASS_CHARS: &str = " \t\n\u{b}\u{c}\r";

/// The longest password a driver takes, in bytes (`validate_password_length`, `src/um/User.cc`);
/// other drivers have no limit there (the request size limit still holds).
fn max_password_len(driver: &str) -> Option<usize> {
    Some(match driver {
        "ssh" => 16 * 1024,
        "saml" => 12 * 1024,
        "x509" | "server_x509" => 64 * 1024,
        "server_cipher" => 4096,
        "core" | "ldap" | "sunstone" => 256,
        _ => return None,
    })
}

/// OpenNebula's `User::pass_is_valid(password, driver)`, with its messages: not empty, not
/// longer than the driver allows, none of the characters it refuses.
pub fn password(password: &str, driver: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("Invalid password, it cannot be empty".to_string());
    }
    if let Some(max) = max_password_len(driver).filter(|&max| password.len() > max) {
        return Err(format!(
            "Password is longer than max allowed length. Max allowed length for the driver {driver} : {max} bytes"
        ));
    }
    match password.chars().find(|&c| INVALID_PASS_CHARS.contains(c)) {
        Some(c) => Err(format!("Invalid password, character '{c}' is not allowed")),
        None => Ok(()),
    }
}

/// A new host's name: `HostPool.cc`'s `hostname_is_valid` (2 to 63 letters, digits, `-`, `.`,
/// `_`, neither first nor last one of `-._`), then `name_is_valid`. Renaming a host only checks
/// the latter ([`object_name`]), as OpenNebula's `set_name` does.
pub fn host_name(name: &str) -> Result<(), String> {
    if name.len() < 2 || name.len() > 63 {
        return Err("Invalid HOSTNAME, HOSTNAME length should be greater than 1, but smaller than 64 characters".to_string());
    }
    let edge = |c: char| matches!(c, '-' | '.' | '_');
    if let Some(first) = name.chars().next().filter(|&c| edge(c)) {
        return Err(format!(
            "Invalid HOSTNAME, first character can't be '{first}'"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || edge(c)))
    {
        return Err(format!(
            "Invalid HOSTNAME, '{}' is invalid character for a HOSTNAME",
            shown(c)
        ));
    }
    if let Some(last) = name.chars().last().filter(|&c| edge(c)) {
        return Err(format!(
            "Invalid HOSTNAME, last character can't be '{last}'"
        ));
    }
    name_is_valid(name, "")
}

/// Parses a template a client sent, text or XML, as `Template::parse_str_or_xml` does, and
/// refuses what could not be stored and shown (see the module's comment). The message starts
/// as OpenNebula's (`Parse error: ...`, `Parse error: XML Template malformed.`) and says where
/// and why.
pub fn template(text: &str) -> Result<Template, String> {
    Template::parse_checked(text).map_err(|e| {
        if text.trim_start().starts_with('<') {
            format!(
                "Parse error: XML Template malformed. {} at line {}",
                e.message, e.line
            )
        } else {
            format!("Parse error: {} at line {}", e.message, e.line)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_as_opennebula_checks_them() {
        assert_eq!(
            password("", "core").unwrap_err(),
            "Invalid password, it cannot be empty"
        );
        assert_eq!(
            password("a b", "ldap").unwrap_err(),
            "Invalid password, character ' ' is not allowed"
        );
        assert_eq!(
            password(&"x".repeat(257), "core").unwrap_err(),
            "Password is longer than max allowed length. Max allowed length for the driver core : 256 bytes"
        );
        assert!(password(&"x".repeat(257), "ssh").is_ok());
        assert!(password(&"x".repeat(100_000), "mine").is_ok());
        assert!(password("s3cr:et!", "core").is_ok());
    }

    #[test]
    fn names_are_checked_as_opennebula_does() {
        assert_eq!(
            object_name("").unwrap_err(),
            "Invalid NAME, it cannot be empty"
        );
        for (name, c) in [
            ("a&b", "&"),
            ("a|b", "|"),
            ("a:b", ":"),
            ("a\\b", "\\"),
            ("a\"b", "\""),
            ("a;b", ";"),
            ("a/b", "/"),
            ("a'b", "'"),
            ("a#b", "#"),
            ("a{b", "{"),
            ("a}b", "}"),
            ("a$b", "$"),
            ("a<b", "<"),
            ("a>b", ">"),
            ("a\tb", "\\x09"),
            ("a\nb", "\\x0A"),
            ("a\u{b}b", "\\x0B"),
            ("a\u{c}b", "\\x0C"),
            ("a\rb", "\\x0D"),
            ("a\u{1}b", "\\x01"),
            ("\u{1b}[31mred", "\\x1B"),
            ("a\u{7f}", "\\x7F"),
            ("a\u{85}", "\\x85"),
        ] {
            assert_eq!(
                object_name(name).unwrap_err(),
                format!("Invalid NAME, char '{c}' is not allowed"),
                "{name:?}"
            );
        }
        assert_eq!(
            object_name(&"x".repeat(129)).unwrap_err(),
            "Invalid NAME, max length is 128 chars"
        );
        for good in ["my vm", "a-b.c_d", "😀 é", "x]]y", &"x".repeat(128)] {
            object_name(good).unwrap();
        }
        assert_eq!(
            user_name("a b").unwrap_err(),
            "Invalid NAME, char ' ' is not allowed."
        );
        assert_eq!(
            user_name("a\u{1}").unwrap_err(),
            "Invalid NAME, char '\\x01' is not allowed."
        );
        user_name("alice-1").unwrap();
    }

    #[test]
    fn host_names_are_checked_as_opennebula_7_does() {
        for (name, message) in [
            ("h", "Invalid HOSTNAME, HOSTNAME length should be greater than 1, but smaller than 64 characters"),
            ("-h1", "Invalid HOSTNAME, first character can't be '-'"),
            ("h1.", "Invalid HOSTNAME, last character can't be '.'"),
            ("h 1", "Invalid HOSTNAME, ' ' is invalid character for a HOSTNAME"),
            ("h\u{1}1", "Invalid HOSTNAME, '\\x01' is invalid character for a HOSTNAME"),
            ("hé", "Invalid HOSTNAME, 'é' is invalid character for a HOSTNAME"),
        ] {
            assert_eq!(host_name(name).unwrap_err(), message, "{name:?}");
        }
        for good in ["h1", "node-a", "h-3f2a9c1d", "n_1.example.com"] {
            host_name(good).unwrap();
        }
    }

    #[test]
    fn template_errors_say_parse_error_and_where() {
        assert_eq!(
            template("A = 1\n1BAD = x").unwrap_err(),
            "Parse error: invalid attribute name \"1BAD\": it must start with a letter or '_' and hold only letters, digits, '_', '-' and '.' at line 2"
        );
        assert!(template("<TEMPLATE><A:B>x</A:B></TEMPLATE>")
            .unwrap_err()
            .starts_with("Parse error: XML Template malformed. invalid attribute name \"A:B\""));
        assert!(template("<TEMPLATE><A>x</B></TEMPLATE>")
            .unwrap_err()
            .starts_with("Parse error: XML Template malformed. malformed XML template"));
        assert_eq!(template("A = \"]]>\"").unwrap().single("A"), Some("]]>"));
    }
}
