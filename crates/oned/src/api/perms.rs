//! Object ownership, OpenNebula's permission bits and ACL rules, and pool filters: who may see
//! or change an object (`AuthManager`, `PoolSQL::usr_filter`).

use xmlrpc::Params;

use super::{code, fail, Ctx, Failure};
use crate::auth::Session;

pub const USE: u64 = 0x1;
pub const MANAGE: u64 = 0x2;
pub const ADMIN: u64 = 0x4;
pub const CREATE: u64 = 0x8;

/// ACL resource bits of the object types checked here.
pub const VM: u64 = 0x10_0000_0000;
pub const TEMPLATE: u64 = 0x200_0000_0000;

/// `DEFAULT_UMASK = 177`: owner use and manage, nothing else (bits u m a for owner, group,
/// other, most significant first).
pub const DEFAULT_PERMS: i64 = 0o600;

/// What authorization needs to know about an object.
#[derive(Debug, Clone, Copy)]
pub struct Owned {
    pub oid: i64,
    pub uid: i64,
    pub gid: i64,
    /// Nine bits: owner u m a, group u m a, other u m a.
    pub perms: i64,
}

/// A caller with its groups and the ACL rules that concern it.
pub struct Caller<'a> {
    pub session: &'a Session,
    pub groups: Vec<i64>,
    /// (user, resource, rights) of every rule.
    pub rules: Vec<(u64, u64, u64)>,
}

fn perm_bit(perms: i64, class: u32, right: u64) -> bool {
    // class 0 owner, 1 group, 2 other; right USE/MANAGE/ADMIN = bit 2/1/0 of the class octet.
    let octet = (perms >> (3 * (2 - class))) & 0o7;
    let bit = match right {
        USE => 0o4,
        MANAGE => 0o2,
        ADMIN => 0o1,
        _ => 0,
    };
    octet & bit != 0
}

impl Caller<'_> {
    fn rule_applies_to_me(&self, user: u64) -> bool {
        let id = (user & 0xFFFF_FFFF) as i64;
        (user & 0x4_0000_0000 != 0)
            || (user & 0x1_0000_0000 != 0 && id == self.session.uid)
            || (user & 0x2_0000_0000 != 0 && self.groups.contains(&id))
    }

    /// Whether an ACL rule grants `right` on objects of `kind`, for `obj` (None: creating).
    fn acl_allows(&self, kind: u64, obj: Option<&Owned>, right: u64) -> bool {
        self.rules.iter().any(|&(user, resource, rights)| {
            if rights & right == 0 || resource & kind == 0 || !self.rule_applies_to_me(user) {
                return false;
            }
            let id = (resource & 0xFFFF_FFFF) as i64;
            if resource & 0x4_0000_0000 != 0 {
                return true;
            }
            match obj {
                Some(o) => {
                    (resource & 0x1_0000_0000 != 0 && id == o.oid)
                        || (resource & 0x2_0000_0000 != 0 && id == o.gid)
                }
                None => false,
            }
        })
    }

    /// Whether the caller may exercise `right` on `obj` (of ACL type `kind`).
    pub fn may(&self, kind: u64, obj: &Owned, right: u64) -> bool {
        if self.session.is_admin() {
            return true;
        }
        let by_perms = (obj.uid == self.session.uid && perm_bit(obj.perms, 0, right))
            || (self.groups.contains(&obj.gid) && perm_bit(obj.perms, 1, right))
            || perm_bit(obj.perms, 2, right);
        by_perms || self.acl_allows(kind, Some(obj), right)
    }

    pub fn may_create(&self, kind: u64) -> bool {
        self.session.is_admin() || self.acl_allows(kind, None, CREATE)
    }
}

/// Loads the caller's groups and the ACL rules.
pub async fn caller<'a>(ctx: &Ctx, s: &'a Session) -> Result<Caller<'a>, Failure> {
    let uid = s.uid;
    let (groups, rules) = ctx
        .read(move |c| {
            let mut st = c.prepare("SELECT gid FROM user_groups WHERE uid = ?1")?;
            let groups: Vec<i64> = st
                .query_map([uid], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut st = c.prepare("SELECT user, resource, rights FROM acl")?;
            let rules: Vec<(u64, u64, u64)> = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            Ok((groups, rules))
        })
        .await?;
    Ok(Caller {
        session: s,
        groups,
        rules,
    })
}

