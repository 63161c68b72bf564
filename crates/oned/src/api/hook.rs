//! `one.hook.*`, `one.hookpool.info` and `one.hooklog.info`: OpenNebula's hooks, API hooks
//! (run after a call) and state hooks (run when a VM, host, image or network enters a state).
//!
//! Every event is written as a pending execution in the same replicated transaction as the
//! change that caused it (`sqlstore::objects::hook`), or, for an API hook, before the call is
//! answered; the leader runs pending executions (`crate::hook_runner`) and records each result
//! in place. So an event is never lost by a failover, and a new leader runs what the old one had
//! not recorded.

use base64::Engine;
use sqlstore::objects::hook::{self as rows, HookRow, LogFilter};
use sqlstore::{SqlTxn, TxnErrorKind};
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::method::{Auth, Method};
use super::perms::{MANAGE, NO_LOCK, USE};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};
use wire::acl::HOOK;

/// API hook events that could not be written since start (their hooks did not run).
pub static LOST_EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub static HOOKS: Family<HookRow> = Family {
    table: rows::TABLE,
    kind: HOOK,
    acl: "HOOK",
    what: "hook",
    pool: "HOOK_POOL",
    template: "template",
    rows: &rows::ROWS,
    xml: hook_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.hook.allocate", Write, Auth::Object, allocate),
    method!("one.hook.delete", Write, Auth::Object, delete),
    method!("one.hook.info", Read, Auth::Object, info),
    method!("one.hook.update", Write, Auth::Object, update),
    method!("one.hook.rename", Write, Auth::Object, rename),
    method!("one.hook.retry", Write, Auth::Object, retry),
    method!(
        "one.hookpool.info",
        Read,
        Auth::Object,
        super::owned::pool_info,
        &HOOKS
    ),
    method!("one.hooklog.info", Read, Auth::Object, log_info),
];

/// lock and unlock, as every lockable object's.
pub const OWNED: &[Method] = &lock_methods();

const fn lock_methods() -> [Method; 2] {
    let all = owned_methods!(lockable "one.hook", &HOOKS);
    [all[4], all[5]]
}

/// The calls an API hook cannot be set on (`HookAPI::unsupported_calls`): reads, which
/// OpenNebula never reports.
const UNSUPPORTED: &[&str] = &[
    "one.vm.info",
    "one.vmpool.info",
    "one.vmpool.infoextended",
    "one.template.info",
    "one.templatepool.info",
    "one.host.info",
    "one.hostpool.info",
    "one.group.info",
    "one.grouppool.info",
    "one.groupquota.info",
    "one.vn.info",
    "one.vnpool.info",
    "one.user.info",
    "one.userpool.info",
    "one.userquota.info",
    "one.datastore.info",
    "one.datastorepool.info",
    "one.image.info",
    "one.imagepool.info",
    "one.acl.info",
    "one.vntemplate.info",
    "one.vntemplatepool.info",
    "one.cluster.info",
    "one.clusterpool.info",
    "one.document.info",
    "one.documentpool.info",
    "one.zone.info",
    "one.zonepool.info",
    "one.secgroup.info",
    "one.secgrouppool.info",
    "one.vmgroup.info",
    "one.vmgrouppool.info",
    "one.vdc.info",
    "one.vdcpool.info",
    "one.vrouter.info",
    "one.vrouterpool.info",
    "one.market.info",
    "one.marketpool.info",
    "one.marketapp.info",
    "one.marketapppool.info",
    "one.hook.info",
    "one.hookpool.info",
    "one.hooklog.info",
];

/// oned's own methods OneHA does not serve (its SQL calls, its Raft calls, which OneHA's peers
/// make over their own protocol): `HookAPI::call_exist` knows them, so hooks may name them.
const ONED_ONLY: &[&str] = &[
    "one.system.sql",
    "one.system.sqlquery",
    "one.zone.replicate",
    "one.zone.voterequest",
];

