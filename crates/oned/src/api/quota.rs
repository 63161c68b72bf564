//! Quotas, as OpenNebula's (`Quota*.cc`): limits per user and per group, and their defaults;
//! `one.user.quota`, `one.group.quota`, `one.userquota.*`, `one.groupquota.*`; the `*_QUOTA`
//! elements of users and groups; the checks of VM and image creation and of VM resume.
//!
//! Unlike OpenNebula, usage is never stored: it is read from the VMs and images themselves
//! (`sqlstore::objects::quota`), and each checked change carries a guard that re-reads it in
//! its own replicated transaction. So usage cannot drift across failovers, crashes or restores,
//! and two concurrent creations cannot both pass a limit that only one of them fits in.

use std::collections::BTreeMap;

use sqlstore::objects::quota::{self as rows, Bound, Limit, Owner, VmUsage, DEFAULTS};
use sqlstore::objects::Table;
use sqlstore::{SqlStmt, SqlTxn};
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::xml::{cdata, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.user.quota", Write, Auth::Object, user_quota),
    method!("one.group.quota", Write, Auth::Object, group_quota),
    method!("one.userquota.info", Read, Auth::Object, userquota_info),
    method!(
        "one.userquota.update",
        Write,
        Auth::Object,
        userquota_update
    ),
    method!("one.groupquota.info", Read, Auth::Object, groupquota_info),
    method!(
        "one.groupquota.update",
        Write,
        Auth::Object,
        groupquota_update
    ),
];

/// Each entry kind, its container element and its metrics in the order OpenNebula checks
/// them (`Quota*.cc`).
const KINDS: [(&str, &str, &[&str]); 4] = [
    ("DATASTORE", "DATASTORE_QUOTA", &["SIZE", "IMAGES"]),
    ("NETWORK", "NETWORK_QUOTA", &["LEASES"]),
    (
        "VM",
        "VM_QUOTA",
        &[
            "VMS",
            "RUNNING_VMS",
            "CPU",
            "RUNNING_CPU",
            "MEMORY",
            "RUNNING_MEMORY",
            "SYSTEM_DISK_SIZE",
        ],
    ),
    ("IMAGE", "IMAGE_QUOTA", &["RVMS"]),
];

const DEFAULT: f64 = -1.0;
const UNLIMITED: f64 = -2.0;

/// oned.conf's `QUOTA_VM_ATTRIBUTE`s: numeric VM attributes counted as VM quota metrics, each
/// with its `RUNNING_` twin (`QuotaVirtualMachine::add_metric_generic`; a fixed metric or a
/// repeated one is left out).
pub fn generic_metrics(conf: &template::Template) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for a in conf.get_all("QUOTA_VM_ATTRIBUTE") {
        let Some(name) = a.value.as_single().map(str::trim) else {
            continue;
        };
        let running = format!("RUNNING_{name}");
        if !template::is_attribute_name(name)
            || metrics_of("VM").contains(&name)
            || names.contains(&name)
        {
            continue;
        }
        names.push(intern(name));
        names.push(intern(&running));
    }
    names
}

/// `name` as a `&'static str`, as the fixed metrics are. Only oned.conf's names are interned,
/// never a client's, so the set stays as small as the configuration.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(n);
    n
}

fn metrics_of(kind: &str) -> &'static [&'static str] {
    KINDS.iter().find(|k| k.0 == kind).map_or(&[], |k| k.2)
}

