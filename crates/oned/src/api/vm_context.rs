//! A VM's CONTEXT as `VirtualMachine::parse_context` builds it when the VM is created: its
//! `$` variables substituted (`api::vm_vars`), then, with `NETWORK = YES`, the `ETH<n>_*`
//! variables of each NIC (`generate_network_context`), whose address range and network values
//! are `$NETWORK[...]` variables too; OneGate's TOKEN and a router's attributes. A NIC in auto
//! mode gets its variables once the deployment gave it a network (`api::vm_auto_nics`), an
//! attached NIC when it is attached, and `one.vm.updateconf` parses what it changes.
//! SCHED_REQUIREMENTS' variables are substituted by the same parser (`parse_requirements`).

use std::collections::BTreeMap;

use template::{Template, Value};

use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

/// `NETWORK_CONTEXT` and `NETWORK6_CONTEXT` of `VirtualMachineContext.cc`: the variable's name,
/// the NIC attribute it copies, another one if that is empty, and whether the address range or
/// the network is asked when the NIC has neither.
const NETWORK_VARS: &[(&str, &str, &str, bool)] = &[
    ("IP", "IP", "", false),
    ("MAC", "MAC", "", false),
    ("MASK", "NETWORK_MASK", "", true),
    ("NETWORK", "NETWORK_ADDRESS", "", true),
    ("GATEWAY", "GATEWAY", "", true),
    ("DNS", "DNS", "", true),
    ("SEARCH_DOMAIN", "SEARCH_DOMAIN", "", true),
    ("MTU", "GUEST_MTU", "", true),
    ("METRIC", "METRIC", "", true),
    ("METHOD", "METHOD", "", true),
    ("VLAN_ID", "VLAN_ID", "", true),
    ("VROUTER_IP", "VROUTER_IP", "", false),
    ("VROUTER_MANAGEMENT", "VROUTER_MANAGEMENT", "", false),
    ("EXTERNAL", "EXTERNAL", "", false),
    ("IP6", "IP6_GLOBAL", "IP6", false),
    ("IP6_ULA", "IP6_ULA", "", false),
    ("IP6_GATEWAY", "GATEWAY6", "", true),
    ("IP6_METRIC", "IP6_METRIC", "", true),
    ("IP6_METHOD", "IP6_METHOD", "", true),
    ("IP6_PREFIX_LENGTH", "PREFIX_LENGTH", "", true),
    ("VROUTER_IP6", "VROUTER_IP6_GLOBAL", "VROUTER_IP6", false),
    ("EXTERNAL", "EXTERNAL", "", false),
];

/// `VectorAttribute::marshall`'s separator.
const SEP: &str = "@^_";

/// What a VM's variables read besides its own templates.
#[derive(Debug, Default, Clone)]
pub struct Lookup {
    pub name: String,
    pub uid: i64,
    pub uname: String,
    pub gid: i64,
    pub gname: String,
    /// The owner's template (`$USER[...]`).
    pub user: Template,
    /// The templates of the networks its NICs are in (`$NETWORK[...]`), address ranges included.
    pub nets: BTreeMap<i64, Template>,
    /// The templates of the images its disks use (`$IMAGE[...]`).
    pub images: BTreeMap<i64, Template>,
    /// oned.conf's ONEGATE_ENDPOINT, for a CONTEXT with `TOKEN = YES`.
    pub onegate: Option<String>,
    /// The VM's id once it has one (`None`: a new VM, whose insert replaces `vm::ID_MARK`).
    pub vmid: Option<i64>,
    /// The owner's groups, for the rights FILES_DS's images need.
    pub groups: Vec<i64>,
    /// The CONTEXT's FILES_DS resolved (`<SOURCE>:'<NAME>' ` per image) or refused, once
    /// [`Lookup::resolve_files`] ran.
    pub files: Option<Result<String, String>>,
}

impl Lookup {
    /// What `$VMID` is.
    pub(super) fn vmid(&self) -> String {
        self.vmid.map_or_else(
            || sqlstore::objects::vm::ID_MARK.to_string(),
            |id| id.to_string(),
        )
    }

