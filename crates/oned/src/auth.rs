//! Session checks: `user:password` against the local user pool, on whichever server receives
//! the call (followers included), before anything is forwarded.

use sqlstore::{ReadPool, UserRow};

use crate::credentials::sha256_hex;

#[derive(Debug, Clone)]
pub struct Session {
    pub uid: i64,
    pub gid: i64,
    pub name: String,
}

impl Session {
    /// Members of group 0 (oneadmin) may do everything, as in OpenNebula.
    pub fn is_admin(&self) -> bool {
        self.uid == 0 || self.gid == 0
    }
}

/// `None` for anything that must be refused with AUTHENTICATION.
pub async fn authenticate(pool: &ReadPool, session: &str) -> Option<Session> {
    let (name, secret) = session.split_once(':')?;
    if name.is_empty() {
        return None;
    }
    let (pool, lookup) = (pool.clone(), name.to_string());
    let user: UserRow =
        tokio::task::spawn_blocking(move || pool.with(|c| sqlstore::find_user_by_name(c, &lookup)))
            .await
            .ok()?
            .ok()??;
    if !user.enabled || user.auth_driver != "core" {
        return None;
    }
    if sha256_hex(secret) != user.password {
        return None;
    }
    Some(Session {
        uid: user.oid,
        gid: user.gid,
        name: user.name,
    })
}
