//! The method table: every `/RPC2` method as data (its name, how it is routed, who may call
//! it, its handler). Dispatch reads the table; nothing is inferred from a method's name.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use xmlrpc::Params;

use sqlstore::objects::Table;
use wire::acl;

use super::perms::{self, Caller, Owned};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// How a method is routed in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Zone and server status: always answered from the local server, even without a quorum,
    /// so an operator can see a broken zone.
    Status,
    /// Object reads (OpenNebula's `leader_only = false`): any server answers from its own
    /// database, which may be stale, even without a quorum. With `X-OneHA-Read: leader` the read
    /// goes to the leader, which confirms its leadership first, so the answer includes every
    /// write acknowledged before the call (linearizable) or the call fails.
    Read,
    /// Changes: only the leader runs them; followers forward them.
    Write,
}

/// Who may call a method, checked by dispatch before the handler runs (on the server that
/// runs it: the leader for a write). A kind is an ACL resource bit (`wire::acl::HOST`...), a
/// right one of `wire::acl::{USE, MANAGE, ADMIN, CREATE}`: OpenNebula's `auth_object` and
/// `auth_op`. Group oneadmin always passes; anyone else passes if an ACL rule (or, for a
/// group, being in it) grants the right, as `AclManager::authorize` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Any authenticated user; the handler authorizes against the object (permission bits,
    /// ACL rules) or the zone, in OpenNebula's order of checks.
    Object,
    /// Group oneadmin only: AUTHORIZATION `Not authorized to perform <what>.`
    /// (`ADMIN DB CHECKSUM`), for the families not yet authorized by ACL rules here.
    Admin(&'static str),
    /// Group oneadmin only, about the object whose id is the first parameter:
    /// `Not authorized to perform <what> [<id>].` (`ADMIN USER [3]`).
    AdminOn(&'static str),
    /// Creating an object of the kind (`add_create_auth`): `Not authorized to perform CREATE
    /// <KIND>.` unless a rule grants CREATE on every object of it (`HOST/* CREATE`).
    Create(u64),
    /// A right on the kind as a whole, on no object (`basic_authorization(-1)`): only rules on
    /// every object of it grant it. `Not authorized to perform MANAGE ACL.`
    Pool(u64, u64),
    /// A right on the object whose id is the first parameter (`basic_authorization(id)`):
    /// NO_EXISTS `Error getting <object> [<id>].` if there is none, else
    /// `Not authorized to perform <RIGHT> <KIND> [<id>].` unless granted.
    On(u64, u64),
    /// A right on an object the handler checks where OpenNebula does: after checks of its
    /// own (the zone a server change names), or together with the other objects the call
    /// names, all refusals in one message (`ADMIN CLUSTER [100]; ... ADMIN HOST [0]`).
    Deferred(u64, u64),
}

pub type Handler = for<'a> fn(
    &'a Ctx,
    &'a Session,
    Params<'a>,
) -> Pin<Box<dyn Future<Output = MethodResult> + Send + 'a>>;

#[derive(Clone, Copy)]
pub struct Method {
    pub name: &'static str,
    pub kind: Kind,
    pub auth: Auth,
    pub handler: Handler,
}

/// One table entry: `method!(name, Kind, Auth, handler)` for a handler of
/// `(ctx, session, params)`, or `method!(name, Kind, Auth, handler, &FAMILY)` for one of the
/// owned-object handlers shared by every family.
#[macro_export]
macro_rules! method {
    ($name:expr, $kind:ident, $auth:expr, $f:path) => {
        $crate::api::method::Method {
            name: $name,
            kind: $crate::api::method::Kind::$kind,
            auth: $auth,
            handler: |c, s, p| Box::pin($f(c, s, p)),
        }
    };
    ($name:expr, $kind:ident, $auth:expr, $f:path, $family:expr) => {
        $crate::api::method::Method {
            name: $name,
            kind: $crate::api::method::Kind::$kind,
            auth: $auth,
            handler: |c, s, p| Box::pin($f(c, s, p, $family)),
        }
    };
}

