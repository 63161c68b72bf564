//! The ports of VMs' GRAPHICS (VNC, SPICE) as oned gives them when a VM is deployed
//! (`set_vnc_port`, `Cluster::get_vnc_port`): each cluster's ports from oned.conf's
//! `VNC_PORTS/START`, a port held by one VM of the cluster at a time (`sqlstore::objects::vnc`),
//! the one the VM's GRAPHICS asks for (PORT) or else `START + id % (65535 - START)` if free and
//! not in `RESERVED`, else the first free one from START; written in GRAPHICS/PORT.
//! A VM back from STOPPED keeps its port. Both the API's `one.vm.deploy` and the scheduler's
//! placements go through here, in the write that deploys the VM.

use std::collections::BTreeSet;

use sqlstore::SqlStmt;
use template::{Template, Value};

/// oned.conf's `VNC_PORTS`: 65536 ports, START 5900 and nothing reserved unless it says.
pub type VncPorts = super::id_bitmap::IdBitmap;

/// `OpenNebulaTemplate`'s default when oned.conf says nothing.
pub fn vnc_defaults() -> VncPorts {
    VncPorts::new(5900, Vec::new(), 65535)
}

/// The cluster's VNC ports as oned.conf sets them.
pub fn vnc_ports(conf: &Template) -> VncPorts {
    VncPorts::of(conf, "VNC_PORTS", vnc_defaults())
}

/// What deploying VM `vid` (its template `text`) on host `hid` adds to the write: the port's
/// row and, for a port chosen here, the template with GRAPHICS/PORT (`Some(new text)`). Nothing
/// for a VM without GRAPHICS or back from STOPPED. `taken` are the ports of the host's cluster
/// held by other VMs. Refused in oned's words (ACTION).
pub fn at_deploy(
    conf: &VncPorts,
    vid: i64,
    hid: i64,
    text: &str,
    from_stop: bool,
    taken: &BTreeSet<i64>,
) -> Result<(Vec<SqlStmt>, Option<String>), String> {
    let Ok(mut t) = Template::parse(text) else {
        return Ok((Vec::new(), None));
    };
    let Some(graphics) = t.vector("GRAPHICS").map(<[_]>::to_vec) else {
        return Ok((Vec::new(), None));
    };
    if from_stop {
        return Ok((Vec::new(), None));
    }
    let asked = template::vector_get(&graphics, "PORT")
        .and_then(|p| p.trim().parse::<u32>().ok())
        .map(i64::from);
    if let Some(port) = asked {
        if taken.contains(&port) {
            return Err("Requested VNC port already assigned to a VM".into());
        }
        return Ok((sqlstore::objects::vnc::take(vid, hid, port), None));
    }
    let port = choose_for(conf, vid, &mut t, taken)?;
    let new = t.to_text();
    let mut stmts = vec![sqlstore::objects::replace_template(
        sqlstore::objects::vm::TABLE,
        "template",
        vid,
        new.clone(),
        text.to_string(),
    )];
    stmts.extend(sqlstore::objects::vnc::take(vid, hid, port));
    Ok((stmts, Some(new)))
}

/// A port for VM `vid` among `taken`, written in the GRAPHICS of `t`; or oned's refusal.
pub fn choose_for(
    conf: &VncPorts,
    vid: i64,
    t: &mut Template,
    taken: &BTreeSet<i64>,
) -> Result<i64, String> {
    let port = conf
        .choose(vid, taken)
        .ok_or_else(|| "No free VNC ports available in the cluster".to_string())?;
    let mut graphics = t.vector("GRAPHICS").map(<[_]>::to_vec).unwrap_or_default();
    graphics.retain(|(k, _)| !k.eq_ignore_ascii_case("PORT"));
    graphics.push(("PORT".into(), port.to_string()));
    t.set("GRAPHICS", Value::Vector(graphics));
    Ok(port)
}

/// The ports of cluster `cid` held by VMs other than `vid`.
pub fn taken_by_others(
    c: &sqlstore::Conn,
    cid: i64,
    vid: i64,
) -> Result<BTreeSet<i64>, sqlstore::SqlError> {
    let mut taken: BTreeSet<i64> = sqlstore::objects::vnc::taken(c, cid)?.into_iter().collect();
    if let Some((held_in, port)) = sqlstore::objects::vnc::of(c, vid)? {
        if held_in == cid {
            // Its own row: the port it held (a VM stopped and deployed again) is free for it.
            taken.remove(&port);
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> VncPorts {
        vnc_ports(&Template::parse(text).unwrap())
    }

    #[test]
    fn the_hint_then_the_first_free_port_not_reserved() {
        let c = conf("VNC_PORTS = [ START = 5900, RESERVED = \"32768:65536, 5905\" ]");
        let none = BTreeSet::new();
        assert_eq!(c.choose(3, &none), Some(5903));
        // The hint wraps: START + id % (65535 - START).
        assert_eq!(c.choose(59635, &none), Some(5900));
        let taken: BTreeSet<i64> = [5903, 5900, 5901].into();
        assert_eq!(c.choose(3, &taken), Some(5902));
        // A reserved hint is passed over.
        assert_eq!(c.choose(5, &none), Some(5900));
        let full: BTreeSet<i64> = (5900..=32767).collect();
        assert_eq!(c.choose(1, &full), None);
        assert_eq!(vnc_ports(&Template::default()), vnc_defaults());
    }

    #[test]
    fn a_vm_without_graphics_or_back_from_stop_takes_nothing() {
        let c = vnc_defaults();
        let none = BTreeSet::new();
        assert_eq!(
            at_deploy(&c, 1, 0, "CPU=1", false, &none).unwrap().0.len(),
            0
        );
        let t = "GRAPHICS=[TYPE=\"VNC\"]";
        assert_eq!(at_deploy(&c, 1, 0, t, true, &none).unwrap().0.len(), 0);
        let (stmts, new) = at_deploy(&c, 1, 0, t, false, &none).unwrap();
        assert_eq!(stmts.len(), 3);
        let new = Template::parse(&new.unwrap()).unwrap();
        assert_eq!(
            new.get("GRAPHICS").unwrap().vector_get("PORT"),
            Some("5901")
        );
        let asked = "GRAPHICS=[TYPE=\"VNC\",PORT=\"6000\"]";
        assert_eq!(
            at_deploy(&c, 1, 0, asked, false, &[6000].into()).unwrap_err(),
            "Requested VNC port already assigned to a VM"
        );
        let (stmts, new) = at_deploy(&c, 1, 0, asked, false, &none).unwrap();
        assert_eq!((stmts.len(), new), (2, None));
    }
}