/// Whether an API hook may be set on `call` (`HookAPI::call_exist`): a method of OpenNebula's
/// API that is not a read; OneHA's own `oneha.*` methods are none of OpenNebula's.
fn hookable(call: &str) -> bool {
    if call.starts_with("oneha.") {
        return false;
    }
    ONED_ONLY.contains(&call)
        || (super::method::lookup(call).is_some() && !UNSUPPORTED.contains(&call))
}

fn type_name(kind: i64) -> &'static str {
    if kind == rows::API {
        "api"
    } else {
        "state"
    }
}

/// `Hook::to_xml`: no owner or permissions; the template's attributes in name order.
fn hook_xml(h: &HookRow, out: &mut String) {
    hook_xml_with(h, None, out)
}

fn hook_xml_with(h: &HookRow, log: Option<&[String]>, out: &mut String) {
    Xml::new(out).elem("HOOK", |x| {
        x.num("ID", h.head.owned.oid)
            .text("NAME", &h.head.name)
            .text("TYPE", type_name(h.kind));
        xml::lock(x, &h.lock);
        x.raw(&xml::template(&h.template, "TEMPLATE"));
        if let Some(log) = log {
            x.raw(&format!("<HOOKLOG>{}</HOOKLOG>", log.concat()));
        }
    });
}

/// Attributes in name order, as OpenNebula's templates (a multimap) keep them.
fn sorted(mut t: Template) -> Template {
    t.attrs.sort_by(|a, b| a.name.cmp(&b.name));
    t
}

fn single(t: &Template, name: &str) -> String {
    t.single(name).unwrap_or_default().to_string()
}

/// `REMOTE` as OpenNebula stores it: `YES` or `NO`.
fn normalize_remote(t: &mut Template) {
    let yes = t
        .single("REMOTE")
        .is_some_and(|r| r.eq_ignore_ascii_case("YES"));
    t.set(
        "REMOTE",
        TValue::Single(if yes { "YES" } else { "NO" }.into()),
    );
}

const VM_STATES: &[wire::VmState] = wire::VmState::ALL;

fn vm_state(name: &str) -> Option<&'static str> {
    VM_STATES
        .iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
        .map(|s| s.name())
}

fn lcm_state(name: &str) -> Option<&'static str> {
    wire::LcmState::ALL
        .iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
        .map(|s| s.name())
}

const HOST_STATES: &[&str] = &["INIT", "MONITORED", "ERROR", "DISABLED", "OFFLINE"];
const IMAGE_STATES: &[&str] = &[
    "READY",
    "USED",
    "DISABLED",
    "LOCKED",
    "ERROR",
    "CLONE",
    "DELETE",
    "USED_PERS",
    "LOCKED_USED",
    "LOCKED_USED_PERS",
];
const NET_STATES: &[&str] = &["READY", "LOCK_CREATE", "LOCK_DELETE", "DONE", "ERROR"];

