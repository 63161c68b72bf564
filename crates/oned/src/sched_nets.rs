//! The scheduler's choice of a network for each NIC in auto mode (`NETWORK_MODE = auto`), as
//! OpenNebula 7.0 makes it: `SchedulerManagerDriver::match_networks` keeps, per NIC, the
//! networks the VM's owner may USE that meet AUTOMATIC_NIC_REQUIREMENTS and the NIC's
//! SCHED_REQUIREMENTS; the rank scheduler orders them by the NIC's SCHED_RANK (its default
//! policy, striping: `- USED_LEASES`) and, for a host, takes for each NIC the best network in
//! the host's cluster with a free address, a different network for each NIC of a VM
//! (`DIFFERENT_VNETS = YES`), counting the addresses the period's earlier placements took.

use std::collections::BTreeMap;

use sqlstore::objects::vnet::{VnetRow, ROWS};
use sqlstore::objects::Owned;
use sqlstore::Conn;

use crate::api::vm_auto_nics::AutoNic;
use crate::sched_expr::{self, Resource};

/// Networks read per period at most, lowest id first: OpenNebula reads them all, but the
/// period's read must stay bounded whatever users create (`docs/security.md`).
pub const MAX_NETS: usize = 1024;

/// `VirtualNetwork`'s search paths for requirement and rank expressions.
pub const VNET_PATHS: &[&str] = &["/VNET/TEMPLATE/", "/VNET/"];

/// The default rank (`DEFAULT_NIC_SCHED`, policy 1: striping).
const DEFAULT_RANK: &str = "- USED_LEASES";

/// A network as the scheduler sees it.
pub struct Net {
    pub owned: Owned,
    pub clusters: Vec<i64>,
    /// Addresses its ranges hold that nobody took (`VirtualNetworkXML::free_leases`).
    pub free: i64,
    /// Its body (`one.vn.info`'s without the leases list) for the expressions.
    pub res: Resource,
}

