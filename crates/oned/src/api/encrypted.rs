//! OpenNebula's encrypted attributes (`*_ENCRYPTED_ATTR` in oned.conf): values kept and shown
//! encrypted with the zone's ONE_KEY (`.one/one_key`, the same file on every server), as
//! `Template::encrypt` leaves them: AES-256-CBC under the key's first 32 bytes with a zero IV,
//! PKCS#7 padding, in base64 (`one_util::aes256cbc_encrypt`). A value that already decrypts
//! is left as it is, so writing a template back never encrypts twice. An administrator's
//! `info(id, true)` shows them decrypted (`RequestManagerInfo`).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use template::{Template, Value};

use super::restricted::Ras;
use super::Ctx;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The families with encrypted attributes: their table, oned.conf's list, and the shipped
/// oned.conf's list used when oned.conf names none.
const LISTS: [(&str, &str, &[&str]); 10] = [
    ("vm_pool", "VM_ENCRYPTED_ATTR", &["CONTEXT/PASSWORD"]),
    // VM templates hold `VirtualMachineTemplate`s, network templates
    // `VirtualNetworkTemplate`s: each shares its objects' list.
    ("template_pool", "VM_ENCRYPTED_ATTR", &["CONTEXT/PASSWORD"]),
    ("vn_template_pool", "VNET_ENCRYPTED_ATTR", &[]),
    (
        "user_pool",
        "USER_ENCRYPTED_ATTR",
        &["SSH_PRIVATE_KEY", "SSH_PASSPHRASE"],
    ),
    (
        "datastore_pool",
        "DATASTORE_ENCRYPTED_ATTR",
        &["RESTIC_PASSWORD", "NETAPP_PASSWORD"],
    ),
    (
        "document_pool",
        "DOCUMENT_ENCRYPTED_ATTR",
        &["PROVISION_BODY"],
    ),
    ("host_pool", "HOST_ENCRYPTED_ATTR", &[]),
    ("cluster_pool", "CLUSTER_ENCRYPTED_ATTR", &[]),
    ("image_pool", "IMAGE_ENCRYPTED_ATTR", &[]),
    ("vnet_pool", "VNET_ENCRYPTED_ATTR", &[]),
];

/// The encrypted attributes of the family kept in `table`, grouped (`NAME` or `VEC/SUB`).
pub fn of_table(ctx: &Ctx, table: &str) -> Ras {
    LISTS
        .iter()
        .find(|(t, _, _)| *t == table)
        .map(|(_, key, shipped)| super::restricted::configured(ctx, key, shipped))
        .unwrap_or_default()
}