/// A state hook's template as `HookState*::parse_template` leaves it, or its message.
fn parse_state_hook(t: &mut Template) -> Result<(), String> {
    let resource = t
        .single("RESOURCE")
        .ok_or("RESOURCE attribute is required for STATE hooks.")?
        .to_string();
    let upper = |t: &Template, a: &str| single(t, a).to_ascii_uppercase();
    match resource.as_str() {
        "VM" => {
            let on = upper(t, "ON");
            t.remove("ON");
            let (state, lcm) = match on.as_str() {
                "PROLOG" => ("ACTIVE", "PROLOG"),
                "RUNNING" => ("ACTIVE", "RUNNING"),
                "SHUTDOWN" => ("ACTIVE", "EPILOG"),
                "STOP" => ("STOPPED", "LCM_INIT"),
                "DONE" => ("DONE", "LCM_INIT"),
                "UNKNOWN" => ("ACTIVE", "UNKNOWN"),
                "CUSTOM" => {
                    let s = upper(t, "STATE");
                    let l = upper(t, "LCM_STATE");
                    let state = vm_state(&s).ok_or(format!("Wrong STATE: {s}"))?;
                    let lcm = lcm_state(&l).ok_or(format!("Wrong LCM_STATE: {l}"))?;
                    (state, lcm)
                }
                other => return Err(format!("Unkown state condition: {other}")),
            };
            t.set("STATE", TValue::Single(state.into()));
            t.set("LCM_STATE", TValue::Single(lcm.into()));
        }
        "HOST" => {
            let s = upper(t, "STATE");
            if !HOST_STATES.contains(&s.as_str()) {
                return Err(format!("Invalid STATE: {s}"));
            }
            t.set("STATE", TValue::Single(s));
        }
        "IMAGE" => {
            let s = t
                .single("STATE")
                .ok_or("Hook STATE attribute not found or invalid")?
                .to_ascii_uppercase();
            if !IMAGE_STATES.contains(&s.as_str()) {
                return Err(format!("Invalid or unkown STATE condition: {s}"));
            }
            // `Image::state_to_str` names the persistent states as the plain ones.
            let stored = match s.as_str() {
                "USED_PERS" => "USED".to_string(),
                "LOCKED_USED_PERS" => "LOCKED_USED".to_string(),
                _ => s,
            };
            t.set("STATE", TValue::Single(stored));
        }
        "NET" => {
            let s = single(t, "STATE");
            if !NET_STATES.contains(&s.as_str()) {
                return Err(format!("Invalid STATE: {s}"));
            }
        }
        other => return Err(format!("Invalid resource type: {other}")),
    }
    Ok(())
}

/// The key events match a hook on (the executor's key in OpenNebula's HEM).
fn key_of(kind: i64, t: &Template) -> String {
    if kind == rows::API {
        single(t, "CALL")
    } else {
        format!(
            "{}/{}/{}",
            single(t, "RESOURCE"),
            single(t, "STATE"),
            single(t, "LCM_STATE")
        )
    }
}

/// `one.hook.allocate(template)`.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    HOOKS.may_create(ctx, s).await?;
    let given = single(&t, "TYPE");
    let kind = match given.to_ascii_lowercase().as_str() {
        "api" => rows::API,
        "state" => rows::STATE,
        // `Hook::str_to_hook_type` lower-cases the string it is given, message included.
        _ => {
            return Err(fail(
                code::INTERNAL,
                format!("Invalid Hook type: {}", given.to_ascii_lowercase()),
            ))
        }
    };
    let name = single(&t, "NAME");
    // `HookPool::allocate` words any `name_is_valid` refusal this way.
    if super::validate::object_name(&name).is_err() {
        return Err(fail(code::INTERNAL, "Invalid name."));
    }
    let taken = name.clone();
    if let Some(oid) = ctx.read(move |c| rows::id_of(c, &taken)).await? {
        return Err(fail(
            code::INTERNAL,
            format!("NAME is already taken by Hook {oid}."),
        ));
    }
    t.remove("NAME");
    t.remove("TYPE");
    let command = single(&t, "COMMAND");
    if command.is_empty() {
        return Err(fail(code::INTERNAL, "No COMMAND in template for Hook."));
    }
    t.set("COMMAND", TValue::Single(command));
    normalize_remote(&mut t);
    if kind == rows::STATE {
        parse_state_hook(&mut t).map_err(|e| fail(code::INTERNAL, e))?;
    } else {
        let call = single(&t, "CALL");
        if !hookable(&call) {
            return Err(fail(
                code::INTERNAL,
                format!("API call does not exist or is not supported: {call}"),
            ));
        }
    }
    let t = sorted(t);
    let insert = rows::insert(&name, kind, &key_of(kind, &t), t.to_text());
    super::allocate_next(ctx, rows::TABLE, insert, "hook", "HOOK", &name).await
}

/// `one.hook.delete(id)`: the hook and its execution log.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    super::owned::delete(ctx, s, &HOOKS, id, rows::delete(id), |r| {
        r.missing(HOOKS.missing(id))
    })
    .await
}

