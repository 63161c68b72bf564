//! `one.system.*`

use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::xml::{self, Xml};
use super::{Ctx, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!(wire::method::SYSTEM_VERSION, Status, Auth::Object, version),
    method!("one.system.config", Status, Auth::Object, config),
    method!(
        wire::method::ONEHA_DB_CHECKSUM,
        Status,
        Auth::Admin("ADMIN DB CHECKSUM"),
        checksum
    ),
];

/// The OpenNebula API level OneHA speaks.
pub const API_VERSION: &str = "7.0.2";

pub async fn version(_: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    Ok(Value::String(API_VERSION.to_string()))
}

/// OpenNebula's built-in defaults (`OpenNebulaTemplate`), shown for what oned.conf leaves out.
const DEFAULTS: &str = include_str!("conf_defaults.tmpl");

/// Stands for a hidden DB value until the XML is written, then becomes a plain `***`.
const HIDDEN: &str = "***oneha-hidden***";

/// The driver vectors whose defaults are added one NAME at a time
/// (`set_multiple_conf_default`).
const BY_NAME: &[&str] = &[
    "TM_MAD_CONF",
    "DS_MAD_CONF",
    "MARKET_MAD_CONF",
    "AUTH_MAD_CONF",
    "VN_MAD_CONF",
];

/// oned.conf with OpenNebula's defaults for what it leaves out: an attribute it does not set
/// whole (`set_conf_default`), a driver vector per NAME it does not define.
fn with_defaults(conf: &template::Template) -> template::Template {
    // Parsed once: the text is built in.
    static PARSED: std::sync::LazyLock<template::Template> =
        std::sync::LazyLock::new(|| match template::Template::parse(DEFAULTS) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "the built-in oned.conf defaults do not parse");
                template::Template::default()
            }
        });
    let mut t = conf.clone();
    for a in PARSED.attrs.iter().cloned() {
        let by_name = BY_NAME.iter().any(|n| a.name.eq_ignore_ascii_case(n));
        let present = if by_name {
            let name = a.vector_get("NAME").unwrap_or("");
            conf.get_all(&a.name).any(|c| {
                c.vector_get("NAME")
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        } else {
            conf.get(&a.name).is_some()
        };
        if !present {
            t.push(&a.name, a.value);
        }
    }
    t
}

pub async fn config(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let mut t = with_defaults(&ctx.config.raw);
    // `Nebula::start` adds each generic quota metric to the restricted VM attributes.
    for metric in super::restricted::quota_metrics(&ctx.config.raw) {
        t.push("VM_RESTRICTED_ATTR", template::Value::Single(metric));
    }
    // `NebulaTemplate`'s hidden attributes: shown as `***` but to a caller whose group is
    // oneadmin (`att.gid`, as `SystemConfig` asks).
    if s.gid != 0 {
        let hidden = ["BACKEND", "SERVER", "PORT", "USER", "PASSWD", "DB_NAME"];
        for a in t
            .attrs
            .iter_mut()
            .filter(|a| a.name.eq_ignore_ascii_case("DB"))
        {
            if let template::Value::Vector(pairs) = &mut a.value {
                for (k, v) in pairs.iter_mut() {
                    if hidden.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                        *v = HIDDEN.to_string();
                    }
                }
            }
        }
    }
    // `VectorAttribute::to_xml(oss, hidden)` writes the hidden values as plain text.
    let xml = t.to_xml().replace(&format!("<![CDATA[{HIDDEN}]]>"), "***");
    let body = xml
        .strip_prefix("<TEMPLATE>")
        .and_then(|b| b.strip_suffix("</TEMPLATE>"))
        .unwrap_or("");
    Ok(Value::String(format!(
        "<OPENNEBULA_CONFIGURATION>{body}</OPENNEBULA_CONFIGURATION>"
    )))
}

/// `oneha.db.checksum` (OneHA extension): a digest of this server's state database and the
/// last log index applied to it, and one of its federated tables (FEDERATED_SHA256), which
/// every zone of a federation that caught up shows alike. Two servers at the same index must show the same digest; the
/// index is read before and after, and the digest retaken until they agree.
pub async fn checksum(ctx: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    let applied = |c: &Ctx| c.cluster.last_applied().map(|i| i as i64).unwrap_or(-1);
    let mut tries = 0;
    let (index, sum) = loop {
        let before = applied(ctx);
        let sum = ctx
            .read(|c| Ok((sqlstore::checksum(c)?, sqlstore::federated_checksum(c)?)))
            .await?;
        let after = applied(ctx);
        tries += 1;
        if before == after || tries >= 5 {
            break (after, sum);
        }
    };
    Ok(Value::String(xml::build_with(|out| {
        Xml::new(out).elem("DB_CHECKSUM", |x| {
            x.num("SERVER_ID", ctx.config.server_id)
                .num("LAST_APPLIED", index)
                .text("SHA256", &sum.0.sha256)
                .text("FEDERATED_SHA256", &sum.1)
                .elem("TABLES", |x| {
                    for (name, rows) in &sum.0.tables {
                        x.elem("TABLE", |x| {
                            x.text("NAME", name).num("ROWS", rows);
                        });
                    }
                });
        });
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_oned_conf_leaves_out() {
        let conf = template::Template::parse(
            "PORT = 2634\nDB = [ BACKEND = mysql ]\nTM_MAD_CONF = [ NAME = dummy, SHARED = NO ]",
        )
        .unwrap();
        let t = with_defaults(&conf);
        assert_eq!(t.single("PORT"), Some("2634"));
        assert_eq!(t.single("API_LIST_ORDER"), Some("DESC"));
        assert_eq!(t.single("DEFAULT_UMASK"), Some("177"));
        // A vector oned.conf sets is its own, whole.
        let db: Vec<_> = t.get_all("DB").collect();
        assert_eq!(db.len(), 1);
        assert_eq!(db[0].vector_get("TIMEOUT"), None);
        // Driver vectors: the defaults of the other names only.
        let dummy: Vec<_> = t
            .get_all("TM_MAD_CONF")
            .filter(|a| a.vector_get("NAME") == Some("dummy"))
            .collect();
        assert_eq!(dummy.len(), 1);
        assert_eq!(dummy[0].vector_get("SHARED"), Some("NO"));
        assert!(t
            .get_all("TM_MAD_CONF")
            .any(|a| a.vector_get("NAME") == Some("local")));
        assert!(t.get("ONE_KEY").is_none());
    }
}