fn key_bytes(one_key: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let bytes = one_key.as_bytes();
    let n = bytes.len().min(32);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

/// `aes256cbc_encrypt`.
pub fn seal(one_key: &str, plain: &str) -> String {
    let sealed = Encryptor::new(&key_bytes(one_key).into(), &[0u8; 16].into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// `aes256cbc_decrypt`: the plain text, if `text` is base64 of a whole encryption under the key.
pub fn open(one_key: &str, text: &str) -> Option<String> {
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .filter(|b| !b.is_empty())?;
    let plain = Decryptor::new(&key_bytes(one_key).into(), &[0u8; 16].into())
        .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
        .ok()?;
    Some(String::from_utf8_lossy(&plain).into_owned())
}

/// `Template::encrypt`: each listed single attribute (even empty) and each listed key of the
/// listed vectors (when not empty) encrypted, unless it already decrypts. Whether anything
/// changed.
pub fn seal_template(one_key: &str, t: &mut Template, list: &Ras) -> bool {
    let mut changed = false;
    for (name, subs) in list {
        for a in t.attrs.iter_mut().filter(|a| a.name == *name) {
            match (&mut a.value, subs.is_empty()) {
                (Value::Single(v), true) if open(one_key, v).is_none() => {
                    *v = seal(one_key, v);
                    changed = true;
                }
                (Value::Vector(pairs), false) => {
                    for (_, v) in pairs.iter_mut().filter(|(k, _)| subs.contains(k)) {
                        if !v.is_empty() && open(one_key, v).is_none() {
                            *v = seal(one_key, v);
                            changed = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    changed
}

/// [`seal_template`] with the list of `table`'s family.
pub fn seal_in(ctx: &Ctx, table: &str, t: &mut Template) {
    let list = of_table(ctx, table);
    if !list.is_empty() {
        seal_template(&ctx.one_key, t, &list);
    }
}

/// [`seal_template`] of a template text for `table`'s family: the text to store.
pub fn seal_text(ctx: &Ctx, table: &str, text: String) -> String {
    let list = of_table(ctx, table);
    if list.is_empty() {
        return text;
    }
    let Ok(mut t) = Template::parse(&text) else {
        return text;
    };
    if seal_template(&ctx.one_key, &mut t, &list) {
        t.to_text()
    } else {
        text
    }
}

/// Whether `info(id, decrypt)` asks for the values decrypted: only an administrator's call
/// (`att.is_admin()`), with parameter `at` true.
fn asked(
    s: &crate::auth::Session,
    p: &xmlrpc::Params<'_>,
    at: usize,
) -> Result<bool, xmlrpc::Fault> {
    if !s.is_admin() {
        return Ok(false);
    }
    Ok(p.opt_bool(at)?.unwrap_or(false))
}

/// `info(id, decrypt)`'s answer `body` of `table`'s family: decrypted if the call asks for it
/// and may (`object->decrypt()` in `RequestManagerInfo`).
pub fn answer(
    ctx: &Ctx,
    s: &crate::auth::Session,
    p: &xmlrpc::Params<'_>,
    table: &str,
    body: String,
) -> Result<String, xmlrpc::Fault> {
    answer_at(ctx, s, p, 1, table, body)
}

/// [`answer`] for a call whose `decrypt` is parameter `at` (`one.template.info(id, extended,
/// decrypt)`).
pub fn answer_at(
    ctx: &Ctx,
    s: &crate::auth::Session,
    p: &xmlrpc::Params<'_>,
    at: usize,
    table: &str,
    body: String,
) -> Result<String, xmlrpc::Fault> {
    if !asked(s, p, at)? {
        return Ok(body);
    }
    let list = of_table(ctx, table);
    if list.is_empty() {
        return Ok(body);
    }
    Ok(open_in_body(&ctx.one_key, &body, &list))
}

/// `Template::decrypt` on an answer's XML: each listed value (`<NAME><![CDATA[x]]></NAME>`,
/// or inside each `<VEC>` element for `VEC/SUB`) that decrypts, decrypted.
pub fn open_in_body(one_key: &str, body: &str, list: &Ras) -> String {
    let mut out = body.to_string();
    for (name, subs) in list {
        if subs.is_empty() {
            out = open_elements(one_key, &out, name);
            continue;
        }
        let (start, end) = (format!("<{name}>"), format!("</{name}>"));
        let mut done = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&start) {
            let Some(len) = rest[at..].find(&end) else {
                break;
            };
            done.push_str(&rest[..at]);
            let mut inner = rest[at..at + len].to_string();
            for sub in subs {
                inner = open_elements(one_key, &inner, sub);
            }
            done.push_str(&inner);
            rest = &rest[at + len..];
        }
        done.push_str(rest);
        out = done;
    }
    out
}

fn open_elements(one_key: &str, text: &str, name: &str) -> String {
    let (start, end) = (format!("<{name}><![CDATA["), format!("]]></{name}>"));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&start) {
        let from = at + start.len();
        let Some(len) = rest[from..].find(&end) else {
            break;
        };
        out.push_str(&rest[..from]);
        let value = &rest[from..from + len];
        match open(one_key, value) {
            Some(plain) => {
                out.push_str(&template::xml_text(&plain).replace("]]>", "]]]]><![CDATA[>"))
            }
            None => out.push_str(value),
        }
        rest = &rest[from + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "6d1f5bb6e8de2b7f62a6c4b7ff0e4d1c2b3a495867f5e4d3c2b1a09f8e7d6c5b";

    #[test]
    fn values_are_sealed_once_and_open_again() {
        let sealed = seal(KEY, "secret");
        // What OpenSSL makes of it with the key's first 32 characters and a zero IV:
        // `openssl enc -aes-256-cbc -K <hex of KEY[..32]> -iv 0 -base64 -A`.
        assert_eq!(sealed, "BFN0CcV0RmpHSV0LaLy7yw==");
        assert_eq!(open(KEY, &sealed).as_deref(), Some("secret"));
        assert_eq!(open(KEY, "secret"), None);
        assert_eq!(open("another key, another key, another", &sealed), None);
        // A zero IV: the same value always seals the same way, as OpenNebula's.
        assert_eq!(seal(KEY, "secret"), sealed);
        let list = super::super::restricted::grouped(vec![
            "CONTEXT/PASSWORD".into(),
            "SSH_PASSPHRASE".into(),
        ]);
        let mut t = Template::parse(
            "CONTEXT = [ PASSWORD = pw, USERNAME = root ]\nSSH_PASSPHRASE = \"\"\nPASSWORD = x",
        )
        .unwrap();
        assert!(seal_template(KEY, &mut t, &list));
        let ctx = t.get("CONTEXT").unwrap();
        assert_eq!(
            open(KEY, ctx.vector_get("PASSWORD").unwrap()).as_deref(),
            Some("pw")
        );
        assert_eq!(ctx.vector_get("USERNAME"), Some("root"));
        assert_eq!(t.single("PASSWORD"), Some("x"));
        assert_ne!(t.single("SSH_PASSPHRASE"), Some(""));
        let again = t.clone();
        assert!(!seal_template(KEY, &mut t, &list), "never twice");
        assert_eq!(t, again);
        let body = format!(
            "<VM><PASSWORD><![CDATA[{sealed}]]></PASSWORD>{}</VM>",
            t.to_xml()
        );
        let opened = open_in_body(KEY, &body, &list);
        assert!(
            opened.contains("<CONTEXT><PASSWORD><![CDATA[pw]]></PASSWORD>"),
            "{opened}"
        );
        assert!(
            opened.contains("<SSH_PASSPHRASE><![CDATA[]]></SSH_PASSPHRASE>"),
            "{opened}"
        );
        assert!(
            opened.starts_with(&format!("<VM><PASSWORD><![CDATA[{sealed}]]>")),
            "{opened}"
        );
    }
}
