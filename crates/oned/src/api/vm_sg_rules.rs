//! A VM's SECURITY_GROUP_RULE vectors: the rules of the security groups its NICs name, as
//! 7.0.2 writes them into the VM's template (`SecurityGroupPool::get_security_group_rules`) at
//! allocation, NIC attach and detach, `attachsg`/`detachsg`, and when a group's rules change.

use std::collections::{BTreeMap, BTreeSet};

use sqlstore::{Conn, SqlError, SqlStmt};
use template::{Template, Value};

use super::address_range;
use super::{Ctx, Failure};

type Pairs = Vec<(String, String)>;

/// `VirtualMachine::get_security_groups`: the groups the VM's NICs (aliases and NIC PCIs too)
/// name.
pub fn groups_in(t: &Template) -> BTreeSet<i64> {
    t.attrs
        .iter()
        .filter(|a| super::vm_nics::is_nic(a))
        .filter_map(|a| a.value.as_vector())
        .flat_map(|pairs| {
            template::vector_get(pairs, "SECURITY_GROUPS")
                .unwrap_or("")
                .split(',')
                .filter_map(|g| g.trim().parse::<i64>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `VirtualMachine::remove_security_group`'s template part: group `sgid`'s rules go.
pub fn remove_group(t: &mut Template, sgid: i64) {
    let id = sgid.to_string();
    t.attrs.retain(|a| {
        a.name != "SECURITY_GROUP_RULE"
            || a.vector_get("SECURITY_GROUP_ID").map(str::trim) != Some(id.as_str())
    });
}

/// Appends `rules` as SECURITY_GROUP_RULE vectors.
pub fn push(t: &mut Template, rules: Vec<Pairs>) {
    for r in rules {
        t.push("SECURITY_GROUP_RULE", Value::Vector(r));
    }
}

/// The rules of `groups`, read in one go (see [`rules_in`]).
pub async fn of_groups(ctx: &Ctx, groups: &BTreeSet<i64>) -> Result<Vec<Pairs>, Failure> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    // A few rows by key: read where the call runs (no thread hop on SQLite).
    let groups = groups.clone();
    super::read_row_in(&ctx.pool, move |c| rules_in(c, &groups)).await
}

/// The rules of `groups`, ascending: each RULE of each group that still exists, with
/// SECURITY_GROUP_ID and SECURITY_GROUP_NAME; a rule naming a NETWORK_ID becomes one rule per
/// address range of that network (`AddressRange::process_security_rule`), none when the network
/// is gone.
pub fn rules_in(c: &Conn, groups: &BTreeSet<i64>) -> Result<Vec<Pairs>, SqlError> {
    let mut out = Vec::new();
    for &sgid in groups {
        let Some((name, text)) = sqlstore::objects::secgroup::rules_source(c, sgid)? else {
            continue;
        };
        let t = Template::parse(&text).unwrap_or_default();
        for rule in t.get_all("RULE").filter_map(|a| a.value.as_vector()) {
            let mut r: Pairs = rule.to_vec();
            template::vector_set(&mut r, "SECURITY_GROUP_ID", sgid.to_string());
            template::vector_set(&mut r, "SECURITY_GROUP_NAME", name.clone());
            let vnet =
                template::vector_get(&r, "NETWORK_ID").and_then(|n| n.trim().parse::<i64>().ok());
            match vnet {
                None => out.push(r),
                Some(vid) => out.extend(per_range(c, vid, &r)?),
            }
        }
    }
    Ok(out)
}

/// Rule `r` once per address range of network `vid`, with the range's AR_ID, TYPE, SIZE, MAC,
/// IP, IP6 and its first IP6_ULA and IP6_GLOBAL.
fn per_range(c: &Conn, vid: i64, r: &Pairs) -> Result<Vec<Pairs>, SqlError> {
    let vnets = sqlstore::objects::vnet::TABLE;
    let Some(text) = sqlstore::objects::template_text(c, vnets, "template", vid)? else {
        return Ok(Vec::new());
    };
    let t = Template::parse(&text).unwrap_or_default();
    let mut out = Vec::new();
    for range in address_range::ranges(&t) {
        let mut rule = r.clone();
        for k in ["AR_ID", "TYPE", "SIZE", "MAC", "IP", "IP6"] {
            let v = range.get(k);
            if !v.is_empty() {
                template::vector_set(&mut rule, k, v.to_string());
            }
        }
        let first = range.address(0);
        for (k, v) in [("IP6_ULA", first.ip6_ula), ("IP6_GLOBAL", first.ip6_global)] {
            if let Some(v) = v {
                template::vector_set(&mut rule, k, v);
            }
        }
        out.push(rule);
    }
    Ok(out)
}

/// VMs the dummy network driver brings up to date in one write: more wait for the next period.
pub const DRIVER_BATCH: i64 = 256;

/// What the dummy network driver does with the VMs outdated in their groups, as
/// `LifeCycleManager::trigger_updatesg`: each VM's SECURITY_GROUP_RULE of the group rewritten
/// and the VM updated, or in ERROR when its state lets no rule change; guarded on the VMs'
/// templates and the groups' (a change meanwhile is taken up next period).
pub fn driver_pass(c: &Conn) -> Result<Vec<SqlStmt>, SqlError> {
    use sqlstore::objects::secgroup::{self as sg, vm_state};
    let pending = sg::pending_vms(c, DRIVER_BATCH)?;
    let mut sources: BTreeMap<i64, Option<(String, Vec<Pairs>)>> = BTreeMap::new();
    for p in &pending {
        if sources.contains_key(&p.sgid) {
            continue;
        }
        let source = match sg::rules_source(c, p.sgid)? {
            Some((_, text)) => Some((text, rules_in(c, &BTreeSet::from([p.sgid]))?)),
            None => None,
        };
        sources.insert(p.sgid, source);
    }
    let mut stmts: Vec<SqlStmt> = sources
        .iter()
        .filter_map(|(sgid, s)| s.as_ref().map(|(text, _)| sg::template_guard(*sgid, text)))
        .collect();
    for vm in pending.chunk_by(|a, b| a.vid == b.vid) {
        let Some(first) = vm.first() else { continue };
        if super::vm_sgs::rules_blocked(first.state, first.lcm_state) {
            stmts.extend(
                vm.iter()
                    .map(|p| sg::set_vm_state(p.sgid, p.vid, vm_state::ERROR)),
            );
            continue;
        }
        let Ok(mut t) = Template::parse(&first.template) else {
            continue;
        };
        for p in vm {
            remove_group(&mut t, p.sgid);
            if let Some(Some((_, rules))) = sources.get(&p.sgid) {
                push(&mut t, rules.clone());
            }
            stmts.push(sg::set_vm_state(p.sgid, p.vid, vm_state::UPDATED));
        }
        stmts.push(sqlstore::objects::replace_template(
            sqlstore::objects::vm::TABLE,
            "template",
            first.vid,
            t.to_text(),
            first.template.clone(),
        ));
    }
    Ok(stmts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_nics_and_rules_go_by_group() {
        let mut t = Template::parse(
            "NIC = [ NIC_ID = 0, SECURITY_GROUPS = \"0,100\" ]\n\
             NIC_ALIAS = [ NIC_ID = 1, SECURITY_GROUPS = \"101\" ]\n\
             PCI = [ TYPE = GPU, SECURITY_GROUPS = \"7\" ]\n\
             SECURITY_GROUP_RULE = [ SECURITY_GROUP_ID = 0, PROTOCOL = ALL ]\n\
             SECURITY_GROUP_RULE = [ SECURITY_GROUP_ID = 100, PROTOCOL = TCP ]",
        )
        .unwrap();
        assert_eq!(groups_in(&t), BTreeSet::from([0, 100, 101]));
        remove_group(&mut t, 0);
        let left: Vec<_> = t
            .get_all("SECURITY_GROUP_RULE")
            .filter_map(|a| a.vector_get("SECURITY_GROUP_ID"))
            .collect();
        assert_eq!(left, vec!["100"]);
    }

    #[test]
    fn one_driver_pass_writes_at_most_a_batch_of_vms() {
        let dir = tempfile::tempdir().unwrap();
        let loc = sqlstore::sql::Location::Sqlite(dir.path().join("one.db"));
        let mut c = sqlstore::open_state(&loc).unwrap();
        sqlstore::testing::bootstrap(&mut c);
        let vms = DRIVER_BATCH + 44;
        let mut sql = String::new();
        for vid in 0..vms {
            sql.push_str(&format!(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template)
                 VALUES ({vid}, 'v', 0, 0, 384, 8, 0, 8, 0, 0, 1, 64,
                   'NIC = [ NIC_ID = 0, SECURITY_GROUPS = 0 ]');
                 INSERT INTO secgroup_vm (sgid, vid, state) VALUES (0, {vid}, 1);"
            ));
        }
        c.execute_batch(&sql).unwrap();
        let templates = |stmts: &[SqlStmt]| {
            stmts
                .iter()
                .filter(|st| st.sql.starts_with("UPDATE vm_pool"))
                .count() as i64
        };
        let apply = |c: &sqlstore::Conn, stmts: Vec<SqlStmt>| {
            let txn = sqlstore::SqlTxn { stmts };
            let outcome = sqlstore::apply_txn(c, &txn).unwrap();
            assert!(
                matches!(outcome, sqlstore::TxnOutcome::Done { .. }),
                "{outcome:?}"
            );
        };
        let first = driver_pass(&c).unwrap();
        assert_eq!(templates(&first), DRIVER_BATCH);
        apply(&c, first);
        let second = driver_pass(&c).unwrap();
        assert_eq!(templates(&second), vms - DRIVER_BATCH);
        apply(&c, second);
        assert!(driver_pass(&c).unwrap().is_empty());
    }
}
