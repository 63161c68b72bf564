//! AS_UID and AS_GID of an instantiate's template (`Request::as_uid_gid`): the new VM or
//! network is made for that user and group, the rest of the request authorized as them.

use template::Template;

use super::perms::{caller, MANAGE};
use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

/// Takes AS_UID and AS_GID out of `t` and answers the session the request goes on as: `s`
/// itself without them; the user (its name) and the group (its only group) they name, each
/// needing MANAGE from a caller other than oneadmin. An id of 0 is no change.
pub async fn as_uid_gid(ctx: &Ctx, s: &Session, t: &mut Template) -> Result<Session, Failure> {
    let as_uid = t.single_as::<i64>("AS_UID");
    let as_gid = t.single_as::<i64>("AS_GID");
    let mut user = None;
    if let Some(uid) = as_uid {
        t.remove("AS_UID");
        let row = ctx
            .read(move |c| sqlstore::load_user(c, uid))
            .await?
            .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting user [{uid}].")))?;
        user = Some(row);
    }
    if let Some(gid) = as_gid {
        t.remove("AS_GID");
        super::must_exist(ctx, sqlstore::objects::Table::Group, gid).await?;
    }
    let (uid, gid) = (as_uid.unwrap_or(-1), as_gid.unwrap_or(-1));
    if uid == -1 && gid == -1 {
        return Ok(s.clone());
    }
    if s.uid != 0 {
        let c = caller(ctx, s).await?;
        let mut why = Vec::new();
        if let Some(u) = user.as_ref().filter(|_| uid > 0) {
            if !c.may_on(wire::acl::USER, uid, u.gid, MANAGE) {
                why.push(format!("Not authorized to perform MANAGE USER [{uid}]"));
            }
        }
        if gid > 0 && !c.may_on(wire::acl::GROUP, gid, gid, MANAGE) {
            why.push(format!("Not authorized to perform MANAGE GROUP [{gid}]"));
        }
        super::granted_unless(s, &why)?;
    }
    let mut as_session = s.clone();
    if let Some(u) = user.filter(|_| uid > 0) {
        as_session.uid = uid;
        as_session.name = u.name;
    }
    if gid > 0 {
        as_session.gid = gid;
        as_session.groups = vec![gid];
    }
    Ok(as_session)
}