/// Every family's table.
fn tables() -> &'static [&'static [Method]] {
    use super::*;
    &[
        system::METHODS,
        zone::METHODS,
        user::METHODS,
        group::METHODS,
        acl::METHODS,
        host::METHODS,
        clusters::METHODS,
        cluster_plan::METHODS,
        vm::METHODS,
        vm::OWNED,
        vm_ops::METHODS,
        vmtemplate::METHODS,
        vmtemplate::OWNED,
        storage::DATASTORE_METHODS,
        storage::DATASTORE_OWNED,
        storage::IMAGE_METHODS,
        storage::IMAGE_OWNED,
        vnet::METHODS,
        vnet::OWNED,
        document::METHODS,
        document::OWNED,
        quota::METHODS,
        vdc::METHODS,
        vdc::RESOURCE_METHODS,
        hook::METHODS,
        hook::OWNED,
        market::METHODS,
        market::OWNED,
        vntemplate::METHODS,
        vntemplate::OWNED,
        vnet_leases::METHODS,
        vm_nics::METHODS,
        vm_pci::METHODS,
        vm_disk_attach::METHODS,
        vm_sgs::METHODS,
        vm_resize::METHODS,
        vm_migrate::METHODS,
        vm_recover::METHODS,
        vm_updateconf::METHODS,
        vm_sched::METHODS,
        secgroup::METHODS,
        vrouter::METHODS,
        secgroup::OWNED,
        vmgroup::METHODS,
        vm_snapshots::METHODS,
        vm_disk_ops::METHODS,
        vm_disk_saveas::METHODS,
        monitoring::METHODS,
        accounting::METHODS,
        showback::METHODS,
        vm_backup::METHODS,
        backupjob::METHODS,
        backupjob::OWNED,
        // New families: add their tables here, one line each.
    ]
}

/// Every method OneHA answers.
pub fn all() -> impl Iterator<Item = &'static Method> {
    tables().iter().flat_map(|t| t.iter())
}

/// The method called `name`, if OneHA answers it.
pub fn lookup(name: &str) -> Option<&'static Method> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Method>> = OnceLock::new();
    INDEX
        .get_or_init(|| all().map(|m| (m.name, m)).collect())
        .get(name)
        .copied()
}

// ---------------------------------------------------------------------------------------------
// The rights of the table, and of handlers that check several objects at once.

/// How OpenNebula prints a kind in its refusals (`PoolObjectSQL::type_to_str`).
pub fn kind_name(kind: u64) -> &'static str {
    if kind == acl::ACL {
        return "ACL";
    }
    acl::RESOURCES
        .iter()
        .find(|(bit, _)| *bit == kind)
        .map_or("-", |(_, name)| name)
}

/// An object OpenNebula gives no owner of its own (a host, cluster, group, VDC or zone) as its
/// authorization sees it once read (`from_xml`, `get_permissions`): owner oneadmin, group
/// oneadmin, the owner may USE and MANAGE it; a cluster and a group are their own group, and
/// a group's members may USE it (`Group::Group`: `group_u = 1`).
pub fn unowned(kind: u64, oid: i64) -> Owned {
    let own_group = kind == acl::GROUP || kind == acl::CLUSTER;
    Owned {
        oid,
        uid: 0,
        gid: if own_group { oid } else { 0 },
        perms: if kind == acl::GROUP { 0o640 } else { 0o600 },
    }
}

/// The table and the NO_EXISTS name (`Request::object_name`) of an unowned kind.
fn unowned_table(kind: u64) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        acl::HOST => ("host_pool", "host"),
        acl::CLUSTER => ("cluster_pool", "cluster"),
        acl::GROUP => ("group_pool", "group"),
        acl::VDC => ("vdc_pool", "VDC"),
        acl::ZONE => ("zone_pool", "zone"),
        _ => return None,
    })
}

/// What authorization knows of object `oid` of `table` (NO_EXISTS if it is gone): a
/// datastore's or network's owner, group and permissions; a user owns itself, in its primary
/// group (`User::from_xml`); hosts and groups are [`unowned`].
pub async fn owned(ctx: &Ctx, table: Table, oid: i64) -> Result<Owned, Failure> {
    let (sql, what) = match table {
        Table::Datastore => (
            "SELECT oid, uid, gid, perms FROM datastore_pool WHERE oid = ?1",
            "datastore",
        ),
        Table::Vnet => (
            "SELECT oid, uid, gid, perms FROM vnet_pool WHERE oid = ?1",
            "virtual network",
        ),
        Table::User => (
            "SELECT oid, oid, gid, 384 FROM user_pool WHERE oid = ?1",
            "user",
        ),
        Table::Host => return Ok(unowned(acl::HOST, oid)),
        Table::Group => return Ok(unowned(acl::GROUP, oid)),
    };
    let found = ctx
        .read(move |c| {
            use sqlstore::Optional;
            c.prepare_cached(sql)?
                .query_row([oid], |r| {
                    Ok(Owned {
                        oid: r.get(0)?,
                        uid: r.get(1)?,
                        gid: r.get(2)?,
                        perms: r.get(3)?,
                    })
                })
                .optional()
        })
        .await?;
    found.ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting {what} [{oid}].")))
}