/// `one_util::float_to_str`: a whole number without decimals, anything else with two.
pub fn float_to_str(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A number as C++'s `ostream << float` prints it (`%g`: 1, 0.5, 2.048e+06): a limit in a
/// refusal, a VM's CPU.
pub fn float_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-5..6).contains(&exp) {
        let mantissa = v / 10f64.powi(exp);
        let m = trim_zeros(format!("{mantissa:.5}"));
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn parse_number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

// ---------------------------------------------------------------------------------------------
// What a user or group has: its limits and what it uses.

/// The quotas of one user or group (or the defaults): its limits, and what it uses.
#[derive(Default)]
pub struct Quotas {
    limits: Vec<Limit>,
    vm: Option<VmUsage>,
    /// (images, size) by datastore.
    datastores: BTreeMap<i64, (f64, f64)>,
    /// Leases by network.
    networks: BTreeMap<i64, f64>,
    /// VMs by image.
    images: BTreeMap<i64, f64>,
    /// Generic VM metrics (`QUOTA_VM_ATTRIBUTE`) with a limit, and what is used of each.
    generic: BTreeMap<String, f64>,
    /// What is used of each per-cluster VM entry, by its `rid`.
    clusters: BTreeMap<i64, ClusterUse>,
    /// The defaults print `_USED` as 0 and leave out nothing.
    defaults: bool,
}

/// What a user or group uses of one per-cluster VM entry (`CLUSTER_IDS`): its VMs there.
#[derive(Default, Clone)]
struct ClusterUse {
    vm: VmUsage,
    generic: BTreeMap<String, f64>,
}

/// The per-cluster VM entries of `limits`: each `rid` with its clusters.
fn cluster_entries(limits: &[Limit]) -> Vec<(i64, Vec<i64>)> {
    limits
        .iter()
        .filter(|l| l.kind == "VM" && l.metric == rows::CLUSTER_IDS)
        .map(|l| (l.rid, rows::cluster_ids(&l.value)))
        .collect()
}

/// What `owner` `oid` uses of each of its per-cluster VM entries, counting generic metrics
/// `generic`.
fn load_clusters(
    c: &sqlstore::Conn,
    owner: Owner,
    oid: i64,
    limits: &[Limit],
    generic: &[&str],
) -> Result<BTreeMap<i64, ClusterUse>, sqlstore::SqlError> {
    let mut used = BTreeMap::new();
    for (rid, ids) in cluster_entries(limits) {
        let mut u = ClusterUse {
            vm: rows::vm_cluster_usage(c, owner, oid, &ids)?,
            generic: BTreeMap::new(),
        };
        for m in generic {
            let g = rows::generic_cluster_usage(c, owner, oid, m, &ids)?;
            u.generic.insert(m.to_string(), g);
        }
        used.insert(rid, u);
    }
    Ok(used)
}

/// What `limits` are counted as weighing in memory (`quota_cache`).
fn limits_bytes(limits: &[Limit]) -> usize {
    limits
        .iter()
        .map(|l| std::mem::size_of::<Limit>() + l.kind.len() + l.metric.len() + l.value.len())
        .sum()
}

/// What a map of `n` entries of `K` to `V` is counted as weighing: a B-tree's nodes are about
/// half full at worst.
fn map_bytes<K, V>(m: &BTreeMap<K, V>) -> usize {
    2 * m.len() * std::mem::size_of::<(K, V)>()
}

impl Quotas {
    /// What it is counted as weighing in memory (`quota_cache`).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Quotas>()
            + limits_bytes(&self.limits)
            + map_bytes(&self.datastores)
            + map_bytes(&self.networks)
            + map_bytes(&self.images)
            + map_bytes(&self.generic)
            + self.generic.keys().map(String::len).sum::<usize>()
            + 2 * self.clusters.len() * std::mem::size_of::<(i64, ClusterUse)>()
    }

    fn limit(&self, kind: &str, rid: i64, metric: &str) -> Option<&str> {
        self.limits
            .iter()
            .find(|l| l.kind == kind && l.rid == rid && l.metric == metric)
            .map(|l| l.value.as_str())
    }

    fn used(&self, kind: &str, rid: i64, metric: &str) -> f64 {
        if kind == "VM" && rid >= 0 {
            let Some(u) = self.clusters.get(&rid) else {
                return 0.0;
            };
            return match metrics_of("VM").contains(&metric) {
                true => u.vm.get(metric),
                false => u.generic.get(metric).copied().unwrap_or(0.0),
            };
        }
        match kind {
            "VM" if !metrics_of("VM").contains(&metric) => {
                self.generic.get(metric).copied().unwrap_or(0.0)
            }
            "VM" => self.vm.map_or(0.0, |u| u.get(metric)),
            "DATASTORE" => self.datastores.get(&rid).map_or(0.0, |(images, size)| {
                if metric == "IMAGES" {
                    *images
                } else {
                    *size
                }
            }),
            "NETWORK" => self.networks.get(&rid).copied().unwrap_or(0.0),
            "IMAGE" => self.images.get(&rid).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// The entries to print for `kind`: those with limits, and those with usage.
    fn entries(&self, kind: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .limits
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.rid)
            .collect();
        match kind {
            "VM" if self.vm.is_some_and(|u| u.vms > 0.0) => ids.push(-1),
            "DATASTORE" => ids.extend(self.datastores.keys()),
            "NETWORK" => ids.extend(self.networks.keys()),
            "IMAGE" => ids.extend(self.images.keys()),
            _ => {}
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The generic VM metrics (`QUOTA_VM_ATTRIBUTE`) a limit names.
    fn generic_limits(&self) -> Vec<&str> {
        generic_names(&self.limits)
    }

    /// The per-cluster VM entry that holds cluster `cid`: its `rid` and its clusters.
    fn cluster_entry(&self, cid: i64) -> Option<(i64, Vec<i64>)> {
        cluster_entries(&self.limits)
            .into_iter()
            .find(|(_, ids)| ids.contains(&cid))
    }

    /// What is used of each generic metric a limit names.
    fn load_generic(
        &mut self,
        c: &sqlstore::Conn,
        owner: Owner,
        oid: i64,
    ) -> Result<(), sqlstore::SqlError> {
        let names: Vec<String> = self
            .generic_limits()
            .into_iter()
            .map(str::to_string)
            .collect();
        for m in names {
            let used = rows::generic_usage(c, owner, Some(oid), &m)?
                .remove(&oid)
                .unwrap_or(0.0);
            self.generic.insert(m, used);
        }
        Ok(())
    }

    /// The four containers, in OpenNebula's order, each entry's fields in alphabetical order.
    pub fn write(&self, x: &mut Xml<'_>) {
        let implicit = if self.defaults { "-2" } else { "-1" };
        for (kind, container, fixed) in KINDS {
            // The generic VM metrics show where a limit names them.
            let mut metrics: Vec<&str> = fixed.to_vec();
            if kind == "VM" {
                metrics.extend(self.generic_limits());
            }
            x.elem(container, |x| {
                for rid in self.entries(kind) {
                    let mut fields: Vec<(String, String)> = Vec::new();
                    // A per-cluster VM entry's limits left out are unlimited
                    // (`Quota::cleanup_quota`).
                    let mut implicit = implicit;
                    if kind != "VM" {
                        fields.push(("ID".into(), rid.to_string()));
                    } else if let Some(ids) = self.limit(kind, rid, rows::CLUSTER_IDS) {
                        fields.push((rows::CLUSTER_IDS.into(), ids.to_string()));
                        implicit = "-2";
                    }
                    for m in &metrics {
                        let limit = self.limit(kind, rid, m).unwrap_or(implicit);
                        let used = if self.defaults {
                            0.0
                        } else {
                            self.used(kind, rid, m)
                        };
                        fields.push((m.to_string(), limit.to_string()));
                        fields.push((format!("{m}_USED"), float_to_str(used)));
                    }
                    fields.sort();
                    x.elem(kind, |x| {
                        for (k, v) in &fields {
                            x.open(k).raw(&cdata(v)).close(k);
                        }
                    });
                }
            });
        }
    }
}

/// The generic VM metrics (`QUOTA_VM_ATTRIBUTE`) a limit of `limits` names.
fn generic_names(limits: &[Limit]) -> Vec<&str> {
    let fixed = metrics_of("VM");
    let mut names: Vec<&str> = limits
        .iter()
        .filter(|l| {
            l.kind == "VM" && l.metric != rows::CLUSTER_IDS && !fixed.contains(&l.metric.as_str())
        })
        .map(|l| l.metric.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The quotas of `owner` `oid` as OpenNebula shows them: oneadmin (user or group 0) uses
/// nothing that counts.
pub fn load(c: &sqlstore::Conn, owner: Owner, oid: i64) -> Result<Quotas, sqlstore::SqlError> {
    let mut q = Quotas {
        limits: rows::limits(c, owner, oid)?,
        defaults: oid == DEFAULTS,
        ..Quotas::default()
    };
    if oid > 0 {
        q.vm = rows::vm_usage(c, owner, Some(oid))?.remove(&oid);
        q.datastores = rows::datastore_usage(c, owner, Some(oid))?
            .into_iter()
            .map(|((_, ds), u)| (ds, u))
            .collect();
        q.networks = rows::network_usage(c, owner, Some(oid))?
            .into_iter()
            .map(|((_, vn), u)| (vn, u))
            .collect();
        q.images = rows::image_usage(c, owner, Some(oid))?
            .into_iter()
            .map(|((_, im), u)| (im, u))
            .collect();
        q.load_generic(c, owner, oid)?;
        q.clusters = load_clusters(c, owner, oid, &q.limits, &q.generic_limits())?;
    }
    Ok(q)
}

/// The quotas of every `owner`, for a pool listing: three queries, whatever the pool holds.
pub struct AllQuotas {
    limits: BTreeMap<i64, Vec<Limit>>,
    vm: BTreeMap<i64, VmUsage>,
    datastores: BTreeMap<(i64, i64), (f64, f64)>,
    networks: BTreeMap<(i64, i64), f64>,
    images: BTreeMap<(i64, i64), f64>,
    /// Generic VM metrics any limit names: (metric, owner id) -> used.
    generic: BTreeMap<(String, i64), f64>,
    /// What each owner uses of its per-cluster VM entries, by owner id.
    clusters: BTreeMap<i64, BTreeMap<i64, ClusterUse>>,
}

impl AllQuotas {
    pub fn load(c: &sqlstore::Conn, owner: Owner) -> Result<AllQuotas, sqlstore::SqlError> {
        let mut limits: BTreeMap<i64, Vec<Limit>> = BTreeMap::new();
        for (oid, l) in rows::all_limits(c, owner)? {
            limits.entry(oid).or_default().push(l);
        }
        let fixed = metrics_of("VM");
        let mut names: Vec<String> = limits
            .values()
            .flatten()
            .filter(|l| l.kind == "VM" && !fixed.contains(&l.metric.as_str()))
            .map(|l| l.metric.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut generic = BTreeMap::new();
        for m in names {
            for (oid, used) in rows::generic_usage(c, owner, None, &m)? {
                generic.insert((m.clone(), oid), used);
            }
        }
        // Per-cluster entries are few: each is read on its own.
        let mut clusters = BTreeMap::new();
        for (oid, l) in &limits {
            if *oid > 0 && !cluster_entries(l).is_empty() {
                clusters.insert(*oid, load_clusters(c, owner, *oid, l, &generic_names(l))?);
            }
        }
        Ok(AllQuotas {
            generic,
            clusters,
            limits,
            vm: rows::vm_usage(c, owner, None)?,
            datastores: rows::datastore_usage(c, owner, None)?,
            networks: rows::network_usage(c, owner, None)?,
            images: rows::image_usage(c, owner, None)?,
        })
    }

    /// What it is counted as weighing in memory (`quota_cache`).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<AllQuotas>()
            + self
                .limits
                .values()
                .map(|l| limits_bytes(l) + std::mem::size_of::<(i64, Vec<Limit>)>())
                .sum::<usize>()
            + map_bytes(&self.vm)
            + map_bytes(&self.datastores)
            + map_bytes(&self.networks)
            + map_bytes(&self.images)
            + map_bytes(&self.generic)
            + self.generic.keys().map(|(m, _)| m.len()).sum::<usize>()
            + self
                .clusters
                .values()
                .map(|c| 2 * c.len() * std::mem::size_of::<(i64, ClusterUse)>())
                .sum::<usize>()
    }

    /// The quotas of `oid`.
    pub fn of(&self, oid: i64) -> Quotas {
        let mut q = Quotas {
            limits: self.limits.get(&oid).cloned().unwrap_or_default(),
            defaults: oid == DEFAULTS,
            ..Quotas::default()
        };
        if oid > 0 {
            q.vm = self.vm.get(&oid).copied();
            q.datastores = self
                .datastores
                .range((oid, i64::MIN)..=(oid, i64::MAX))
                .map(|((_, ds), u)| (*ds, *u))
                .collect();
            q.networks = self
                .networks
                .range((oid, i64::MIN)..=(oid, i64::MAX))
                .map(|((_, vn), u)| (*vn, *u))
                .collect();
            q.images = self
                .images
                .range((oid, i64::MIN)..=(oid, i64::MAX))
                .map(|((_, im), u)| (*im, *u))
                .collect();
            let names: Vec<String> = q.generic_limits().into_iter().map(str::to_string).collect();
            for m in names {
                let used = self.generic.get(&(m.clone(), oid)).copied();
                q.generic.insert(m, used.unwrap_or(0.0));
            }
            q.clusters = self.clusters.get(&oid).cloned().unwrap_or_default();
        }
        q
    }
}

// ---------------------------------------------------------------------------------------------
// Setting limits.

/// What a quota update weighs a per-cluster VM entry (`CLUSTER_IDS`) against: the clusters
/// that exist, and the owner's per-cluster entries as each entry of the update leaves them.
#[derive(Default)]
pub struct ClusterView {
    existing: Vec<i64>,
    entries: Vec<(i64, Vec<i64>)>,
}

impl ClusterView {
    /// The clusters and the per-cluster entries of `owner` `oid`, read before an update.
    async fn load(ctx: &Ctx, owner: Owner, oid: i64) -> Result<ClusterView, Failure> {
        ctx.read(move |c| {
            Ok(ClusterView {
                existing: sqlstore::objects::cluster::all_ids(c)?,
                entries: cluster_entries(&rows::limits(c, owner, oid)?),
            })
        })
        .await
    }

    /// The entry a VM quota of `CLUSTER_IDS` `ids` updates, as `QuotaVirtualMachine::set`
    /// finds it: the one with the same clusters, else a new one, whose clusters must exist
    /// and be in no other entry.
    fn entry_for(&self, ids: &[i64]) -> Result<i64, Failure> {
        if let Some((rid, _)) = self.entries.iter().find(|(_, e)| e == ids) {
            return Ok(*rid);
        }
        for c in ids {
            if !self.existing.contains(c) {
                return Err(fail(code::ACTION, format!("Cluster {c} does not exist")));
            }
            if self.entries.iter().any(|(_, e)| e.contains(c)) {
                return Err(fail(
                    code::ACTION,
                    format!("Quota for cluster id {c} already exists"),
                ));
            }
        }
        Ok(ids.first().copied().unwrap_or(-1))
    }

    fn keep(&mut self, rid: i64, ids: Vec<i64>, kept: bool) {
        self.entries.retain(|(r, _)| *r != rid);
        if kept {
            self.entries.push((rid, ids));
        }
    }
}

/// `CLUSTER_IDS` as `one_util::split_unique` reads it: each comma-separated part's leading
/// integer, unparsable parts left out; sorted, each once.
fn normalized_clusters(text: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = text
        .split(',')
        .filter_map(|part| {
            let part = part.trim_start();
            let sign = usize::from(part.starts_with(['-', '+']));
            let digits = part[sign..].len()
                - part[sign..]
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            part[..sign + digits].parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The statements that set `text`'s entries on `owner` `oid` (`Quotas::set`): each entry named
/// is rewritten whole, a metric left out becoming the implicit value (-1, or -2 for defaults
/// and per-cluster VM entries).
fn set_stmts(
    owner: Owner,
    oid: i64,
    text: &str,
    generic: &[&'static str],
    view: &mut ClusterView,
) -> Result<Vec<SqlStmt>, Failure> {
    let defaults = oid == DEFAULTS;
    let t = super::validate::template(text).map_err(|e| fail(code::ACTION, e))?;
    let mut stmts = Vec::new();
    if defaults && t.get_all("VM").count() > 1 {
        return Err(fail(
            code::ACTION,
            "Only one default VM quota can be defined",
        ));
    }
    for (kind, _, fixed) in KINDS {
        let mut metrics: Vec<&str> = fixed.to_vec();
        if kind == "VM" {
            metrics.extend(generic);
        }
        for attr in t.get_all(kind) {
            let Some(v) = attr.value.as_vector() else {
                continue;
            };
            let get = |k: &str| template::vector_get(v, k);
            let raw_clusters = get(rows::CLUSTER_IDS).filter(|_| kind == "VM");
            if defaults && raw_clusters.is_some_and(|c| !c.is_empty()) {
                return Err(fail(
                    code::ACTION,
                    "CLUSTER_IDS attribute is not allowed for default VM quota",
                ));
            }
            let clusters = raw_clusters.map(normalized_clusters).unwrap_or_default();
            let joined: Vec<String> = clusters.iter().map(i64::to_string).collect();
            let joined = joined.join(",");
            let bad = || {
                let mut pairs: Vec<String> = v
                    .iter()
                    .map(|(k, val)| match k.as_str() {
                        rows::CLUSTER_IDS if kind == "VM" => format!("{k}={joined}"),
                        _ => format!("{k}={val}"),
                    })
                    .collect();
                if kind == "VM" && !defaults {
                    let who = match owner {
                        Owner::User => "UID",
                        Owner::Group => "GID",
                    };
                    pairs.push(format!("{who}={oid}"));
                }
                pairs.sort();
                fail(
                    code::ACTION,
                    format!(
                        "Negative limits or bad format in quota {kind} = [ {} ]",
                        pairs.join(",")
                    ),
                )
            };
            let rid = if kind == "VM" {
                match clusters.is_empty() {
                    true => -1,
                    false => view.entry_for(&clusters)?,
                }
            } else {
                match get("ID").and_then(|i| i.trim().parse::<i64>().ok()) {
                    Some(i) => i,
                    None => return Err(bad()),
                }
            };
            let implicit = if defaults { UNLIMITED } else { DEFAULT };
            let mut values = Vec::new();
            for m in &metrics {
                let value = get(m).and_then(parse_number).unwrap_or(implicit);
                let allowed = value >= 0.0 || value == UNLIMITED || (value == DEFAULT && !defaults);
                if !allowed {
                    return Err(bad());
                }
                values.push((*m, value));
            }
            // A per-cluster entry takes no default: -1 is unlimited there.
            let per_cluster = rid >= 0 && kind == "VM";
            let implicit = if per_cluster {
                for (_, v) in &mut values {
                    if *v == DEFAULT {
                        *v = UNLIMITED;
                    }
                }
                UNLIMITED
            } else {
                implicit
            };
            // An entry left at its implicit values holds nothing (`cleanup_quota`).
            let mut metrics: Vec<(&str, String)> = if values.iter().all(|(_, v)| *v == implicit) {
                Vec::new()
            } else {
                values
                    .into_iter()
                    .map(|(m, v)| (m, float_to_str(v)))
                    .collect()
            };
            if per_cluster {
                view.keep(rid, clusters.clone(), !metrics.is_empty());
                if !metrics.is_empty() {
                    metrics.push((rows::CLUSTER_IDS, joined.clone()));
                }
            }
            stmts.extend(rows::set_entry(owner, oid, kind, rid, &metrics));
        }
    }
    Ok(stmts)
}

async fn commit_set(ctx: &Ctx, stmts: Vec<SqlStmt>) -> Result<(), Failure> {
    if stmts.is_empty() {
        return Ok(());
    }
    ctx.commit(SqlTxn { stmts }, |r| r.internal()).await?;
    Ok(())
}

/// `one.user.quota(id, template)`: ADMIN on the user; never oneadmin.
pub async fn user_quota(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let text = p.string(1)?.to_string();
    if s.is_admin() {
        super::must_exist(ctx, Table::User, id).await?;
    } else {
        // A group administrator's rules grant ADMIN on the users of its group.
        super::user::authorize(ctx, s, id, wire::acl::ADMIN).await?;
    }
    if id == 0 {
        return Err(fail(code::ACTION, "Cannot set quotas for oneadmin user"));
    }
    let generic = generic_metrics(&ctx.config.raw);
    let mut view = ClusterView::load(ctx, Owner::User, id).await?;
    commit_set(ctx, set_stmts(Owner::User, id, &text, &generic, &mut view)?).await?;
    Ok(Value::Int(id as i32))
}

/// `one.group.quota(id, template)`: never oneadmin's group; ADMIN on the group (by ACL rules).
pub async fn group_quota(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let text = p.string(1)?.to_string();
    if id == 0 {
        return Err(fail(code::ACTION, "Cannot set quotas for oneadmin group"));
    }
    // `basic_authorization`: ADMIN on the group, which an ACL rule may grant.
    super::method::require_on(ctx, s, wire::acl::GROUP, id, wire::acl::ADMIN).await?;
    super::must_exist(ctx, Table::Group, id).await?;
    let generic = generic_metrics(&ctx.config.raw);
    let mut view = ClusterView::load(ctx, Owner::Group, id).await?;
    commit_set(
        ctx,
        set_stmts(Owner::Group, id, &text, &generic, &mut view)?,
    )
    .await?;
    Ok(Value::Int(id as i32))
}

fn defaults_root(owner: Owner) -> &'static str {
    match owner {
        Owner::User => "DEFAULT_USER_QUOTAS",
        Owner::Group => "DEFAULT_GROUP_QUOTAS",
    }
}

/// `<DEFAULT_USER_QUOTAS>` or `<DEFAULT_GROUP_QUOTAS>`, as user and group bodies end.
pub fn write_defaults(x: &mut Xml<'_>, owner: Owner, q: &Quotas) {
    x.elem(defaults_root(owner), |x| q.write(x));
}

async fn defaults_xml(ctx: &Ctx, owner: Owner) -> MethodResult {
    let q = super::quota_cache::defaults(ctx, owner).await?;
    Ok(Value::String(super::xml::build_with(|out| {
        write_defaults(&mut Xml::new(out), owner, &q)
    })))
}

pub async fn userquota_info(ctx: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    defaults_xml(ctx, Owner::User).await
}

pub async fn groupquota_info(ctx: &Ctx, _: &Session, _: Params<'_>) -> MethodResult {
    defaults_xml(ctx, Owner::Group).await
}

/// `one.{user,group}quota.update(template)`: only members of oneadmin's group by their
/// primary group, as OpenNebula checks; answers the new defaults.
async fn update_defaults(ctx: &Ctx, s: &Session, p: Params<'_>, owner: Owner) -> MethodResult {
    let text = p.string(0)?.to_string();
    if s.gid != 0 {
        return Err(fail(
            code::AUTHORIZATION,
            format!(
                "User [{}] : The default quotas can only be updated by users in the oneadmin group.",
                s.uid
            ),
        ));
    }
    let generic = generic_metrics(&ctx.config.raw);
    let mut view = ClusterView::default();
    commit_set(ctx, set_stmts(owner, DEFAULTS, &text, &generic, &mut view)?).await?;
    defaults_xml(ctx, owner).await
}

pub async fn userquota_update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    update_defaults(ctx, s, p, Owner::User).await
}

pub async fn groupquota_update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    update_defaults(ctx, s, p, Owner::Group).await
}

// ---------------------------------------------------------------------------------------------
// Checking a change.

/// Which VM entries a change weighs: the global one, also the per-cluster one of the
/// cluster a VM is in (`CLUSTER_ID` in the quota template), or only that one (a VM placed in
/// a cluster, `SKIP_GLOBAL_QUOTA`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Global,
    WithCluster(i64),
    ClusterOnly(i64),
}

impl Scope {
    fn cluster(self) -> Option<i64> {
        match self {
            Scope::Global => None,
            Scope::WithCluster(c) | Scope::ClusterOnly(c) => Some(c),
        }
    }
}

/// What a change asks of one entry: `amounts` of its metrics.
pub struct Ask {
    pub kind: &'static str,
    /// The datastore (or network, image) id; -1 for the VM entry.
    pub rid: i64,
    pub amounts: Vec<(&'static str, f64)>,
    pub scope: Scope,
}

/// The cluster VM `v` is in (its current record's), as `VirtualMachine::get_quota_template`
/// names it; `None` before its first placement.
pub fn cluster_of(v: &sqlstore::objects::vm::VmRow) -> Option<i64> {
    v.history.last().map(|h| h.cid)
}

impl Ask {
    /// A change of VM entry figures `amounts`.
    pub fn vm(amounts: Vec<(&'static str, f64)>) -> Ask {
        Ask {
            kind: "VM",
            rid: -1,
            amounts,
            scope: Scope::Global,
        }
    }

    /// Also weighed against the per-cluster entry of `cluster`, the one the VM is in.
    pub fn within(mut self, cluster: Option<i64>) -> Ask {
        if let Some(c) = cluster {
            self.scope = Scope::WithCluster(c);
        }
        self
    }

    /// Weighed only against the per-cluster entry of `cluster`, where the VM is placed.
    pub fn cluster_only(mut self, cluster: i64) -> Ask {
        self.scope = Scope::ClusterOnly(cluster);
        self
    }

    /// A new VM: everything it counts for, running included (a VM on hold counts as running,
    /// as in OpenNebula).
    pub fn new_vm(cpu: f64, memory: f64) -> Ask {
        Ask {
            kind: "VM",
            rid: -1,
            amounts: vec![
                ("VMS", 1.0),
                ("RUNNING_VMS", 1.0),
                ("CPU", cpu),
                ("RUNNING_CPU", cpu),
                ("MEMORY", memory),
                ("RUNNING_MEMORY", memory),
                ("SYSTEM_DISK_SIZE", 0.0),
            ],
            scope: Scope::Global,
        }
    }

    /// Sets what the VM holds in the system datastore (SYSTEM_DISK_SIZE), in MB.
    pub fn with_system_disk(mut self, size: f64) -> Ask {
        for (m, amount) in &mut self.amounts {
            if *m == "SYSTEM_DISK_SIZE" {
                *amount = size;
            }
        }
        self
    }

    /// Adds the generic metrics (`QUOTA_VM_ATTRIBUTE` of `conf`) a new VM's template `t`
    /// holds, each also as its `RUNNING_` twin (a new VM counts as running).
    pub fn with_generic(self, conf: &template::Template, t: &template::Template) -> Ask {
        self.with_generic_of(conf, t, &template::Template::default())
    }

    /// [`Ask::with_generic`] of a stored VM: an attribute of its template `t`, else of its
    /// user template `user` (`VirtualMachine::get_quota_template`).
    pub fn with_generic_of(
        mut self,
        conf: &template::Template,
        t: &template::Template,
        user: &template::Template,
    ) -> Ask {
        for m in generic_metrics(conf) {
            if m.starts_with("RUNNING_") {
                continue;
            }
            if let Some(v) = t
                .single(m)
                .or_else(|| user.single(m))
                .and_then(parse_number)
            {
                self.amounts.push((m, v));
                self.amounts.push((intern(&format!("RUNNING_{m}")), v));
            }
        }
        self
    }

    /// VM `v` placed in cluster `cid` from elsewhere (its first deploy, or a deploy or
    /// migration to another cluster): everything it counts for (the RUNNING_* figures if it
    /// is to run), weighed only against that cluster's entry, as `VirtualMachineDeploy` and
    /// `VirtualMachineMigrate` weigh it with `SKIP_GLOBAL_QUOTA`. `None` when it stays in its
    /// cluster.
    pub fn placed(
        conf: &template::Template,
        v: &sqlstore::objects::vm::VmRow,
        cid: i64,
        running: bool,
    ) -> Option<Ask> {
        if cluster_of(v) == Some(cid) {
            return None;
        }
        let t = template::Template::parse(&v.template).unwrap_or_default();
        let mut ask = Ask::new_vm(v.cpu, v.memory as f64)
            .with_system_disk(rows::system_disk_size_of(&t))
            .with_generic(conf, &t)
            .cluster_only(cid);
        if !running {
            ask.amounts.retain(|(m, _)| !m.starts_with("RUNNING_"));
        }
        Some(ask)
    }

    /// A VM that runs again (`resume`).
    pub fn running_vm(cpu: f64, memory: f64) -> Ask {
        Ask {
            kind: "VM",
            rid: -1,
            amounts: vec![
                ("RUNNING_VMS", 1.0),
                ("RUNNING_CPU", cpu),
                ("RUNNING_MEMORY", memory),
                ("SYSTEM_DISK_SIZE", 0.0),
            ],
            scope: Scope::Global,
        }
    }

    /// One more VM using image `image` (the IMAGE entry).
    pub fn image_vm(image: i64) -> Ask {
        Ask {
            kind: "IMAGE",
            rid: image,
            amounts: vec![("RVMS", 1.0)],
            scope: Scope::Global,
        }
    }

    /// `n` addresses of network `vnet` (the NETWORK entry).
    pub fn leases(vnet: i64, n: f64) -> Ask {
        Ask {
            kind: "NETWORK",
            rid: vnet,
            amounts: vec![("LEASES", n)],
            scope: Scope::Global,
        }
    }

    /// A new image of `size` MB in datastore `ds`.
    pub fn new_image(ds: i64, size: f64) -> Ask {
        Ask {
            kind: "DATASTORE",
            rid: ds,
            amounts: vec![("SIZE", size), ("IMAGES", 1.0)],
            scope: Scope::Global,
        }
    }
}

/// The guard of a VM whose template grows in the system datastore (a disk attached): the
/// growth from `old` to `new` charged to the VM's owner (in its cluster `cluster`), `None`
/// when it does not grow or no limit applies.
pub async fn system_disk_guard(
    ctx: &Ctx,
    s: &Session,
    (uid, gid, cluster): (i64, i64, Option<i64>),
    old: &str,
    new: String,
) -> Result<Option<SqlStmt>, Failure> {
    let delta = rows::system_disk_size(&new) - rows::system_disk_size(old);
    if delta <= 0.0 {
        return Ok(None);
    }
    let ask = Ask::vm(vec![("SYSTEM_DISK_SIZE", delta)]).within(cluster);
    Charge {
        asks: std::slice::from_ref(&ask),
        uid,
        gid,
        wording: Wording::Caller(s.uid),
    }
    .guard(ctx)
    .await
}

/// The guard of `size` addresses of network `vnet` reserved (`one.vn.reserve`): charged to the
/// reservation's owner, the caller for a new one or the owner of reservation `onto`, as
/// OpenNebula charges its LEASES in the parent network.
pub async fn reservation_guard(
    ctx: &Ctx,
    s: &Session,
    onto: Option<i64>,
    vnet: i64,
    size: i64,
) -> Result<Option<SqlStmt>, Failure> {
    let (uid, gid) = match onto {
        Some(rid) => {
            let r = super::vnet::NETS.get(ctx, rid).await?;
            (r.head.owned.uid, r.head.owned.gid)
        }
        None => (s.uid, s.gid),
    };
    Charge {
        asks: &[Ask::leases(vnet, size as f64)],
        uid,
        gid,
        wording: Wording::Caller(s.uid),
    }
    .guard(ctx)
    .await
}

/// Whether any user or group has a per-cluster VM quota: only then does the scheduler weigh
/// its placements against them.
pub async fn any_per_cluster(pool: &sqlstore::ReadPool) -> Result<bool, Failure> {
    super::read_row_in(pool, rows::any_per_cluster).await
}

/// The guard of VM `vid` placed by the scheduler in cluster `cid`, weighed as
/// `VirtualMachineDeploy` weighs oneadmin's plan ([`Ask::placed`]); `Err` says why not.
pub async fn placed_guard(ctx: &Ctx, vid: i64, cid: i64) -> Result<Option<SqlStmt>, String> {
    let words = |f: Failure| super::vm_backup::message(&f);
    let v = super::vm::VMS.get(ctx, vid).await.map_err(words)?;
    let Some(ask) = Ask::placed(&ctx.config.raw, &v, cid, true) else {
        return Ok(None);
    };
    let charge = Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: Wording::Caller(0),
    };
    charge.guard(ctx).await.map_err(words)
}

/// A quota the change would pass: `<who> [<id>] limit of <L> reached for <M> quota in <KIND>`.
pub struct Exceeded(pub String);

/// Checks `ask` against the quotas of user `uid` then group `gid` (oneadmin's are never
/// checked), as `Request::quota_authorization`; the bounds the change must keep.
pub async fn check(
    ctx: &Ctx,
    uid: i64,
    gid: i64,
    ask: &Ask,
) -> Result<Result<Vec<Bound>, Exceeded>, Failure> {
    check_in(&ctx.pool, uid, gid, ask).await
}

/// [`check`] on the read pool `pool`, for the leader's tasks (scheduled actions).
pub async fn check_in(
    pool: &sqlstore::ReadPool,
    uid: i64,
    gid: i64,
    ask: &Ask,
) -> Result<Result<Vec<Bound>, Exceeded>, Failure> {
    let mut bounds = Vec::new();
    for (owner, oid) in [(Owner::User, uid), (Owner::Group, gid)] {
        if oid <= 0 {
            continue;
        }
        // A generic metric's use is read whether its limit is the owner's or the default's.
        let generic: Vec<&'static str> = ask
            .amounts
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| ask.kind == "VM" && !metrics_of("VM").contains(m))
            .collect();
        let keyed = generic.is_empty();
        let read = move |c: &sqlstore::Conn| {
            let mut mine = load(c, owner, oid)?;
            for m in &generic {
                let used = rows::generic_usage(c, owner, Some(oid), m)?.remove(&oid);
                mine.generic.insert(m.to_string(), used.unwrap_or(0.0));
            }
            Ok((mine, load(c, owner, DEFAULTS)?))
        };
        // Two rows by key, read here; a generic metric's use sums the owner's VMs, on a
        // blocking thread.
        let (mine, defaults) = if keyed {
            super::read_row_in(pool, read).await?
        } else {
            super::read_in(pool, read).await?
        };
        // `QuotaVirtualMachine::check`: the entry of the VM's cluster, then the global one.
        let mut entries: Vec<(i64, Vec<i64>)> = Vec::new();
        if let (true, Some(cid)) = (ask.kind == "VM", ask.scope.cluster()) {
            entries.extend(mine.cluster_entry(cid));
        }
        if !matches!(ask.scope, Scope::ClusterOnly(_)) {
            entries.push((ask.rid, Vec::new()));
        }
        for (rid, clusters) in entries {
            let per_cluster = !clusters.is_empty();
            for (metric, amount) in &ask.amounts {
                let own = mine.limit(ask.kind, rid, metric).and_then(parse_number);
                let limit = match own {
                    Some(l) if l != DEFAULT => l,
                    // A per-cluster entry has no default: what it leaves out is unlimited.
                    _ if per_cluster => UNLIMITED,
                    _ => defaults
                        .limit(ask.kind, rid, metric)
                        .and_then(parse_number)
                        .unwrap_or(UNLIMITED),
                };
                if limit == UNLIMITED || limit < 0.0 {
                    continue;
                }
                let used = mine.used(ask.kind, rid, metric);
                if used + amount > limit {
                    let with_id = if per_cluster {
                        let ids: Vec<String> = clusters.iter().map(i64::to_string).collect();
                        format!(" with ID: {}", ids.join(","))
                    } else if ask.kind == "VM" {
                        String::new()
                    } else {
                        format!(" with ID: {rid}")
                    };
                    return Ok(Err(Exceeded(format!(
                        "{} [{oid}] limit of {} reached for {metric} quota in {}{with_id}",
                        owner.as_str(),
                        float_g(limit),
                        ask.kind
                    ))));
                }
                bounds.push(Bound {
                    owner,
                    oid,
                    kind: ask.kind,
                    rid,
                    metric,
                    limit,
                    clusters: clusters.clone(),
                });
            }
        }
    }
    Ok(Ok(bounds))
}

/// How a quota refusal is worded: as allocate, instantiate and chown word it (AUTHORIZATION,
/// `User [<caller>] : <exceeded>.`), as a VM action does (ACTION, the bare text), or as
/// `Quotas::vm_check` does for `recover --recreate` (ACTION, `User [u] ...`/`Group [g] ...`).
#[derive(Debug, Clone, Copy)]
pub enum Wording {
    Caller(i64),
    Action,
    Recreate,
}

impl Wording {
    fn word(self, text: &str) -> Failure {
        match self {
            Wording::Caller(uid) => fail(code::AUTHORIZATION, format!("User [{uid}] : {text}.")),
            Wording::Action => fail(code::ACTION, text.to_string()),
            Wording::Recreate => {
                let mut capital = text.to_string();
                if let Some(first) = capital.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                fail(code::ACTION, capital)
            }
        }
    }
}

/// AUTHORIZATION, as allocate and instantiate refuse: `User [<caller>] : <exceeded>.`
pub fn refused(s: &Session, e: Exceeded) -> Failure {
    Wording::Caller(s.uid).word(&e.0)
}

/// A change that counts for the quotas of user `uid` and group `gid`: every entry of `asks`
/// (a VM's networks, the VM, its images), weighed as `Request::quota_authorization` weighs
/// them: all of the user's, then all of the group's.
pub struct Charge<'a> {
    pub asks: &'a [Ask],
    pub uid: i64,
    pub gid: i64,
    pub wording: Wording,
}

impl Charge<'_> {
    /// Checks the charge on the leader, for OpenNebula's message: the guard statement that
    /// holds the quotas where the change is applied, `None` when no limit applies.
    pub async fn guard(&self, ctx: &Ctx) -> Result<Option<SqlStmt>, Failure> {
        self.guard_in(&ctx.pool).await
    }

    /// [`Charge::guard`] on the read pool `pool`.
    pub async fn guard_in(&self, pool: &sqlstore::ReadPool) -> Result<Option<SqlStmt>, Failure> {
        let bounds = self
            .bounds(pool)
            .await?
            .map_err(|e| self.wording.word(&e.0))?;
        Ok(rows::guard(&bounds))
    }

    /// The bounds every entry keeps, or the first one exceeded.
    async fn bounds(
        &self,
        pool: &sqlstore::ReadPool,
    ) -> Result<Result<Vec<Bound>, Exceeded>, Failure> {
        let mut bounds = Vec::new();
        for (uid, gid) in [(self.uid, -1), (-1, self.gid)] {
            for ask in self.asks {
                match check_in(pool, uid, gid, ask).await? {
                    Ok(b) => bounds.extend(b),
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        Ok(Ok(bounds))
    }

    /// The refusal of a change whose guard refused it: the limit a concurrent change used up,
    /// checked again.
    pub async fn lost_race(&self, ctx: &Ctx) -> Failure {
        match self.bounds(&ctx.pool).await {
            Ok(Err(e)) => self.wording.word(&e.0),
            Ok(Ok(_)) => self
                .wording
                .word("a quota was reached by another request meanwhile, try again"),
            Err(f) => f,
        }
    }
}

/// Commits `stmts` followed by the guard of `charge`, if any: a refusal by the guard is the
/// quota's (re-checked); any other is worded by `refused`.
pub async fn commit_charged(
    ctx: &Ctx,
    stmts: Vec<SqlStmt>,
    charge: Option<Charge<'_>>,
    refused: impl FnOnce(super::Refused) -> Failure,
) -> Result<(), Failure> {
    let guard = match &charge {
        Some(c) => c.guard(ctx).await?,
        None => None,
    };
    commit_guarded(ctx, stmts, charge, guard, refused).await
}

/// [`commit_charged`] with the guard `charge` answered earlier ([`Charge::guard`]), for calls
/// that refuse an exceeded quota before their other checks, as OpenNebula orders them.
pub async fn commit_guarded(
    ctx: &Ctx,
    mut stmts: Vec<SqlStmt>,
    charge: Option<Charge<'_>>,
    guard: Option<SqlStmt>,
    refused: impl FnOnce(super::Refused) -> Failure,
) -> Result<(), Failure> {
    let guard_at = stmts.len();
    let guarded = guard.is_some();
    stmts.extend(guard);
    let mut raced = false;
    let result = ctx
        .commit(SqlTxn { stmts }, |r| {
            raced = guarded && r.stmt == guard_at;
            refused(r)
        })
        .await;
    match (result, charge) {
        (Err(_), Some(c)) if raced => Err(c.lost_race(ctx).await),
        (result, _) => result.map(drop),
    }
}

/// Creates an object under the quotas: checks `ask` for the caller, then inserts with a guard
/// after the insert, so that the check holds where the change is applied, on every server.
#[allow(clippy::too_many_arguments)]
pub async fn allocate(
    ctx: &Ctx,
    s: &Session,
    ask: &Ask,
    pool: &str,
    insert: SqlStmt,
    what: &str,
    kind: &str,
    name: &str,
    refusal: super::writes::Refusal,
) -> MethodResult {
    let charge = Charge {
        asks: std::slice::from_ref(ask),
        uid: s.uid,
        gid: s.gid,
        wording: Wording::Caller(s.uid),
    };
    let new = super::writes::New {
        what,
        kind,
        name,
        refusal,
        owner: Some(s.uid),
    };
    let Some(guard) = charge.guard(ctx).await? else {
        return super::writes::allocate_next_refused(ctx, pool, insert, Vec::new(), new, |_| {})
            .await;
    };
    let mut raced = false;
    let result = super::writes::allocate_next_refused(ctx, pool, insert, vec![guard], new, |r| {
        raced = r.stmt == 1;
    })
    .await;
    match result {
        Err(_) if raced => Err(charge.lost_race(ctx).await),
        other => other,
    }
}

/// Why [`allocate_all`] did not create the object.
pub enum Allocation {
    /// One of the `with` statements matched nothing: what it relied on changed meanwhile.
    Raced,
    Failed(Failure),
}

/// Creates an object that counts for several quota entries (a VM with leases in networks):
/// checks every `asks` for the caller, then inserts with `with` (statements that must match)
/// and one guard holding every bound, where the change is applied.
#[allow(clippy::too_many_arguments)]
pub async fn allocate_all(
    ctx: &Ctx,
    s: &Session,
    asks: &[Ask],
    pool: &str,
    insert: SqlStmt,
    with: Vec<SqlStmt>,
    what: &str,
    kind: &str,
) -> Result<Value, Allocation> {
    let charge = Charge {
        asks,
        uid: s.uid,
        gid: s.gid,
        wording: Wording::Caller(s.uid),
    };
    let bounds = match charge.bounds(&ctx.pool).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(Allocation::Failed(charge.wording.word(&e.0))),
        Err(f) => return Err(Allocation::Failed(f)),
    };
    let taken = with.len();
    let mut stmts = with;
    let guarded = match rows::guard(&bounds) {
        Some(g) => {
            stmts.push(g);
            true
        }
        None => false,
    };
    let mut refused_at = None;
    let new = super::writes::New {
        what,
        kind,
        name: "",
        refusal: super::writes::Refusal::Internal,
        owner: None,
    };
    let result = super::writes::allocate_next_refused(ctx, pool, insert, stmts, new, |r| {
        if r.kind == sqlstore::TxnErrorKind::NotFound {
            refused_at = Some(r.stmt);
        }
    })
    .await;
    match (result, refused_at) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(at)) if (1..=taken).contains(&at) => Err(Allocation::Raced),
        (Err(_), Some(at)) if guarded && at == taken + 1 => {
            Err(Allocation::Failed(charge.lost_race(ctx).await))
        }
        (Err(f), _) => Err(Allocation::Failed(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_opennebula_prints_them() {
        assert_eq!(float_to_str(-1.0), "-1");
        assert_eq!(float_to_str(1024.0), "1024");
        assert_eq!(float_to_str(0.5), "0.50");
        assert_eq!(float_to_str(1.234), "1.23");
        assert_eq!(float_g(1.0), "1");
        assert_eq!(float_g(0.5), "0.5");
        assert_eq!(float_g(2_048_000.0), "2.048e+06");
        assert_eq!(float_g(8192.0), "8192");
        assert_eq!(float_g(123456.0), "123456");
    }

    #[test]
    fn quota_vm_attributes_are_metrics_with_running_twins() {
        let conf = template::Template::parse(
            "QUOTA_VM_ATTRIBUTE = \"VCPU\"\nQUOTA_VM_ATTRIBUTE = \"CPU\"\n\
             QUOTA_VM_ATTRIBUTE = \"VCPU\"\nQUOTA_VM_ATTRIBUTE = \"BAD NAME\"",
        )
        .unwrap();
        let generic = generic_metrics(&conf);
        assert_eq!(generic, ["VCPU", "RUNNING_VCPU"]);
        // A VM entry now sets them too: 1 delete, 7 fixed metrics and 2 generic ones.
        let stmts = set_stmts(
            Owner::User,
            2,
            "VM = [ VCPU = 8 ]",
            &generic,
            &mut ClusterView::default(),
        )
        .unwrap();
        assert_eq!(stmts.len(), 1 + 7 + 2);
        let t = template::Template::parse("CPU = 1\nMEMORY = 64\nVCPU = 4").unwrap();
        let ask = Ask::new_vm(1.0, 64.0).with_generic(&conf, &t);
        assert!(ask.amounts.contains(&("VCPU", 4.0)));
        assert!(ask.amounts.contains(&("RUNNING_VCPU", 4.0)));
    }

    #[test]
    fn per_cluster_entries_are_keyed_by_their_clusters_and_take_no_default() {
        assert_eq!(normalized_clusters(" 100, 2,100,x, 7a,"), [2, 7, 100]);
        let mut view = ClusterView {
            existing: vec![0, 100, 101],
            entries: Vec::new(),
        };
        // Stored under its smallest cluster, with CLUSTER_IDS; -1 there means unlimited.
        let stmts = set_stmts(
            Owner::User,
            2,
            "VM = [ CLUSTER_IDS = \"101,100\", VMS = 2, CPU = -1 ]",
            &[],
            &mut view,
        )
        .unwrap();
        assert_eq!(view.entries, [(100, vec![100, 101])]);
        let texts: Vec<String> = stmts
            .iter()
            .flat_map(|s| s.params.iter())
            .filter_map(|p| match p {
                sqlstore::SqlValue::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert!(texts.contains(&"100,101".to_string()), "{texts:?}");
        assert!(!texts.contains(&"-1".to_string()), "{texts:?}");
        let message = |r: Result<Vec<SqlStmt>, Failure>| match r {
            Err(Failure::Api { message, .. }) => message,
            other => panic!("taken: {:?}", other.map(|s| s.len())),
        };
        let one = |text: &str, view: &mut ClusterView| set_stmts(Owner::User, 2, text, &[], view);
        assert_eq!(
            message(one("VM = [ CLUSTER_IDS = \"0,101\", VMS = 1 ]", &mut view)),
            "Quota for cluster id 101 already exists"
        );
        assert_eq!(
            message(one("VM = [ CLUSTER_IDS = \"5\", VMS = 1 ]", &mut view)),
            "Cluster 5 does not exist"
        );
        // The same clusters, in any order, update the entry; all unlimited, it goes.
        let stmts = one("VM = [ CLUSTER_IDS = \"100, 101\", VMS = -2 ]", &mut view).unwrap();
        assert_eq!(stmts.len(), 1);
        assert!(view.entries.is_empty());
    }

    #[test]
    fn a_quota_entry_is_rewritten_whole_and_bad_limits_are_named() {
        let stmts = set_stmts(
            Owner::User,
            2,
            "VM = [ VMS = 5 ]",
            &[],
            &mut ClusterView::default(),
        )
        .unwrap();
        // The entry goes, then each metric comes back: VMS 5, the others -1.
        assert_eq!(stmts.len(), 1 + 7);
        assert!(stmts[1..]
            .iter()
            .any(|s| s.params.contains(&sqlstore::SqlValue::Text("5".into()))));
        let Err(Failure::Api { message, .. }) = set_stmts(
            Owner::User,
            2,
            "DATASTORE = [ ID = 1, SIZE = -5 ]",
            &[],
            &mut ClusterView::default(),
        ) else {
            panic!("a negative limit was taken");
        };
        assert_eq!(
            message,
            "Negative limits or bad format in quota DATASTORE = [ ID=1,SIZE=-5 ]"
        );
        // Defaults take -2 or a limit, never -1.
        assert!(set_stmts(
            Owner::User,
            DEFAULTS,
            "VM = [ VMS = -1 ]",
            &[],
            &mut ClusterView::default()
        )
        .is_err());
        // Every metric at -1: the entry is cleared.
        let stmts = set_stmts(
            Owner::Group,
            100,
            "VM = [ VMS = -1 ]",
            &[],
            &mut ClusterView::default(),
        )
        .unwrap();
        assert_eq!(stmts.len(), 1);
    }
}