/// The recorded executions of hook `id`.
async fn log_of(ctx: &Ctx, id: i64) -> Result<Vec<String>, Failure> {
    let filter = LogFilter {
        min_ts: -1,
        max_ts: -1,
        hook: id,
        rc: 0,
    };
    ctx.read(move |c| rows::log(c, filter)).await
}

/// `one.hook.info(id)`: the hook with its execution log.
pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if id == -1 {
        return Err(fail(code::NO_EXISTS, "Error getting hook Pool."));
    }
    let row = HOOKS.authorized(ctx, s, id, USE | NO_LOCK).await?;
    let log = log_of(ctx, id).await?;
    let mut out = String::new();
    hook_xml_with(&row, Some(&log), &mut out);
    Ok(Value::String(out))
}

/// `Hook::post_update_template` on `new`, for a hook of `kind` whose resource was `resource`.
fn check_update(kind: i64, resource: &str, t: &mut Template) -> Result<(), String> {
    if single(t, "COMMAND").is_empty() {
        return Err("The COMMAND attribute is not defined.".into());
    }
    if t.single("REMOTE").is_some() {
        normalize_remote(t);
    }
    let bad_state = || "The STATE attribute is not defined or it's invalid.".to_string();
    if kind == rows::API {
        if !hookable(&single(t, "CALL")) {
            return Err("The CALL attribute is not defined or it's invalid.".into());
        }
        return Ok(());
    }
    // Each `HookState*::post_update_template` writes back the state it read, upper-cased
    // by its `*_from_str` (the key events match on).
    let upper = |t: &Template, a: &str| single(t, a).to_ascii_uppercase();
    let put = |t: &mut Template, a: &str, v: String| t.set(a, TValue::Single(v));
    match resource {
        "VM" => {
            let (s, l) = (upper(t, "STATE"), upper(t, "LCM_STATE"));
            vm_state(&s).ok_or_else(bad_state)?;
            put(t, "STATE", s);
            lcm_state(&l).ok_or("The LCM_STATE attribute is not defined or it's invalid.")?;
            put(t, "LCM_STATE", l);
        }
        "HOST" => {
            let s = upper(t, "STATE");
            if !HOST_STATES.contains(&s.as_str()) {
                return Err(bad_state());
            }
            put(t, "STATE", s);
        }
        // An image state OpenNebula knows is written upper-cased, another kept as given.
        "IMAGE" => {
            t.single("STATE").ok_or_else(bad_state)?;
            let s = upper(t, "STATE");
            if s != "INIT" && IMAGE_STATES.contains(&s.as_str()) {
                put(t, "STATE", s);
            }
        }
        // A network's is compared as given (`VirtualNetwork::str_to_state`).
        _ => {
            t.single("STATE").ok_or_else(bad_state)?;
        }
    }
    Ok(())
}

/// `one.hook.update(id, template, type)`: the template replaced or merged, then checked as
/// OpenNebula checks it; the hook's key follows the new template.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    HOOKS.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let row = HOOKS.get(ctx, id).await?;
        let new = super::merged(&row.template, text, merge)?;
        let mut t = Template::parse(&new)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        let old = Template::parse(&row.template).unwrap_or_default();
        check_update(row.kind, &single(&old, "RESOURCE"), &mut t)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
        let t = sorted(t);
        Ok(vec![rows::set_template(
            id,
            &key_of(row.kind, &t),
            t.to_text(),
            row.template,
        )])
    })
    .await
}