/// One right an authorization asks for (an item of OpenNebula's `AuthRequest`): on an object,
/// or on the kind as a whole (creating, `MANAGE ACL`).
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub kind: u64,
    pub right: u64,
    pub obj: Option<Owned>,
}

impl Need {
    /// `right` on unowned object `oid` of `kind` (see [`unowned`]).
    pub fn on(kind: u64, oid: i64, right: u64) -> Need {
        Need::owned(kind, unowned(kind, oid), right)
    }

    /// `right` on an object with an owner, group and permissions.
    pub fn owned(kind: u64, obj: Owned, right: u64) -> Need {
        Need {
            kind,
            right,
            obj: Some(obj),
        }
    }

    /// `right` on the kind as a whole: only a rule on every object of it (`*`) grants it.
    pub fn kind(kind: u64, right: u64) -> Need {
        Need {
            kind,
            right,
            obj: None,
        }
    }

    pub(super) fn granted(&self, c: &Caller<'_>) -> bool {
        match &self.obj {
            Some(o) => c.may(self.kind, o, self.right),
            None if self.right == acl::CREATE => c.may_create(self.kind),
            None => c.may_on(self.kind, -1, -1, self.right),
        }
    }

    /// `Not authorized to perform ADMIN HOST [3]`, as `AuthRequest::add_auth` words it.
    pub(super) fn refusal(&self) -> String {
        let id = self
            .obj
            .map(|o| format!(" [{}]", o.oid))
            .unwrap_or_default();
        format!(
            "Not authorized to perform {} {}{id}",
            perms::right_name(self.right),
            kind_name(self.kind)
        )
    }
}

/// OpenNebula's `UserPool::authorize` of an `AuthRequest`: group oneadmin passes; anyone else
/// needs every right, and is told every one refused at once:
/// `User [5] : Not authorized to perform ADMIN CLUSTER [100]; Not authorized to perform
/// ADMIN HOST [0].`
pub async fn require(ctx: &Ctx, s: &Session, needs: &[Need]) -> Result<(), Failure> {
    if s.is_admin() || needs.is_empty() {
        return Ok(());
    }
    let c = perms::caller(ctx, s).await?;
    let refused: Vec<String> = needs
        .iter()
        .filter(|n| !n.granted(&c))
        .map(Need::refusal)
        .collect();
    super::granted_unless(s, &refused)
}

/// `right` on unowned object `oid` of `kind`, as `Request::basic_authorization` checks it:
/// a caller it is refused to learns first whether the object exists (NO_EXISTS
/// `Error getting host [7].`).
pub async fn require_on(
    ctx: &Ctx,
    s: &Session,
    kind: u64,
    oid: i64,
    right: u64,
) -> Result<(), Failure> {
    // `basic_authorization` of a negative id authorizes the bare type: only a rule on every
    // object of the kind grants it (then the handler finds no such object).
    if oid < 0 && !s.is_admin() {
        return require(ctx, s, &[Need::kind(kind, right)]).await;
    }
    let refused = match require(ctx, s, &[Need::on(kind, oid, right)]).await {
        Err(
            f @ Failure::Api {
                code: code::AUTHORIZATION,
                ..
            },
        ) => f,
        other => return other,
    };
    let Some((table, name)) = unowned_table(kind) else {
        return Err(refused);
    };
    let exists = ctx
        .read(move |c| {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE oid = ?1)");
            c.prepare_cached(&sql)?
                .query_row([oid], |r| r.get::<bool>(0))
        })
        .await?;
    if exists {
        Err(refused)
    } else {
        Err(fail(
            code::NO_EXISTS,
            format!("Error getting {name} [{oid}]."),
        ))
    }
}