/// Up to [`MAX_NETS`] networks, lowest id first.
pub fn read(c: &Conn) -> Result<Vec<Net>, sqlstore::SqlError> {
    let sql = format!(
        "{} ORDER BY {}.oid LIMIT {MAX_NETS}",
        ROWS.select, ROWS.alias
    );
    let mut st = c.prepare(&sql)?;
    let mut rows = st.query(sqlstore::sql::params_from_iter(Vec::<i64>::new()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(net_of(&(ROWS.read)(c, r)?));
    }
    Ok(out)
}

fn net_of(v: &VnetRow) -> Net {
    let size: i64 = template::Template::parse(&v.template)
        .map(|t| {
            crate::api::address_range::ranges(&t)
                .iter()
                .map(|r| r.size as i64)
                .sum()
        })
        .unwrap_or(0);
    let body = crate::api::xml::build_with(|out| crate::api::vnet::vnet_xml(v, out));
    Net {
        owned: v.head.owned,
        clusters: v.clusters.clone(),
        free: size - v.leases.len() as i64,
        res: Resource::from_xml(&body, VNET_PATHS),
    }
}

/// (NIC_ID, network) of each auto NIC of a VM placed.
pub type Picked = Vec<(i64, i64)>;

/// The networks an auto NIC may take, best first: (network, rank).
#[derive(Debug, Clone, PartialEq)]
pub struct NicChoice {
    pub nic_id: i64,
    pub nets: Vec<(i64, i64)>,
}

/// `match_networks` and the rank policy for a VM's auto NICs over `nets`, `may_use` saying
/// whether its owner may USE a network; the SCHED_MESSAGE when a NIC has no network: the reason
/// after `Cannot dispatch VM: `, or the rank scheduler's own message when none of its networks
/// has a free address.
pub fn match_nics(
    nics: &[AutoNic],
    nets: &[Net],
    may_use: impl Fn(&Owned) -> bool,
) -> Result<Vec<NicChoice>, String> {
    let mut budget = sched_expr::BUDGET;
    let mut out = Vec::new();
    for nic in nics {
        let mut authorized = 0;
        let mut nets_of_nic = Vec::new();
        for net in nets.iter().filter(|n| may_use(&n.owned)) {
            authorized += 1;
            if !nic.requirements.is_empty() {
                let keep = sched_expr::eval_bool_within(&nic.requirements, &net.res, &mut budget)
                    .map_err(|e| {
                        format!(
                            "Cannot dispatch VM: Error in SCHED_NIC_REQUIREMENTS in NIC {}: '{}', error: {e}",
                            nic.nic_id, nic.requirements
                        )
                    })?;
                if !keep {
                    continue;
                }
            }
            let rank = if nic.rank.is_empty() {
                DEFAULT_RANK
            } else {
                &nic.rank
            };
            let rank = sched_expr::eval_rank_within(rank, &net.res, &mut budget).unwrap_or(0);
            nets_of_nic.push((net, rank));
        }
        if authorized == 0 {
            return Err(format!(
                "Cannot dispatch VM: User is not authorized to use any virtual network for NIC {}",
                nic.nic_id
            ));
        }
        if nets_of_nic.is_empty() {
            return Err(format!(
                "Cannot dispatch VM: No virtual network meets SCHED_NIC_REQUIREMENTS for NIC {}",
                nic.nic_id
            ));
        }
        if nets_of_nic.iter().all(|(n, _)| n.free <= 0) {
            let ids: Vec<String> = nets_of_nic
                .iter()
                .map(|(n, _)| n.owned.oid.to_string())
                .collect();
            return Err(format!(
                "Cannot schedule VM, no leases available in network {}",
                ids.join(",")
            ));
        }
        let mut ranked: Vec<(i64, i64)> = nets_of_nic
            .iter()
            .map(|(n, rank)| (n.owned.oid, *rank))
            .collect();
        ranked.sort_by_key(|&(oid, rank)| (std::cmp::Reverse(rank), oid));
        out.push(NicChoice {
            nic_id: nic.nic_id,
            nets: ranked,
        });
    }
    Ok(out)
}

/// Where each network is and how many addresses it has left this period.
#[derive(Debug, Default)]
pub struct Room {
    nets: BTreeMap<i64, (Vec<i64>, i64)>,
}

impl Room {
    pub fn of(nets: &[Net]) -> Room {
        Room {
            nets: nets
                .iter()
                .map(|n| (n.owned.oid, (n.clusters.clone(), n.free)))
                .collect(),
        }
    }

    /// A network for each NIC on a host of `cluster`: the best of its choices in that cluster
    /// with a free address and not taken by another NIC of the VM; `None` if a NIC has none.
    pub fn pick(&self, choices: &[NicChoice], cluster: i64) -> Option<Picked> {
        let mut out: Picked = Vec::new();
        let mut taken = std::collections::HashSet::new();
        for c in choices {
            let net = c.nets.iter().map(|&(oid, _)| oid).find(|oid| {
                !taken.contains(oid)
                    && self
                        .nets
                        .get(oid)
                        .is_some_and(|(clusters, free)| *free > 0 && clusters.contains(&cluster))
            })?;
            taken.insert(net);
            out.push((c.nic_id, net));
        }
        Some(out)
    }

    /// Counts the addresses `picked` takes.
    pub fn take(&mut self, picked: &[(i64, i64)]) {
        for (_, net) in picked {
            if let Some((_, free)) = self.nets.get_mut(net) {
                *free -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(oid: i64, uid: i64, clusters: &[i64], free: i64, used: i64, vlan: &str) -> Net {
        let body = format!(
            "<VNET><ID>{oid}</ID><UID>{uid}</UID><USED_LEASES>{used}</USED_LEASES>\
             <TEMPLATE><VLAN>{vlan}</VLAN></TEMPLATE></VNET>"
        );
        Net {
            owned: Owned {
                oid,
                uid,
                gid: 1,
                perms: 0o600,
            },
            clusters: clusters.to_vec(),
            free,
            res: Resource::from_xml(&body, VNET_PATHS),
        }
    }

    fn nic(nic_id: i64, requirements: &str, rank: &str) -> AutoNic {
        AutoNic {
            nic_id,
            requirements: requirements.into(),
            rank: rank.into(),
        }
    }

    #[test]
    fn nics_keep_the_networks_their_owner_may_use_that_meet_them_fewest_used_first() {
        let nets = [
            net(1, 5, &[0], 10, 4, "yes"),
            net(2, 5, &[0], 10, 1, "yes"),
            net(3, 6, &[0], 10, 0, "yes"),
            net(4, 5, &[0], 10, 0, "no"),
        ];
        let mine = |o: &Owned| o.uid == 5;
        let got = match_nics(&[nic(0, "VLAN = yes", "")], &nets, mine).unwrap();
        assert_eq!(got[0].nets, vec![(2, -1), (1, -4)]);
        let ranked = match_nics(&[nic(0, "", "USED_LEASES")], &nets, mine).unwrap();
        assert_eq!(ranked[0].nets, vec![(1, 4), (2, 1), (4, 0)]);
    }

    #[test]
    fn a_nic_without_a_network_says_why_as_opennebula() {
        let nets = [net(1, 5, &[0], 0, 8, "yes"), net(2, 5, &[0], 0, 8, "yes")];
        let none = |_: &Owned| false;
        assert_eq!(
            match_nics(&[nic(3, "", "")], &nets, none).unwrap_err(),
            "Cannot dispatch VM: User is not authorized to use any virtual network for NIC 3"
        );
        let all = |_: &Owned| true;
        assert_eq!(
            match_nics(&[nic(0, "VLAN = maybe", "")], &nets, all).unwrap_err(),
            "Cannot dispatch VM: No virtual network meets SCHED_NIC_REQUIREMENTS for NIC 0"
        );
        assert_eq!(
            match_nics(&[nic(0, "", "")], &nets, all).unwrap_err(),
            "Cannot schedule VM, no leases available in network 1,2"
        );
        assert!(match_nics(&[nic(0, "VLAN = (", "")], &nets, all)
            .unwrap_err()
            .starts_with(
                "Cannot dispatch VM: Error in SCHED_NIC_REQUIREMENTS in NIC 0: 'VLAN = ('"
            ));
    }

    #[test]
    fn each_nic_takes_a_different_network_in_the_hosts_cluster_with_room() {
        let nets = [
            net(1, 5, &[0], 1, 0, "yes"),
            net(2, 5, &[0, 100], 5, 0, "yes"),
            net(3, 5, &[100], 5, 0, "yes"),
        ];
        let choices = vec![
            NicChoice {
                nic_id: 0,
                nets: vec![(1, 0), (2, 0), (3, 0)],
            },
            NicChoice {
                nic_id: 1,
                nets: vec![(1, 0), (2, 0), (3, 0)],
            },
        ];
        let mut room = Room::of(&nets);
        assert_eq!(room.pick(&choices, 0), Some(vec![(0, 1), (1, 2)]));
        assert_eq!(room.pick(&choices, 100), Some(vec![(0, 2), (1, 3)]));
        room.take(&[(0, 1)]);
        // Network 1 is full: cluster 0 has only network 2 left, for one NIC.
        assert_eq!(room.pick(&choices, 0), None);
        assert_eq!(room.pick(&choices[..1], 0), Some(vec![(0, 2)]));
    }
}
