//! A new network's VLAN ids as `VirtualNetwork::insert` and `VirtualNetworkPool::set_vlan_id`
//! give them: a VLAN_ID (OUTER_VLAN_ID) named in the template is the network's and stays there;
//! without one, AUTOMATIC_VLAN_ID (AUTOMATIC_OUTER_VLAN_ID) = YES asks oned to choose, and the
//! chosen id is kept beside the template (`VLAN_ID_AUTOMATIC`), not in it. 802.1Q and ovswitch
//! (and ovswitch_vxlan's inner id) take the first free id of oned.conf's VLAN_IDS from the hint
//! `START + id % (4095 - START)`; vxlan (and ovswitch_vxlan's outer id) is `VXLAN_IDS/START +
//! id`. The drivers without VLANs choose nothing.

use std::collections::BTreeSet;

use sqlstore::objects::vnet::AutoVlan;
use template::{Template, Value};

use super::id_bitmap::IdBitmap;

/// Which of the ids the template asks oned to choose (`parse_vlan_id`), and the template as
/// `insert` leaves it: no AUTOMATIC_* attribute, a VLAN_ID and OUTER_VLAN_ID (empty when not
/// given) unless chosen automatically.
pub fn parse(t: &mut Template) -> (bool, bool) {
    let [(id, auto), (outer_id, outer_auto)] = IDS;
    (parse_one(t, id, auto), parse_one(t, outer_id, outer_auto))
}

/// The pairs of a VLAN id and the attribute that asks oned to choose it.
const IDS: [(&str, &str); 2] = [
    ("VLAN_ID", "AUTOMATIC_VLAN_ID"),
    ("OUTER_VLAN_ID", "AUTOMATIC_OUTER_VLAN_ID"),
];

fn parse_one(t: &mut Template, id: &str, auto: &str) -> bool {
    let given = t.single(id).map(str::to_string).filter(|v| !v.is_empty());
    let automatic = given.is_none()
        && t.single(auto)
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    // `parse_vlan_id`: a given id moves to the end; none given is left as it was (absent or
    // empty) until an update writes it (`post_update_template`).
    t.remove(auto);
    if let Some(value) = given {
        t.remove(id);
        t.set(id, Value::Single(value));
    }
    automatic
}

/// What `post_update_template` leaves of id `id`: no `auto` attribute, and the id
/// out of the template when oned chooses it, else as given (empty when not).
fn place(t: &mut Template, id: &str, auto: &str, automatic: bool) {
    t.remove(auto);
    if automatic {
        t.remove(id);
    } else {
        let value = t.single(id).unwrap_or("").to_string();
        t.set(id, Value::Single(value));
    }
}

/// The template an update leaves (`post_update_template`): no AUTOMATIC_* attribute; an id oned
/// chose stays out of it, any other is what the update says (empty when it says nothing).
pub fn after_update(t: &mut Template, vlan: AutoVlan, outer: AutoVlan) {
    for ((id, auto), kept) in IDS.into_iter().zip([vlan, outer]) {
        place(t, id, auto, kept.automatic());
    }
}

/// oned.conf's VLAN_IDS: 4096 ids, `[ START = 2, RESERVED = "0, 1, 4095" ]` unless it says.
pub fn vlan_ids(conf: &Template) -> IdBitmap {
    IdBitmap::of(
        conf,
        "VLAN_IDS",
        IdBitmap::new(2, vec![(0, 1), (4095, 4095)], 4095),
    )
}

/// oned.conf's VXLAN_IDS/START (2 unless it says).
pub fn vxlan_start(conf: &Template) -> i64 {
    conf.vector("VXLAN_IDS")
        .and_then(|v| template::vector_get(v, "START"))
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .unwrap_or(2)
}

/// Whether the ids of a network of `vn_mad` depend on its id (and so on the pool counter).
pub fn chosen_by_id(vn_mad: &str, vlan: bool, outer: bool) -> bool {
    match vn_mad {
        "ovswitch_vxlan" => vlan || outer,
        "vxlan" | "802.1Q" | "ovswitch" => vlan,
        _ => false,
    }
}

