//! On a federation's slave zone, the changes of shared objects go to the master zone
//! (`FEDERATION/MASTER_ONED`), byte for byte, and its answer comes back as it is: OpenNebula's
//! `RequestManagerProxy`, for the same methods. The master checks the caller (the user may
//! exist only there yet); the change reaches this zone with the master's federated log.

use tracing::warn;

use super::{code, failure_xml, Ctx, Reply};

/// The methods a slave zone passes to its master (`RequestManager.cc`, release 7.0.2).
pub const PROXIED: &[&str] = &[
    "one.acl.addrule",
    "one.acl.delrule",
    "one.group.addadmin",
    "one.group.allocate",
    "one.group.deladmin",
    "one.group.delete",
    "one.group.update",
    "one.market.chmod",
    "one.market.chown",
    "one.market.delete",
    "one.market.enable",
    "one.market.rename",
    "one.market.update",
    "one.marketapp.chmod",
    "one.marketapp.chown",
    "one.marketapp.enable",
    "one.marketapp.lock",
    "one.marketapp.rename",
    "one.marketapp.unlock",
    "one.marketapp.update",
    "one.user.addgroup",
    "one.user.allocate",
    "one.user.chauth",
    "one.user.chgrp",
    "one.user.delete",
    "one.user.delgroup",
    "one.user.enable",
    "one.user.login",
    "one.user.passwd",
    "one.user.update",
    "one.vdc.addcluster",
    "one.vdc.adddatastore",
    "one.vdc.addgroup",
    "one.vdc.addhost",
    "one.vdc.addvnet",
    "one.vdc.allocate",
    "one.vdc.delcluster",
    "one.vdc.deldatastore",
    "one.vdc.delete",
    "one.vdc.delgroup",
    "one.vdc.delhost",
    "one.vdc.delvnet",
    "one.vdc.rename",
    "one.vdc.update",
    "one.zone.allocate",
    "one.zone.delete",
    "one.zone.rename",
    "one.zone.update",
];

/// Whether `method` is the master's to run, this zone being a slave.
pub fn is_masters(ctx: &Ctx, method: &str) -> bool {
    ctx.config.is_federation_slave() && PROXIED.binary_search(&method).is_ok()
}

/// The answer to a call made here on behalf of a user already authenticated (the dashboard's)
/// that is the master's to run: it carries no credentials the master could check, and run here
/// it would change this zone's copy of the shared tables alone.
pub fn refusal(method: &str) -> Reply {
    failure_xml(
        method,
        code::ACTION,
        "This zone is a federation slave: users, groups, ACL rules, zones, VDCs and marketplaces \
         are changed through the master zone",
    )
}

/// `None` to run `method` here; otherwise the master's answer to it.
pub async fn to_master(ctx: &Ctx, method: &str, body: &[u8]) -> Option<Reply> {
    if !is_masters(ctx, method) {
        return None;
    }
    let timeout = ctx.config.write_deadline() + std::time::Duration::from_secs(2);
    let sent = ctx
        .http
        .post(&ctx.config.master_oned)
        .header("content-type", "text/xml")
        .timeout(timeout)
        .body(body.to_vec())
        .send()
        .await;
    let answer = match sent {
        Ok(resp) => resp.bytes().await,
        Err(e) => Err(e),
    };
    Some(match answer {
        Ok(bytes) => Reply::Forwarded(bytes.to_vec()),
        Err(e) => {
            warn!(master = %ctx.config.master_oned, error = %e, method, "the federation master could not be reached");
            failure_xml(
                method,
                code::INTERNAL,
                "Could not connect to the federation master oned",
            )
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_is_sorted_for_its_search() {
        assert!(super::PROXIED.windows(2).all(|w| w[0] < w[1]));
    }
}