    /// Read for a VM of owner `uid` and group `gid` named `name` whose system template is `t`.
    /// An unnamed VM's `$NAME` and every `$VMID` are marks its insert replaces
    /// (`vm::NAME_MARK`, `vm::ID_MARK`).
    pub async fn read(
        ctx: &Ctx,
        (uid, gid): (i64, i64),
        t: &Template,
        name: &str,
    ) -> Result<Lookup, Failure> {
        let ids = |attr: &str, key: &str| -> Vec<i64> {
            t.get_all(attr)
                .filter_map(|a| a.vector_get(key))
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        };
        let mut nets = ids("NIC", "NETWORK_ID");
        nets.extend(ids("NIC_ALIAS", "NETWORK_ID"));
        let images = ids("DISK", "IMAGE_ID");
        let (user, gname, nets, images) = ctx
            .read(move |c| {
                let user = sqlstore::load_user(c, uid)?;
                let gname = sqlstore::objects::group::load(c, gid)?.map(|g| g.name);
                // Only the templates: a network's row would bring every lease it holds.
                let templates = |table: &str, ids: Vec<i64>| {
                    let mut out = BTreeMap::new();
                    for id in ids {
                        let text = sqlstore::objects::template_text(c, table, "template", id)?;
                        if let Some(text) = text {
                            out.insert(id, text);
                        }
                    }
                    Ok::<_, sqlstore::SqlError>(out)
                };
                let by_net = templates(sqlstore::objects::vnet::TABLE, nets)?;
                let by_image = templates(sqlstore::objects::image::TABLE, images)?;
                Ok((user, gname, by_net, by_image))
            })
            .await?;
        let parsed = |text: &str| Template::parse(text).unwrap_or_default();
        Ok(Lookup {
            name: match name {
                "" => sqlstore::objects::vm::NAME_MARK.to_string(),
                _ => name.to_string(),
            },
            uid,
            uname: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
            gid,
            gname: gname.unwrap_or_default(),
            groups: user
                .as_ref()
                .map_or_else(|| vec![gid], |u| u.groups.clone()),
            user: user.map(|u| parsed(&u.template)).unwrap_or_default(),
            nets: nets.iter().map(|(k, v)| (*k, parsed(v))).collect(),
            images: images.iter().map(|(k, v)| (*k, parsed(v))).collect(),
            onegate: ctx
                .config
                .raw
                .single("ONEGATE_ENDPOINT")
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            vmid: None,
            files: None,
        })
    }