/// Runs `f` on the read pool with `may_use(oid)`: whether the caller may USE unowned object
/// `oid` of `kind`, as OpenNebula's pool filter selects them (`PoolSQL::acl_filter` and
/// `usr_filter`): every object for group oneadmin, else those the caller's ACL rules grant
/// (and, for groups, the caller's own).
pub async fn read_visible<T: Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    kind: u64,
    f: impl FnOnce(&sqlstore::Conn, &dyn Fn(i64) -> bool) -> Result<T, sqlstore::SqlError>
        + Send
        + 'static,
) -> Result<T, Failure> {
    let rules = if s.is_admin() {
        None
    } else {
        let c = perms::caller(ctx, s).await?;
        Some((c.groups, c.rules))
    };
    let session = s.clone();
    ctx.read(move |conn| match rules {
        None => f(conn, &|_| true),
        Some((groups, rules)) => {
            let caller = Caller {
                session: &session,
                groups,
                rules,
            };
            f(conn, &|oid| caller.may(kind, &unowned(kind, oid), acl::USE))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for m in all() {
            assert!(seen.insert(m.name), "{} is declared twice", m.name);
        }
        assert_eq!(seen.len(), all().count());
    }

    /// `docs/api-coverage.md` marks with ✓ exactly the OpenNebula methods OneHA answers, and its
    /// headline count is theirs.
    #[test]
    fn the_coverage_document_lists_every_method_answered() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api-coverage.md");
        let doc = std::fs::read_to_string(path).expect("docs/api-coverage.md");
        let mut marked = std::collections::BTreeSet::new();
        // OpenNebula's internal methods (server to server) answered here: not in the count
        // of public ones.
        let mut internal = std::collections::BTreeSet::new();
        for line in doc.lines() {
            let Some(rest) = line.strip_prefix("- **") else {
                continue;
            };
            let Some((family, items)) = rest.split_once("** (") else {
                continue;
            };
            for item in items.split(", ") {
                if let Some(name) = item.split("\u{2713} `").nth(1) {
                    let name = name.split('`').next().unwrap_or_default();
                    marked.insert(format!("one.{family}.{name}"));
                    if item.contains("(internal") {
                        internal.insert(format!("one.{family}.{name}"));
                    }
                }
            }
        }
        let answered: std::collections::BTreeSet<String> = all()
            .map(|m| m.name.to_string())
            .filter(|n| n.starts_with("one."))
            .collect();
        let missing: Vec<_> = answered.difference(&marked).collect();
        let extra: Vec<_> = marked.difference(&answered).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "answered but not marked: {missing:?}; marked but not answered: {extra:?}"
        );
        let public = answered.difference(&internal).count();
        let headline = format!("| **7.0.2** | **301** | **290** | **{public}** |");
        assert!(
            doc.contains(&headline),
            "the headline should read {headline}"
        );
    }

    #[test]
    fn issue_11_infoextended_is_a_read() {
        let m = lookup("one.vmpool.infoextended").map(|m| m.kind);
        assert_eq!(m, Some(Kind::Read));
    }

    #[test]
    fn pool_and_object_reads_are_reads() {
        for m in all() {
            let read_name = m.name.ends_with(".info") || m.name.ends_with(".infoextended");
            if read_name && m.kind != Kind::Status {
                assert_eq!(m.kind, Kind::Read, "{}", m.name);
            }
        }
    }

    /// The families ACL rules authorize ask for OpenNebula's `auth_object` and `auth_op`
    /// (`RequestManager*.h`, `RequestManagerDelete.cc`), and none is oneadmin-only any more.
    #[test]
    fn hosts_clusters_groups_vdcs_zones_and_acls_ask_opennebulas_rights() {
        use wire::acl::{ACL, ADMIN, CLUSTER, GROUP, HOST, MANAGE, USE, VDC, ZONE};
        let mut expected = vec![
            ("one.host.allocate", Auth::Deferred(HOST, acl::CREATE)),
            ("one.host.info", Auth::On(HOST, USE)),
            ("one.host.delete", Auth::On(HOST, ADMIN)),
            ("one.host.status", Auth::On(HOST, ADMIN)),
            ("one.host.update", Auth::On(HOST, ADMIN)),
            ("one.host.rename", Auth::Deferred(HOST, ADMIN)),
            ("one.cluster.allocate", Auth::Create(CLUSTER)),
            ("one.cluster.delete", Auth::On(CLUSTER, ADMIN)),
            ("one.cluster.update", Auth::On(CLUSTER, MANAGE)),
            ("one.cluster.rename", Auth::Deferred(CLUSTER, MANAGE)),
            ("one.cluster.info", Auth::On(CLUSTER, USE)),
            ("one.group.allocate", Auth::Create(GROUP)),
            ("one.group.info", Auth::Deferred(GROUP, USE)),
            ("one.group.delete", Auth::On(GROUP, ADMIN)),
            ("one.group.addadmin", Auth::Deferred(GROUP, ADMIN)),
            ("one.group.deladmin", Auth::Deferred(GROUP, ADMIN)),
            ("one.group.update", Auth::On(GROUP, MANAGE)),
            ("one.vdc.allocate", Auth::Object),
            ("one.vdc.delete", Auth::On(VDC, ADMIN)),
            ("one.vdc.update", Auth::On(VDC, MANAGE)),
            ("one.vdc.rename", Auth::Deferred(VDC, MANAGE)),
            ("one.vdc.info", Auth::On(VDC, USE)),
            ("one.zone.info", Auth::On(ZONE, USE)),
            ("one.zone.rename", Auth::Deferred(ZONE, MANAGE)),
            ("one.zone.update", Auth::On(ZONE, MANAGE)),
            ("one.zone.delete", Auth::On(ZONE, ADMIN)),
            ("one.zone.enable", Auth::Deferred(ZONE, ADMIN)),
            ("one.zone.raftstatus", Auth::Deferred(ZONE, ADMIN)),
            ("one.zone.addserver", Auth::Deferred(ZONE, ADMIN)),
            ("one.zone.delserver", Auth::Deferred(ZONE, ADMIN)),
            ("one.zone.resetserver", Auth::Deferred(ZONE, ADMIN)),
            ("one.acl.addrule", Auth::Pool(ACL, MANAGE)),
            ("one.acl.delrule", Auth::Pool(ACL, MANAGE)),
            ("one.acl.info", Auth::Pool(ACL, MANAGE)),
        ];
        for what in ["host", "datastore", "vnet"] {
            for verb in ["add", "del"] {
                let name = format!("one.cluster.{verb}{what}");
                expected.push((name.leak(), Auth::Deferred(CLUSTER, ADMIN)));
            }
        }
        for what in ["group", "cluster", "host", "datastore", "vnet"] {
            for verb in ["add", "del"] {
                let name = format!("one.vdc.{verb}{what}");
                expected.push((name.leak(), Auth::Deferred(VDC, ADMIN)));
            }
        }
        for (name, auth) in expected {
            assert_eq!(lookup(name).map(|m| m.auth), Some(auth), "{name}");
        }
        let families = [
            "host",
            "hostpool",
            "cluster",
            "clusterpool",
            "group",
            "grouppool",
            "vdc",
            "vdcpool",
            "zone",
            "zonepool",
            "acl",
        ];
        for m in all() {
            let family = m.name.split('.').nth(1).unwrap_or_default();
            if families.contains(&family) {
                assert!(
                    !matches!(m.auth, Auth::Admin(_) | Auth::AdminOn(_)),
                    "{} is still oneadmin-only",
                    m.name
                );
            }
        }
    }

    #[test]
    fn refusals_are_worded_as_opennebulas_auth_request() {
        use wire::acl::{ACL, ADMIN, CREATE, HOST, MANAGE};
        assert_eq!(
            Need::on(HOST, 3, ADMIN).refusal(),
            "Not authorized to perform ADMIN HOST [3]"
        );
        assert_eq!(
            Need::kind(HOST, CREATE).refusal(),
            "Not authorized to perform CREATE HOST"
        );
        assert_eq!(
            Need::kind(ACL, MANAGE).refusal(),
            "Not authorized to perform MANAGE ACL"
        );
    }

    /// Only rules grant rights on hosts, clusters, VDCs and zones; a group's members may also
    /// USE it, and no more; nothing grants MANAGE ACL.
    #[test]
    fn rules_and_group_membership_grant_what_opennebula_grants() {
        use wire::acl::{
            ACL, ADMIN, ALL_ID, CLUSTER, CREATE, GROUP, GROUP_ID, HOST, INDIVIDUAL_ID, MANAGE, USE,
            VDC,
        };
        let session = Session {
            uid: 5,
            gid: 1,
            name: "plain".into(),
            groups: vec![1],
            umask: None,
        };
        let caller = Caller {
            session: &session,
            groups: vec![1],
            rules: vec![
                (INDIVIDUAL_ID | 5, HOST | INDIVIDUAL_ID | 3, ADMIN),
                (GROUP_ID | 1, CLUSTER | INDIVIDUAL_ID | 100, MANAGE),
                (ALL_ID, VDC | ALL_ID, USE),
                (GROUP_ID | 1, HOST | ALL_ID, CREATE),
            ],
        };
        let granted = |n: Need| n.granted(&caller);
        assert!(granted(Need::on(HOST, 3, ADMIN)));
        assert!(!granted(Need::on(HOST, 3, MANAGE)));
        assert!(!granted(Need::on(HOST, 4, ADMIN)));
        assert!(granted(Need::on(CLUSTER, 100, MANAGE)));
        assert!(!granted(Need::on(CLUSTER, 100, ADMIN)));
        assert!(granted(Need::on(VDC, 7, USE)));
        assert!(granted(Need::kind(HOST, CREATE)));
        assert!(!granted(Need::kind(CLUSTER, CREATE)));
        assert!(granted(Need::on(GROUP, 1, USE)));
        assert!(!granted(Need::on(GROUP, 1, MANAGE)));
        assert!(!granted(Need::on(GROUP, 0, USE)));
        assert!(!granted(Need::kind(ACL, MANAGE)));
    }
}