/// `one.hook.rename(id, name)`.
pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let row = HOOKS.get(ctx, id).await?;
    if row.head.name == name {
        return Ok(Value::Int(id as i32));
    }
    HOOKS.authorized(ctx, s, id, MANAGE).await?;
    let taken = name.clone();
    if let Some(other) = ctx.read(move |c| rows::id_of(c, &taken)).await? {
        return Err(fail(
            code::ACTION,
            format!("hook cannot be renamed to {name} because it collides with hook {other}"),
        ));
    }
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let stmt = sqlstore::objects::set_name(rows::TABLE, id, &name);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| match r.kind {
        TxnErrorKind::NotFound => HOOKS.missing(id),
        TxnErrorKind::Constraint => fail(
            code::ACTION,
            format!("hook cannot be renamed to {name} because it collides with another hook"),
        ),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// The text of element `name` in `xml` (the first one), unescaped.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `one.hook.retry(id, exec_id)`: runs the execution's arguments again, as a new execution
/// (recorded with `RETRY`); -1 retries the hook's first recorded execution.
pub async fn retry(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let exeid = p.int(1)? as i64;
    HOOKS.authorized(ctx, s, id, MANAGE).await?;
    let body = ctx
        .read(move |c| rows::record_body(c, id, exeid))
        .await
        .map_err(|_| fail(code::INTERNAL, "Error reading HookLog."))?;
    let Some(args) = body.as_deref().and_then(|b| element(b, "ARGUMENTS")) else {
        return Err(fail(
            code::INTERNAL,
            "Invalid HookLog body. Arguments not found.",
        ));
    };
    let host = body
        .as_deref()
        .and_then(|b| element(b, "REMOTE_HOST"))
        .unwrap_or_default();
    let message = xml::build(|x| {
        x.elem("HOOK_MESSAGE", |x| {
            x.text("HOOK_TYPE", "RETRY")
                .text("ARGUMENTS", &args)
                .text("REMOTE_HOST", &host);
        });
    });
    let stmts = rows::retry(id, &message, super::vm::now());
    ctx.commit(SqlTxn { stmts }, |r| r.missing(HOOKS.missing(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// `one.hooklog.info(min_ts, max_ts, hook_id, rc)`: recorded executions, for members of
/// oneadmin by their primary group (OpenNebula's `is_oneadmin_group`).
pub async fn log_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let filter = LogFilter {
        min_ts: p.int(0)? as i64,
        max_ts: p.int(1)? as i64,
        hook: p.int(2)? as i64,
        rc: p.int(3)? as i64,
    };
    if s.gid != 0 {
        return Err(fail(
            code::AUTHORIZATION,
            format!("User [{}] not authorized to perform action on hook.", s.uid),
        ));
    }
    let log = ctx.read(move |c| rows::log(c, filter)).await?;
    Ok(Value::String(format!(
        "<HOOKLOG>{}</HOOKLOG>",
        log.concat()
    )))
}

/// The `HOOK_MESSAGE` of an API call, as `HookAPI::format_message`: the session and passwords
/// hidden, every other parameter in order, the answer's values, then `extra` (the object an
/// allocate made or a delete removed).
pub fn api_message(
    call: &str,
    params: &[xmlrpc::Value],
    result: &MethodResult,
    extra: &str,
) -> String {
    fn value_text(v: &xmlrpc::Value) -> String {
        match v {
            xmlrpc::Value::Int(i) => i.to_string(),
            xmlrpc::Value::I8(i) => i.to_string(),
            xmlrpc::Value::Bool(b) => (*b as i32).to_string(),
            xmlrpc::Value::Double(d) => d.to_string(),
            xmlrpc::Value::String(s) | xmlrpc::Value::DateTime(s) => s.clone(),
            // `ParamList::get_value_as_string` prints nothing for arrays and the rest.
            _ => String::new(),
        }
    }
    let hidden = hidden_params(call);
    xml::build(|x| {
        x.elem("HOOK_MESSAGE", |x| {
            x.text("HOOK_TYPE", "API").text("CALL", call);
            x.elem("CALL_INFO", |x| {
                x.num("RESULT", result.is_ok() as i64);
                x.elem("PARAMETERS", |x| {
                    let param = |x: &mut Xml<'_>, pos: usize, kind: &str, value: &str| {
                        x.elem("PARAMETER", |x| {
                            x.num("POSITION", pos as i64)
                                .text("TYPE", kind)
                                .text("VALUE", value);
                        });
                    };
                    for (i, v) in params.iter().enumerate() {
                        let shown = if i == 0 || hidden.contains(&i) {
                            "****".to_string()
                        } else {
                            value_text(v)
                        };
                        param(x, i + 1, "IN", &shown);
                    }
                    match result {
                        Ok(v) => {
                            param(x, 1, "OUT", "true");
                            param(x, 2, "OUT", &value_text(v));
                            param(x, 3, "OUT", "0");
                        }
                        Err(f) => {
                            // `Request::failure_response`: the whole answer, the method
                            // named first, and `att.resp_id`.
                            let (code, message) = match f {
                                Failure::Api { code, message } => (*code, message.clone()),
                                Failure::Fault(f) => (f.code, f.message.clone()),
                                Failure::NotLeader => (code::INTERNAL, String::new()),
                                Failure::Replication { code, message, .. } => {
                                    (*code, message.clone())
                                }
                            };
                            let id = super::error::resp_id(code, &message);
                            param(x, 1, "OUT", "false");
                            param(x, 2, "OUT", &format!("[{call}] {message}"));
                            param(x, 3, "OUT", &code.to_string());
                            param(x, 4, "OUT", &id.to_string());
                        }
                    }
                });
                x.raw(&format!("<EXTRA>{extra}</EXTRA>"));
            });
        });
    })
}

/// The parameters (0 being the session) a method's `hidden_params` keep out of logs and hook
/// messages: passwords and tokens.
fn hidden_params(call: &str) -> &'static [usize] {
    match call {
        "one.user.allocate" | "one.user.passwd" | "one.user.login" => &[2],
        "one.user.chauth" => &[3],
        _ => &[],
    }
}

/// `$API`'s value: the message's `CALL_INFO`, base64.
pub fn call_info_b64(message: &str) -> String {
    let start = message.find("<CALL_INFO>");
    let end = message
        .find("</CALL_INFO>")
        .map(|e| e + "</CALL_INFO>".len());
    match (start, end) {
        (Some(s), Some(e)) if s < e => {
            base64::engine::general_purpose::STANDARD.encode(&message[s..e])
        }
        _ => String::new(),
    }
}

/// The XML of the object a state event is about, as it is now, and the host it runs on (a
/// VM's last host, a host's own name).
pub async fn object_of(
    pool: &sqlstore::ReadPool,
    resource: &str,
    id: i64,
) -> Result<Option<(String, String)>, crate::db::ReadError> {
    let resource = resource.to_string();
    crate::db::read(pool, move |c| {
        let mut out = String::new();
        let host = match resource.as_str() {
            "VM" => {
                let Some(vm) = one_row(c, &super::vm::VMS, id)? else {
                    return Ok(None);
                };
                super::vm::vm_xml(&vm, &mut out);
                sqlstore::objects::vm::last_hostname(c, id)?.unwrap_or_default()
            }
            "HOST" => {
                let Some(h) = sqlstore::objects::host::load(c, id)? else {
                    return Ok(None);
                };
                super::host::host_xml_stored(&h, &mut out);
                h.name.clone()
            }
            "IMAGE" => {
                let Some(i) = one_row(c, &super::storage::IMAGES, id)? else {
                    return Ok(None);
                };
                super::storage::image_xml(&i, &mut out);
                String::new()
            }
            "NET" => {
                let Some(n) = one_row(c, &super::vnet::NETS, id)? else {
                    return Ok(None);
                };
                super::vnet::vnet_xml(&n, &mut out);
                String::new()
            }
            _ => return Ok(None),
        };
        Ok(Some((out, host)))
    })
    .await
}

fn one_row<R>(c: &sqlstore::Conn, f: &Family<R>, id: i64) -> Result<Option<R>, sqlstore::SqlError> {
    use sqlstore::Optional;
    let rows = f.rows;
    let mut st = c.prepare_cached(&rows.by_id())?;
    st.query_row([id], |r| (rows.read)(c, r)).optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Template, String> {
        let mut t = Template::parse(text).map_err(|e| e.to_string())?;
        parse_state_hook(&mut t)?;
        Ok(t)
    }

    #[test]
    fn vm_hooks_take_their_states_from_on() {
        let t = parsed("RESOURCE = VM\nON = running").unwrap();
        assert_eq!(key_of(rows::STATE, &t), "VM/ACTIVE/RUNNING");
        let t =
            parsed("RESOURCE = VM\nON = custom\nSTATE = poweroff\nLCM_STATE = lcm_init").unwrap();
        assert_eq!(key_of(rows::STATE, &t), "VM/POWEROFF/LCM_INIT");
        assert_eq!(
            parsed("RESOURCE = VM\nON = nope").unwrap_err(),
            "Unkown state condition: NOPE"
        );
        assert_eq!(
            parsed("RESOURCE = VM\nON = CUSTOM\nSTATE = x").unwrap_err(),
            "Wrong STATE: X"
        );
    }

    #[test]
    fn other_resources_are_checked_as_opennebula_checks_them() {
        assert_eq!(
            key_of(
                rows::STATE,
                &parsed("RESOURCE = HOST\nSTATE = error").unwrap()
            ),
            "HOST/ERROR/"
        );
        assert_eq!(
            key_of(
                rows::STATE,
                &parsed("RESOURCE = IMAGE\nSTATE = used_pers").unwrap()
            ),
            "IMAGE/USED/"
        );
        assert_eq!(
            parsed("RESOURCE = NET\nSTATE = ready").unwrap_err(),
            "Invalid STATE: ready"
        );
        assert_eq!(
            parsed("RESOURCE = vm").unwrap_err(),
            "Invalid resource type: vm"
        );
        assert_eq!(
            parsed("STATE = READY").unwrap_err(),
            "RESOURCE attribute is required for STATE hooks."
        );
    }

    #[test]
    fn an_api_message_hides_the_session_and_carries_the_answer() {
        let params = vec![
            xmlrpc::Value::String("oneadmin:secret".into()),
            xmlrpc::Value::Int(7),
        ];
        let m = api_message("one.vm.deploy", &params, &Ok(Value::Int(7)), "");
        assert!(!m.contains("secret"));
        let params = vec![
            xmlrpc::Value::String("oneadmin:secret".into()),
            xmlrpc::Value::String("u1".into()),
            xmlrpc::Value::String("pw".into()),
            xmlrpc::Value::String(String::new()),
            xmlrpc::Value::Array(vec![]),
        ];
        let user = api_message("one.user.allocate", &params, &Ok(Value::Int(3)), "");
        assert!(!user.contains("<VALUE>pw</VALUE>"), "{user}");
        assert!(!user.contains("Array"), "{user}");
        assert!(m.contains("<VALUE>****</VALUE>"));
        assert!(m.contains("<RESULT>1</RESULT>"));
        assert!(!call_info_b64(&m).is_empty());
        assert_eq!(element(&m, "CALL").as_deref(), Some("one.vm.deploy"));
        // A failure as `failure_response` writes it: the method first, the missing object's id.
        let refused = Err(super::super::fail(
            code::NO_EXISTS,
            "Error getting virtual machine [42].",
        ));
        let m = api_message("one.vm.deploy", &params, &refused, "");
        assert!(m.contains("<RESULT>0</RESULT>"), "{m}");
        let info = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(call_info_b64(&m))
                .unwrap(),
        )
        .unwrap();
        assert!(
            info.contains("<VALUE>[one.vm.deploy] Error getting virtual machine [42].</VALUE>"),
            "{info}"
        );
        assert!(info.contains("<TYPE>OUT</TYPE><VALUE>42</VALUE>"), "{info}");
    }
}