    /// `parse_context`'s FILES_DS of `context`, if it has one: each `$FILE[...]` an image the
    /// owner may USE, a CONTEXT image READY, written `<SOURCE>:'<NAME>' `; or why not, in
    /// oned's words. No image is taken: the files only go to the context disk.
    pub async fn resolve_files(&mut self, ctx: &Ctx, context: &[(String, String)]) {
        let Some((_, given)) = context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("FILES_DS"))
        else {
            return;
        };
        self.files = Some(self.files_ds(ctx, given).await);
    }

    async fn files_ds(&self, ctx: &Ctx, given: &str) -> Result<String, String> {
        let text = given.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
        let wrap = |e: String| format!("Error parsing: {text}. {e}");
        let (refs, syntax) = super::vm_vars::file_refs(text);
        let mut images = Vec::new();
        for r in refs.iter().take(MAX_FILES) {
            images.push(self.file_image(ctx, r).await.map_err(wrap)?);
        }
        if let Some(e) = syntax {
            return Err(wrap(e));
        }
        if refs.len() > MAX_FILES {
            return Err(wrap(format!("at most {MAX_FILES} FILE variables")));
        }
        let mut out = String::new();
        for i in images.into_iter().flatten() {
            out.push_str(&format!("{}:'{}' ", i.source, i.head.name));
            if i.kind != CONTEXT_IMAGE {
                return Err("Only images of type CONTEXT can be used in FILE_DS attribute.".into());
            }
            if i.state != IMAGE_READY {
                return Err(format!(
                    "CONTEXT Image '{}' not in READY state.",
                    i.head.owned.oid
                ));
            }
        }
        Ok(out)
    }

    /// `get_image_path` of `vm_file_var_syntax.y`: the image one `$FILE[...]` names, if it is
    /// still there once found.
    async fn file_image(
        &self,
        ctx: &Ctx,
        r: &super::vm_vars::FileRef,
    ) -> Result<Option<sqlstore::objects::image::ImageRow>, String> {
        use super::storage::IMAGES;
        if r.variable != "FILE" {
            return Err("Must use FILE variable for attribute.".into());
        }
        let (var, val) = r.pairs[0].clone();
        let id = match var.as_str() {
            "IMAGE" => {
                let uid = match r.pairs.get(1).map(|(k, v)| (k.as_str(), v.as_str())) {
                    Some(("IMAGE_UID", v)) => cpp_int(v).unwrap_or(-1),
                    Some(("IMAGE_UNAME", v)) => {
                        let u = v.to_string();
                        ctx.read(move |c| sqlstore::objects::user::oid_of(c, &u))
                            .await
                            .map_err(|e| format!("{e:?}"))?
                            .unwrap_or(-1)
                    }
                    _ => self.uid,
                };
                let n = val.clone();
                ctx.read(move |c| sqlstore::objects::image::named(c, &n, uid))
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .ok_or_else(|| {
                        format!(
                            "User {uid} does not own an image with name: {val} . Set \
                             IMAGE_UNAME or IMAGE_UID of owner."
                        )
                    })?
            }
            "IMAGE_ID" => {
                let id = cpp_int(&val).unwrap_or(-1);
                if id < 0 || IMAGES.get(ctx, id).await.is_err() {
                    return Err(format!("Image with ID: {id} does not exist"));
                }
                id
            }
            _ => return Err("Cannot get image, set IMAGE_ID or IMAGE.".into()),
        };
        let Ok(image) = IMAGES.get(ctx, id).await else {
            return Ok(None);
        };
        let owner = Session {
            uid: self.uid,
            gid: self.gid,
            name: self.uname.clone(),
            groups: self.groups.clone(),
            umask: None,
        };
        let caller = super::perms::caller(ctx, &owner)
            .await
            .map_err(|_| "User not authorize to use image.".to_string())?;
        if IMAGES.refusal(&caller, &image, super::perms::USE).is_some() {
            return Err("User not authorize to use image.".into());
        }
        Ok(Some(image))
    }
}

/// The most `$FILE` variables one FILES_DS resolves: each is an image read.
const MAX_FILES: usize = 256;

/// `Image::CONTEXT` and `Image::READY`.
const CONTEXT_IMAGE: i64 = 5;
const IMAGE_READY: i64 = 1;

/// A number as C++'s `istream >> int` reads one: leading blanks, a sign, the digits it finds.
fn cpp_int(v: &str) -> Option<i64> {
    let v = v.trim_start();
    let digits = v
        .char_indices()
        .take_while(|(n, c)| c.is_ascii_digit() || (*n == 0 && (*c == '-' || *c == '+')))
        .count();
    v[..digits].parse().ok()
}

/// `VirtualMachine::insert`'s `parse_context` and `parse_requirements` for a new VM of `s`
/// named `name`: what they read is read only when its CONTEXT or requirements need it (most
/// VMs' do not, and `one.vm.allocate` is a hot path). Refused INTERNAL, in their words.
pub async fn at_allocate(
    ctx: &Ctx,
    s: &Session,
    t: &mut Template,
    user: &mut Template,
    name: &str,
) -> Result<(), Failure> {
    let reqs = user
        .single("SCHED_REQUIREMENTS")
        .is_some_and(|r| r.contains('$'));
    if t.vector("CONTEXT").is_none() && !reqs {
        return Ok(());
    }
    let mut l = Lookup::read(ctx, (s.uid, s.gid), t, name).await?;
    if let Some(c) = t.vector("CONTEXT") {
        l.resolve_files(ctx, c).await;
    }
    context(t, user, &l, false).map_err(refused)?;
    requirements(t, user, &l).map_err(refused)
}