pub fn not_authorized(s: &Session, what: &str) -> Failure {
    fail(
        code::AUTHORIZATION,
        format!("User [{}] : Not authorized to perform {what}.", s.uid),
    )
}

/// The `PERMISSIONS` element.
pub fn permissions_xml(perms: i64) -> String {
    let names = [
        "OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M",
        "OTHER_A",
    ];
    let mut out = String::from("<PERMISSIONS>");
    for (i, n) in names.iter().enumerate() {
        let bit = (perms >> (8 - i)) & 1;
        out.push_str(&format!("<{n}>{bit}</{n}>"));
    }
    out.push_str("</PERMISSIONS>");
    out
}

/// `one.<o>.chmod` arguments applied to `perms` (-1 keeps a bit).
pub fn chmod(perms: i64, p: &Params<'_>) -> Result<i64, Failure> {
    let mut out = perms;
    for i in 0..9 {
        let v = p.int(1 + i)?;
        let bit = 1 << (8 - i);
        match v {
            -1 => {}
            0 => out &= !bit,
            1 => out |= bit,
            other => {
                return Err(fail(
                    code::XML_RPC_API,
                    format!("Wrong permission value {other}"),
                ))
            }
        }
    }
    Ok(out)
}

/// A pool call's filter flag and oid range (`i filter, i start, i end`), defaults -2, -1, -1.
#[derive(Debug, Clone, Copy)]
pub struct PoolFilter {
    pub flag: i64,
    pub start: i64,
    pub end: i64,
}

impl PoolFilter {
    pub fn parse(p: &Params<'_>) -> Result<PoolFilter, Failure> {
        let get = |i: usize, d: i64| -> Result<i64, Failure> {
            match p.0.get(i) {
                Some(_) => Ok(p.int(i)? as i64),
                None => Ok(d),
            }
        };
        let f = PoolFilter {
            flag: get(0, -2)?,
            start: get(1, -1)?,
            end: get(2, -1)?,
        };
        if f.flag < -4 {
            return Err(fail(code::XML_RPC_API, "Incorrect filter_flag"));
        }
        Ok(f)
    }

    /// Keeps the objects the flag selects and the caller may see, then applies the range.
    pub fn apply<T>(&self, c: &Caller<'_>, kind: u64, items: Vec<(Owned, T)>) -> Vec<T> {
        let me = c.session;
        let selected = items.into_iter().filter(|(o, _)| {
            let owner_ok = match self.flag {
                -4 => o.gid == me.gid,
                -3 => o.uid == me.uid,
                -2 => true,
                -1 => o.uid == me.uid || c.groups.contains(&o.gid),
                uid => o.uid == uid,
            };
            owner_ok && c.may(kind, o, USE)
        });
        let mut ranged: Vec<T> = Vec::new();
        if self.end < -1 {
            let (offset, size) = (self.start.max(0) as usize, (-self.end) as usize);
            ranged.extend(selected.skip(offset).take(size).map(|(_, t)| t));
        } else {
            ranged.extend(
                selected
                    .filter(|(o, _)| {
                        (self.start == -1 || o.oid >= self.start)
                            && (self.end == -1 || o.oid <= self.end)
                    })
                    .map(|(_, t)| t),
            );
        }
        ranged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_umask_gives_owner_use_and_manage() {
        assert_eq!(
            permissions_xml(DEFAULT_PERMS),
            "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>"
        );
        assert!(perm_bit(DEFAULT_PERMS, 0, USE) && perm_bit(DEFAULT_PERMS, 0, MANAGE));
        assert!(!perm_bit(DEFAULT_PERMS, 0, ADMIN) && !perm_bit(DEFAULT_PERMS, 1, USE));
    }
}
