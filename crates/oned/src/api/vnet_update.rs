//! `one.vn.update`: the generic template update, less what the network's template carries that
//! is not the user's to write. The address ranges live in the stored template as `AR` vectors
//! (their leases point at them), so an update keeps the stored ones and ignores any `AR` it is
//! given: ranges change through `add_ar`, `rm_ar` and `update_ar` only, with their checks. And
//! `VN_MAD` stays the driver the network was made with, as `VirtualNetwork::post_update_template`
//! puts it back.

use sqlstore::objects::vnet::VnetRow;
use template::{Template, Value};
use xmlrpc::Params;

use super::family::Family;
use super::perms::MANAGE;
use super::writes::{merged, merged_checked, update_type, write_computed};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// Attributes an update never changes.
const KEPT: &[&str] = &["AR", "VN_MAD"];

pub async fn update(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<VnetRow>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let row = f.authorized(ctx, s, id, MANAGE).await?;
    let bridge_type = super::vnet::bridge_type(ctx, &row.vn_mad);
    let row = &row;
    let bridge_type = bridge_type.as_str();
    let text = p.string(1)?.to_string();
    let merge = update_type(&p)?;
    let ras = if s.is_admin() {
        Vec::new()
    } else {
        super::restricted::vnet(ctx)
    };
    let (text, ras) = (&text, &ras);
    write_computed(ctx, id, move || async move {
        let old = ctx
            .read(move |c| sqlstore::objects::template_text(c, f.table, f.template, id))
            .await?;
        let Some(old) = old else {
            return Err(f.missing(id));
        };
        // The ranges are not the template's in OpenNebula (they live in AR_POOL): the
        // restricted attributes are weighed against the rest.
        let stored = Template::parse(&old).unwrap_or_default();
        let mut base = stored.clone();
        base.remove("AR");
        let given = merged_checked(&base.to_text(), text, merge, ras)?;
        let given = if merge { text.to_string() } else { given };
        let mut new = kept(&stored, &merged(&old, &given, merge)?)?;
        // `VirtualNetwork::post_update_template`: PHYDEV and the VLAN ids written back, the
        // bridge the update names (else the network's), the driver's BRIDGE_TYPE.
        let phydev = new.single("PHYDEV").unwrap_or("").to_string();
        new.set("PHYDEV", Value::Single(phydev));
        super::vnet_vlans::after_update(&mut new, row.vlan_auto, row.outer_vlan_auto);
        // The bridge the update names, else the one the stored template (guarded) holds.
        let bridge = [new.single("BRIDGE"), stored.single("BRIDGE")]
            .into_iter()
            .flatten()
            .find(|b| !b.is_empty())
            .map_or_else(|| row.bridge.clone(), str::to_string);
        new.set("BRIDGE", Value::Single(bridge.clone()));
        new.set("BRIDGE_TYPE", Value::Single(bridge_type.to_string()));
        super::encrypted::seal_in(ctx, f.table, &mut new);
        // The bridge column follows the template's BRIDGE whatever a concurrent update did:
        // the template's guard above sees those, the row read before the retries would not.
        Ok(vec![
            sqlstore::objects::replace_template(f.table, f.template, id, new.to_text(), old),
            sqlstore::objects::vnet::set_bridge(id, &bridge),
        ])
    })
    .await
}

/// `new` with the [`KEPT`] attributes of `old`, whatever `new` says of them.
fn kept(old: &Template, new: &str) -> Result<Template, Failure> {
    let bad = |e: template::ParseError| {
        fail(
            code::INTERNAL,
            format!("Cannot update template. Parse error: {e}"),
        )
    };
    let mut new = Template::parse(new).map_err(bad)?;
    for name in KEPT {
        new.remove(name);
        for a in old.get_all(name) {
            new.push(name, a.value.clone());
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_the_driver_stay_whatever_the_update_says() {
        let old = "NAME = n\nVN_MAD = bridge\nAR = [ AR_ID = 0, TYPE = ETHER, SIZE = 4 ]\n\
                   AR = [ AR_ID = 1, TYPE = ETHER, SIZE = 2 ]\nCOLOR = red";
        let new = "COLOR = blue\nVN_MAD = fw\nAR = [ AR_ID = 0, TYPE = ETHER, SIZE = 9999 ]";
        let t = kept(&Template::parse(old).unwrap(), new).unwrap();
        assert_eq!(t.single("COLOR"), Some("blue"));
        assert_eq!(t.single("VN_MAD"), Some("bridge"));
        let sizes: Vec<_> = t
            .get_all("AR")
            .filter_map(|a| a.vector_get("SIZE"))
            .collect();
        assert_eq!(sizes, ["4", "2"]);
    }
}