/// `parse_context(error_str, all_nics = false)` on a new VM's system template `t` (its user
/// template `user`): the CONTEXT's variables substituted, then, with `NETWORK = YES`, each NIC's
/// (but those in auto mode) `ETH<n>_*` variables. Refused as `Error parsing: ...`.
pub fn context(
    t: &mut Template,
    user: &Template,
    l: &Lookup,
    all_nics: bool,
) -> Result<(), String> {
    let Some(mut context) = t.vector("CONTEXT").map(<[_]>::to_vec) else {
        return Ok(());
    };
    // FILES_DS has a grammar of its own (`$FILE[...]`), resolved by `Lookup::resolve_files`.
    let had_files = context
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("FILES_DS"));
    context.retain(|(k, _)| !k.eq_ignore_ascii_case("FILES_DS"));
    let parsed = unmarshall(&super::vm_vars::parse(&marshall(&context), t, user, l)?);
    t.set("CONTEXT", Value::Vector(parsed));
    network_context(t, user, l, all_nics)?;
    let mut context = t.vector("CONTEXT").map(<[_]>::to_vec).unwrap_or_default();
    if had_files {
        match &l.files {
            Some(Ok(files)) if !files.is_empty() => {
                context.push(("FILES_DS".to_string(), files.clone()))
            }
            Some(Err(e)) => return Err(e.clone()),
            _ => {}
        }
    }
    let token = says_yes(&context, "TOKEN");
    let mut put = |k: &str, v: String| {
        context.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        context.push((k.to_string(), v));
    };
    // `generate_token_context`: OneGate's address and the VM's id; the owner who made it is
    // kept, for the token's key after a chown.
    if token {
        let Some(endpoint) = &l.onegate else {
            return Err("TOKEN set, but onegate endpoint was not defined in oned.conf.".into());
        };
        put("ONEGATE_ENDPOINT", endpoint.clone());
        put("VMID", l.vmid());
        t.set("CREATED_BY", Value::Single(l.uid.to_string()));
    }
    // A virtual router's VMs see its id and keepalived settings.
    for attr in [
        "VROUTER_ID",
        "VROUTER_KEEPALIVED_ID",
        "VROUTER_KEEPALIVED_PASSWORD",
    ] {
        if let Some(v) = t.single(attr).filter(|v| !v.is_empty()) {
            put(attr, v.to_string());
        }
    }
    context.sort();
    t.set("CONTEXT", Value::Vector(context));
    Ok(())
}

/// `generate_network_context(context, error, only_auto)`: with `NETWORK = YES` in the CONTEXT,
/// the `ETH<n>_*` (`ETH<n>_ALIAS<m>_*`) variables of every NIC and NIC alias, but those in auto
/// mode unless `auto_too`, replacing what the CONTEXT had.
pub fn network_context(
    t: &mut Template,
    user: &Template,
    l: &Lookup,
    auto_too: bool,
) -> Result<(), String> {
    let Some(context) = t.vector("CONTEXT").map(<[_]>::to_vec) else {
        return Ok(());
    };
    if !says_yes(&context, "NETWORK") {
        return Ok(());
    }
    // Maps keep a VM of many NICs (up to `limits::fixed::MAX_NICS_PER_VM`) linear.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for a in t.get_all("NIC").chain(t.get_all("NIC_ALIAS")) {
        let Some(nic) = a.value.as_vector() else {
            continue;
        };
        if !auto_too && super::vm_auto_nics::is_auto(nic) {
            continue;
        }
        let get = |k: &str| template::vector_get(nic, k).unwrap_or("").to_string();
        let prefix = eth_prefix(a);
        for &(name, attr, alt, lookup) in NETWORK_VARS {
            let mut value = get(attr);
            if value.is_empty() && !alt.is_empty() {
                value = get(alt);
            }
            if value.is_empty() && lookup {
                value = format!("$NETWORK[{attr}, NIC_ID=\"{}\"]", get("NIC_ID"));
            }
            vars.insert(format!("{prefix}{name}"), value);
        }
    }
    if vars.is_empty() {
        return Ok(());
    }
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let mut merged: BTreeMap<String, String> = context
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    for (k, v) in unmarshall(&super::vm_vars::parse(&marshall(&vars), t, user, l)?) {
        merged.insert(k.to_ascii_uppercase(), v);
    }
    t.set("CONTEXT", Value::Vector(merged.into_iter().collect()));
    Ok(())
}

/// Whether the CONTEXT's `key` is YES (`VectorAttribute::vector_value(name, bool&)`).
fn says_yes(context: &[(String, String)], key: &str) -> bool {
    template::vector_get(context, key).is_some_and(|v| v.trim().eq_ignore_ascii_case("YES"))
}

