//! `one.system.*`

use xmlrpc::{Params, Value};

use super::{Ctx, MethodResult};
use crate::auth::Session;

/// The OpenNebula API level OneHA speaks.
pub const API_VERSION: &str = "7.0.2";

pub async fn version(_: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    Ok(Value::String(API_VERSION.to_string()))
}

pub async fn config(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let mut t = ctx.config.raw.clone();
    if !s.is_admin() {
        // As OpenNebula: hidden attributes are for group 0 only.
        t.remove("DB");
    }
    let xml = t.to_xml();
    let body = xml
        .strip_prefix("<TEMPLATE>")
        .and_then(|b| b.strip_suffix("</TEMPLATE>"))
        .unwrap_or("");
    Ok(Value::String(format!(
        "<OPENNEBULA_CONFIGURATION>{body}</OPENNEBULA_CONFIGURATION>"
    )))
}
