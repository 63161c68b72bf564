//! The method table: every `/RPC2` method as data (its name, how it is routed, who may call
//! it, its handler). Dispatch reads the table; nothing is inferred from a method's name.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use xmlrpc::Params;

use super::{Ctx, MethodResult};
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
/// runs it: the leader for a write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Any authenticated user; the handler authorizes against the object (permission bits,
    /// ACL rules) or the zone, in OpenNebula's order of checks.
    Object,
    /// Group oneadmin only: AUTHORIZATION `Not authorized to perform <what>.`
    /// (`CREATE HOST`).
    Admin(&'static str),
    /// Group oneadmin only, about the object whose id is the first parameter:
    /// `Not authorized to perform <what> [<id>].` (`MANAGE HOST [3]`).
    AdminOn(&'static str),
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
fn tables() -> [&'static [Method]; 26] {
    use super::*;
    [
        system::METHODS,
        zone::METHODS,
        user::METHODS,
        group::METHODS,
        acl::METHODS,
        host::METHODS,
        clusters::METHODS,
        vm::METHODS,
        vm::OWNED,
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
    ]
}

/// Every method OneHA answers.
pub fn all() -> impl Iterator<Item = &'static Method> {
    tables().into_iter().flatten()
}

/// The method called `name`, if OneHA answers it.
pub fn lookup(name: &str) -> Option<&'static Method> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Method>> = OnceLock::new();
    INDEX
        .get_or_init(|| all().map(|m| (m.name, m)).collect())
        .get(name)
        .copied()
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
        let headline = format!("| **7.0.2** | **301** | **290** | **{}** |", answered.len());
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
}