/// What a NIC's context variables start with: `ETH<NIC_ID>_`, `ETH<PARENT_ID>_ALIAS<ALIAS_ID>_`
/// for an alias (`parse_context_network`).
fn eth_prefix(nic: &template::Attribute) -> String {
    let get = |k: &str| nic.vector_get(k).unwrap_or("").trim().to_string();
    if nic.name == "NIC" {
        format!("ETH{}_", get("NIC_ID"))
    } else {
        format!("ETH{}_ALIAS{}_", get("PARENT_ID"), get("ALIAS_ID"))
    }
}

/// `clear_nic_context` / `clear_nic_alias_context`: the CONTEXT of `t` without the variables
/// of the NIC (alias) `nic` that left the VM.
pub fn clear_nic(t: &mut Template, nic: &template::Attribute) {
    let Some(mut context) = t.vector("CONTEXT").map(<[_]>::to_vec) else {
        return;
    };
    let prefix = eth_prefix(nic);
    let before = context.len();
    context.retain(|(k, _)| {
        !NETWORK_VARS
            .iter()
            .any(|(name, ..)| k.eq_ignore_ascii_case(&format!("{prefix}{name}")))
    });
    if context.len() != before {
        t.set("CONTEXT", Value::Vector(context));
    }
}

/// The network CONTEXT of every NIC of the VM `v`'s template `t`, as the driver's context
/// regeneration after a NIC is attached writes it (`generate_context`); nothing is read unless
/// the CONTEXT asks for it.
pub async fn refresh_network(
    ctx: &Ctx,
    v: &sqlstore::objects::vm::VmRow,
    t: &mut Template,
) -> Result<(), Failure> {
    if !t.vector("CONTEXT").is_some_and(|c| says_yes(c, "NETWORK")) {
        return Ok(());
    }
    let (l, user) = existing(ctx, v, t).await?;
    network_context(t, &user, &l, true).map_err(|e| fail(code::ACTION, e))
}

/// What the variables of placed VM `v` (whose template is now `t`) read, and its user template.
async fn existing(
    ctx: &Ctx,
    v: &sqlstore::objects::vm::VmRow,
    t: &Template,
) -> Result<(Lookup, Template), Failure> {
    let owner = (v.head.owned.uid, v.head.owned.gid);
    let mut l = Lookup::read(ctx, owner, t, &v.head.name).await?;
    l.vmid = Some(v.head.owned.oid);
    Ok((l, Template::parse(&v.user_template).unwrap_or_default()))
}

/// `VirtualMachine::updateconf`'s `parse_context(err, true)`: the CONTEXT values `changed`
/// (new or different, and NETWORK in replace mode) parsed as a new VM's are, with the network
/// variables of every NIC when they say `NETWORK = YES`, written over the CONTEXT of `t` (the
/// VM `v`'s new template). Refused INTERNAL, in the parser's words.
pub async fn at_updateconf(
    ctx: &Ctx,
    v: &sqlstore::objects::vm::VmRow,
    t: &mut Template,
    changed: Vec<(String, String)>,
) -> Result<(), Failure> {
    if changed.is_empty() {
        return Ok(());
    }
    let (mut l, user) = existing(ctx, v, t).await?;
    l.resolve_files(ctx, &changed).await;
    let mut part = t.clone();
    part.set("CONTEXT", Value::Vector(changed));
    context(&mut part, &user, &l, true).map_err(refused)?;
    let mut merged: BTreeMap<String, String> = t
        .vector("CONTEXT")
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .collect();
    for (k, v) in part.vector("CONTEXT").unwrap_or_default() {
        merged.insert(k.to_ascii_uppercase(), v.clone());
    }
    if let Some(by) = part.single("CREATED_BY").map(str::to_string) {
        t.set("CREATED_BY", Value::Single(by));
    }
    t.set("CONTEXT", Value::Vector(merged.into_iter().collect()));
    Ok(())
}

/// `parse_requirements`: SCHED_REQUIREMENTS of the user template with its variables
/// substituted.
pub fn requirements(t: &Template, user: &mut Template, l: &Lookup) -> Result<(), String> {
    let Some(reqs) = user.single("SCHED_REQUIREMENTS").map(str::to_string) else {
        return Ok(());
    };
    let parsed = super::vm_vars::parse(&reqs, t, &user.clone(), l)?;
    user.set("SCHED_REQUIREMENTS", Value::Single(parsed));
    Ok(())
}