/// An id asked for (or not) before oned chooses it.
pub fn unassigned(auto: bool) -> AutoVlan {
    if auto {
        AutoVlan::Unassigned
    } else {
        AutoVlan::No
    }
}

/// `set_vlan_id` for network `oid` of `vn_mad`: its VLAN_ID and OUTER_VLAN_ID as stored, or
/// `None` when the VLAN_IDS bitmap is full (`Cannot automatically assign VLAN_ID to network.`).
/// `taken` are the ids the bitmap's networks hold.
pub fn assign(
    vn_mad: &str,
    (vlan, outer): (bool, bool),
    oid: i64,
    vlans: &IdBitmap,
    vxlan_start: i64,
    taken: &BTreeSet<i64>,
) -> Option<(AutoVlan, AutoVlan)> {
    let (mut v, mut o) = (unassigned(vlan), unassigned(outer));
    let dot1q = |auto: bool| -> Option<AutoVlan> {
        if auto {
            vlans.choose(oid, taken).map(AutoVlan::Id)
        } else {
            Some(AutoVlan::No)
        }
    };
    let vxlan = |auto: bool| {
        if auto {
            AutoVlan::Id(vxlan_start + oid)
        } else {
            AutoVlan::No
        }
    };
    match vn_mad {
        "ovswitch_vxlan" => {
            v = dot1q(vlan)?;
            o = vxlan(outer);
        }
        "vxlan" => v = vxlan(vlan),
        "802.1Q" | "ovswitch" => v = dot1q(vlan)?,
        _ => {}
    }
    Some((v, o))
}

/// The network's VLAN_ID (or OUTER_VLAN_ID) as `VirtualNetwork` shows it: the chosen one, else
/// the template's.
pub fn shown(auto: AutoVlan, t: &Template, name: &str) -> Option<String> {
    match auto {
        AutoVlan::Id(id) => Some(id.to_string()),
        AutoVlan::Unassigned => None,
        AutoVlan::No => t.single(name).filter(|v| !v.is_empty()).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn a_given_id_wins_over_automatic_and_stays_in_the_template() {
        let mut a = t("VLAN_ID = 7\nAUTOMATIC_VLAN_ID = YES\nAUTOMATIC_OUTER_VLAN_ID = yes");
        assert_eq!(parse(&mut a), (false, true));
        assert_eq!(a.single("VLAN_ID"), Some("7"));
        assert_eq!(a.single("OUTER_VLAN_ID"), None);
        assert_eq!(a.single("AUTOMATIC_VLAN_ID"), None);
        let mut b = t("BRIDGE = br0");
        assert_eq!(parse(&mut b), (false, false));
        assert_eq!(b.single("VLAN_ID"), None);
        assert_eq!(b.single("OUTER_VLAN_ID"), None);
    }

    #[test]
    fn each_driver_chooses_as_set_vlan_id() {
        let bits = vlan_ids(&Template::default());
        let none = BTreeSet::new();
        let both = (true, true);
        assert_eq!(
            assign("802.1Q", both, 5, &bits, 2, &none),
            Some((AutoVlan::Id(7), AutoVlan::Unassigned))
        );
        assert_eq!(
            assign("vxlan", both, 5, &bits, 100, &none),
            Some((AutoVlan::Id(105), AutoVlan::Unassigned))
        );
        assert_eq!(
            assign("ovswitch_vxlan", both, 5, &bits, 2, &[7].into()),
            Some((AutoVlan::Id(2), AutoVlan::Id(7)))
        );
        assert_eq!(
            assign("bridge", (true, false), 5, &bits, 2, &none),
            Some((AutoVlan::Unassigned, AutoVlan::No))
        );
        let full: BTreeSet<i64> = (2..4095).collect();
        assert_eq!(assign("ovswitch", (true, false), 5, &bits, 2, &full), None);
        assert!(!chosen_by_id("802.1q", true, false));
    }
}
