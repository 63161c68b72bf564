//! VM groups in placement, as OpenNebula's scheduler reads them (`VMGroupXML`,
//! `VMGroupRole::{vm_role_requirements, role_requirements, affined_host_requirements}`):
//!
//! - a role with `POLICY = AFFINED` keeps its VMs on one host, `ANTI_AFFINED` on different
//!   hosts;
//! - the group's `AFFINED = "a, b"` rules keep the VMs of those roles together, its
//!   `ANTI_AFFINED` rules keep each role's VMs off the hosts of the others';
//! - a role's `HOST_AFFINED` / `HOST_ANTI_AFFINED` host ids are the only / forbidden hosts.
//!
//! An affined VM goes to a host its placed peers use (OpenNebula's "one of the hosts used by
//! the affined set"). A VM that no host can take stays PENDING with OpenNebula's message in
//! its USER_TEMPLATE/SCHED_MESSAGE. A VM that reaches DONE (or is gone) leaves its role in a
//! later pass of the leader's scheduler task: one replicated write per group, made only if the
//! group is still as read.

use std::collections::{BTreeMap, BTreeSet};

use sqlstore::objects::placement;
use sqlstore::{Conn, SqlStmt};
use template::{Template, Value};

use crate::api::vm::state;
use crate::api::vmgroup::roles::Roles;
use crate::sweep::Sweep;

/// Groups read per pass to find VMs that left, in a [`Sweep`]: a pile of groups with VMs
/// (any user's) delays the others by a few passes at most (only the 1,024 lowest were read, and
/// DONE VMs of groups past them stayed in their roles for good).
pub const GROUPS_PER_PASS: usize = 1024;

/// Where one pending VM may go because of its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// `HOST_AFFINED`: only these hosts (empty: any).
    only: BTreeSet<i64>,
    /// `HOST_ANTI_AFFINED`.
    never: BTreeSet<i64>,
    /// VMs it must share a host with.
    with: BTreeSet<i64>,
    /// VMs whose hosts it must avoid.
    apart: BTreeSet<i64>,
}

impl Rules {
    /// The VMs whose hosts these rules depend on.
    pub fn peers(&self) -> impl Iterator<Item = i64> + '_ {
        self.with.iter().chain(&self.apart).copied()
    }

    /// Whether host `h` keeps the rules, `host_of` being where peers are (or were just put).
    pub fn allows(&self, h: i64, host_of: &BTreeMap<i64, i64>) -> bool {
        if !self.only.is_empty() && !self.only.contains(&h) {
            return false;
        }
        if self.never.contains(&h) {
            return false;
        }
        if self.apart.iter().any(|v| host_of.get(v) == Some(&h)) {
            return false;
        }
        let mut together = self.with.iter().filter_map(|v| host_of.get(v)).peekable();
        together.peek().is_none() || together.any(|&x| x == h)
    }
}

/// One stored role, as placement needs it.
struct Role {
    name: String,
    policy: String,
    vms: BTreeSet<i64>,
    host_affined: BTreeSet<i64>,
    host_anti_affined: BTreeSet<i64>,
}