/// `VectorAttribute::marshall`: `KEY=value` pairs joined by `@^_`, in key order.
fn marshall(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(SEP)
}

/// `VectorAttribute::unmarshall`: the first value of each key, in key order.
fn unmarshall(text: &str) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for part in text.split(SEP) {
        if let Some((k, v)) = part.split_once('=') {
            out.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out.into_iter().collect()
}

/// A refusal of the CONTEXT or the requirements, as `VirtualMachine::insert` words it.
fn refused(e: String) -> Failure {
    fail(code::INTERNAL, e)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    pub(in crate::api) fn lookup() -> Lookup {
        Lookup {
            name: "web".into(),
            uid: 5,
            uname: "alice".into(),
            gid: 1,
            gname: "users".into(),
            user: t("SSH_PUBLIC_KEY = \"ssh-ed25519 AAAA alice\""),
            nets: [(
                3,
                t("NAME = lan\nGATEWAY = 10.0.0.254\nDNS = 8.8.8.8\n\
                   AR = [ AR_ID = 0, TYPE = IP4, IP = 10.0.0.1, SIZE = 9, GATEWAY = 10.0.0.1 ]"),
            )]
            .into(),
            images: [(7, t("OS_FAMILY = debian"))].into(),
            onegate: None,
            vmid: None,
            groups: vec![1],
            files: None,
        }
    }

    #[test]
    fn a_token_asks_for_onegate_and_a_router_vm_sees_its_router() {
        let mut vm = t("CONTEXT = [ TOKEN = YES ]");
        let mut l = lookup();
        assert_eq!(
            context(&mut vm, &Template::default(), &l, false).unwrap_err(),
            "TOKEN set, but onegate endpoint was not defined in oned.conf."
        );
        l.onegate = Some("http://gate:5030".into());
        let mut vm = t("CONTEXT = [ TOKEN = YES ]\nVROUTER_ID = 4\nVROUTER_KEEPALIVED_ID = 9");
        context(&mut vm, &Template::default(), &l, false).unwrap();
        let c = vm.vector("CONTEXT").unwrap();
        let get = |k: &str| template::vector_get(c, k);
        assert_eq!(get("ONEGATE_ENDPOINT"), Some("http://gate:5030"));
        assert_eq!(get("VMID"), Some(sqlstore::objects::vm::ID_MARK));
        assert_eq!(get("VROUTER_ID"), Some("4"));
        assert_eq!(get("VROUTER_KEEPALIVED_ID"), Some("9"));
        assert_eq!(vm.single("CREATED_BY"), Some("5"));
    }

    #[test]
    fn network_yes_writes_each_nics_variables_from_the_nic_its_range_and_its_network() {
        let mut vm = t("CONTEXT = [ NETWORK = YES, HOST = \"$NAME\", SSH_PUBLIC_KEY = \"$USER[SSH_PUBLIC_KEY]\" ]\n\
             NIC = [ NIC_ID = 0, NETWORK_ID = 3, AR_ID = 0, IP = 10.0.0.2, MAC = 02:00:0a:00:00:02 ]\n\
             NIC = [ NIC_ID = 1, NETWORK_MODE = auto ]");
        context(&mut vm, &Template::default(), &lookup(), false).unwrap();
        let c = vm.vector("CONTEXT").unwrap();
        let get = |k: &str| template::vector_get(c, k);
        assert_eq!(get("HOST"), Some("web"));
        assert_eq!(get("SSH_PUBLIC_KEY"), Some("ssh-ed25519 AAAA alice"));
        assert_eq!(get("ETH0_IP"), Some("10.0.0.2"));
        assert_eq!(get("ETH0_MAC"), Some("02:00:0a:00:00:02"));
        assert_eq!(get("ETH0_GATEWAY"), Some("10.0.0.1"));
        assert_eq!(get("ETH0_DNS"), Some("8.8.8.8"));
        assert_eq!(get("ETH0_VROUTER_IP"), Some(""));
        assert_eq!(get("ETH1_IP"), None, "an auto NIC waits for its network");
        let keys: Vec<&str> = c.iter().map(|(k, _)| k.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }
}