fn numbers(list: &str) -> BTreeSet<i64> {
    list.split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn stored_roles(text: &str) -> Vec<Role> {
    let Ok(t) = Template::parse(text) else {
        return Vec::new();
    };
    t.get_all("ROLE")
        .filter_map(|a| a.value.as_vector())
        .map(|p| {
            let get = |k: &str| template::vector_get(p, k).unwrap_or("").to_string();
            Role {
                name: get("NAME"),
                policy: get("POLICY").to_ascii_uppercase(),
                vms: numbers(&get("VMS")),
                host_affined: numbers(&get("HOST_AFFINED")),
                host_anti_affined: numbers(&get("HOST_ANTI_AFFINED")),
            }
        })
        .collect()
}

/// The role names of each rule `attr` (`AFFINED` or `ANTI_AFFINED`) of a group template.
fn rule_names(t: &Template, attr: &str) -> Vec<BTreeSet<String>> {
    t.get_all(attr)
        .filter_map(|a| a.value.as_single())
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .collect()
}

/// The group and role a VM's template names (`VMGROUP = [ VMGROUP_ID, ROLE ]`).
pub fn group_of(vm_template: &str) -> Option<(i64, String)> {
    let t = Template::parse(vm_template).ok()?;
    let va = t.vector("VMGROUP")?;
    let id = template::vector_get(va, "VMGROUP_ID")?
        .trim()
        .parse()
        .ok()?;
    Some((id, template::vector_get(va, "ROLE")?.to_string()))
}

/// The rules of VM `vm` in role `role` of a group with stored `roles` and `template`.
pub fn rules_for(vm: i64, role: &str, roles: &str, template: &str) -> Rules {
    let all = stored_roles(roles);
    let t = Template::parse(template).unwrap_or_default();
    let mut r = Rules::default();
    let Some(mine) = all.iter().find(|x| x.name == role) else {
        return r;
    };
    let others = |set: &mut BTreeSet<i64>, vms: &BTreeSet<i64>| {
        set.extend(vms.iter().filter(|&&v| v != vm));
    };
    match mine.policy.as_str() {
        "AFFINED" => others(&mut r.with, &mine.vms),
        "ANTI_AFFINED" => others(&mut r.apart, &mine.vms),
        _ => {}
    }
    for (attr, affined) in [("AFFINED", true), ("ANTI_AFFINED", false)] {
        for rule in rule_names(&t, attr).iter().filter(|n| n.contains(role)) {
            for other in all
                .iter()
                .filter(|x| x.name != role && rule.contains(&x.name))
            {
                let set = if affined { &mut r.with } else { &mut r.apart };
                others(set, &other.vms);
            }
        }
    }
    r.only = mine.host_affined.clone();
    r.never = mine.host_anti_affined.clone();
    r
}

/// Reads the rules of a pending VM with its template, and adds its peers' hosts to `host_of`.
pub fn read_rules(
    c: &Conn,
    vm: i64,
    vm_template: &str,
    host_of: &mut BTreeMap<i64, i64>,
) -> Result<Option<Rules>, sqlstore::SqlError> {
    let Some((gid, role)) = group_of(vm_template) else {
        return Ok(None);
    };
    let Some((_, roles, template)) = placement::group(c, gid)? else {
        return Ok(None);
    };
    let rules = rules_for(vm, &role, &roles, &template);
    for peer in rules.peers() {
        if let Some((_, Some(h))) = placement::vm_host(c, peer)? {
            host_of.insert(peer, h);
        }
    }
    Ok(Some(rules))
}

/// Why a VM found no host among `candidates` (OpenNebula's `Cannot allocate VM.` line), if
/// there were candidates at all.
pub fn why_unplaced(candidates: &[i64], fits: usize) -> Option<String> {
    if candidates.is_empty() {
        return None;
    }
    let ids: Vec<String> = candidates.iter().map(i64::to_string).collect();
    let why = if fits == 0 {
        "Not enough capacity in hosts"
    } else {
        "Affinity constraints cannot be met in hosts"
    };
    Some(format!("Cannot allocate VM. {why} {}", ids.join(",")))
}

/// The statement that sets (`Some`) or clears the SCHED_MESSAGE of a PENDING VM whose user
/// template is `user_template`, or `None` if it already says that (time aside), so a VM that
/// keeps failing the same way is not written every period.
pub fn sched_message(
    vid: i64,
    user_template: &str,
    message: Option<&str>,
    now: i64,
) -> Option<SqlStmt> {
    let mut t = Template::parse(user_template).ok()?;
    let old = t.single("SCHED_MESSAGE").map(str::to_string);
    let same = match (&old, message) {
        (None, None) => true,
        (Some(o), Some(m)) => o.ends_with(&format!(": {m}")),
        _ => false,
    };
    if same {
        return None;
    }
    match message {
        Some(m) => t.set(
            "SCHED_MESSAGE",
            Value::Single(format!("{}: {m}", wire::time::ctime(now))),
        ),
        None => t.remove("SCHED_MESSAGE"),
    }
    Some(placement::set_sched_message(
        vid,
        t.to_text(),
        user_template.to_string(),
    ))
}

/// The writes that take VMs that are DONE or gone out of the roles of the groups `sweep` reads
/// next, and give back the host PCI devices and GRAPHICS ports DONE VMs held (`crate::api`
/// `vm_pci`, `vm_vnc`); the sweep
/// advanced past those groups.
pub fn leavers(c: &Conn, mut sweep: Sweep) -> Result<(Vec<SqlStmt>, Sweep), sqlstore::SqlError> {
    let mut out = Vec::new();
    if sqlstore::objects::pci::any_held_by_done(c)? {
        out.push(sqlstore::objects::pci::free_done_vms());
    }
    if sqlstore::objects::vnc::any_held_by_done(c)? {
        out.push(sqlstore::objects::vnc::free_done_vms());
    }
    let groups = placement::groups_with_vms(c, sweep.after(), sweep.limit())?;
    sweep.advance(groups.len(), groups.last().map(|g| g.0));
    for (oid, roles_text, template) in groups {
        let Ok(mut roles) = Roles::parse(&roles_text) else {
            continue;
        };
        let mut changed = false;
        for role in stored_roles(&roles_text) {
            for vm in role.vms {
                let gone = match placement::vm_host(c, vm)? {
                    None => true,
                    Some((st, _)) => st == state::DONE,
                };
                if gone {
                    changed |= roles.set_vm(&role.name, vm, false);
                }
            }
        }
        if changed {
            out.push(sqlstore::objects::vmgroup::set_state(
                oid,
                roles.to_text(),
                template.clone(),
                (roles_text, template),
            ));
        }
    }
    Ok((out, sweep))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const ROLES: &str = "ROLE=[ ID=\"0\", NAME=\"db\", POLICY=\"ANTI_AFFINED\", VMS=\"1,2\" ]\n\
        ROLE=[ ID=\"1\", NAME=\"web\", POLICY=\"AFFINED\", VMS=\"3,4\", HOST_ANTI_AFFINED=\"9\" ]\n\
        ROLE=[ ID=\"2\", NAME=\"cache\", VMS=\"5\", HOST_AFFINED=\"7, 8\" ]\n";

    #[test]
    fn role_policies_and_group_rules_name_the_peers() {
        let db = rules_for(1, "db", ROLES, "ANTI_AFFINED=\"db, cache\"");
        assert_eq!(db.apart, BTreeSet::from([2, 5]));
        assert!(db.with.is_empty());
        let web = rules_for(3, "web", ROLES, "AFFINED=\"web,cache\"");
        assert_eq!(web.with, BTreeSet::from([4, 5]));
        assert_eq!(web.never, BTreeSet::from([9]));
        let cache = rules_for(5, "cache", ROLES, "");
        assert_eq!(cache.only, BTreeSet::from([7, 8]));
        assert_eq!(rules_for(5, "nope", ROLES, ""), Rules::default());
    }

    #[test]
    fn hosts_are_chosen_by_where_the_peers_are() {
        let placed = BTreeMap::from([(2, 10), (4, 11)]);
        let db = rules_for(1, "db", ROLES, "");
        assert!(!db.allows(10, &placed) && db.allows(11, &placed));
        let web = rules_for(3, "web", ROLES, "");
        assert!(web.allows(11, &placed) && !web.allows(10, &placed));
        assert!(!web.allows(9, &BTreeMap::new()), "HOST_ANTI_AFFINED");
        assert!(web.allows(12, &BTreeMap::new()), "no peer placed yet");
        let cache = rules_for(5, "cache", ROLES, "");
        assert!(cache.allows(7, &placed) && !cache.allows(10, &placed));
    }

    #[test]
    fn messages_are_opennebulas_and_written_once() {
        assert_eq!(
            why_unplaced(&[0, 2], 1).unwrap(),
            "Cannot allocate VM. Affinity constraints cannot be met in hosts 0,2"
        );
        assert_eq!(
            why_unplaced(&[3], 0).unwrap(),
            "Cannot allocate VM. Not enough capacity in hosts 3"
        );
        assert_eq!(why_unplaced(&[], 0), None);
        let m = "Cannot allocate VM. Not enough capacity in hosts 3";
        assert!(sched_message(1, "", Some(m), 0).is_some());
        let set = format!("SCHED_MESSAGE=\"{}: {m}\"\n", wire::time::ctime(0));
        assert!(sched_message(1, &set, Some(m), 99).is_none());
        assert!(sched_message(1, &set, None, 99).is_some());
        assert!(sched_message(1, "A=\"b\"\n", None, 99).is_none());
    }

    #[test]
    fn a_vm_names_its_group_by_id_and_role() {
        let t = "VMGROUP=[ ROLE=\"web\", VMGROUP_ID=\"4\", VMGROUP_NAME=\"g\" ]\nCPU=\"1\"";
        assert_eq!(group_of(t), Some((4, "web".into())));
        assert_eq!(group_of("CPU=1"), None);
    }
}
