//! The dashboard's session cookie and CSRF token.
//!
//! The cookie is `base64url(user name) . scope . expiry . via . MAC`, the MAC an HMAC-SHA256
//! under a key derived from the zone key (`one_key`), over the name, the scope (a login token's
//! group, or -1), the expiry, and a digest of what the login proved: the user's stored password
//! hash (`via` = `p`), or the login token given as the password (`t`). So:
//! - every server of the zone verifies it (they share the zone key): the page keeps working
//!   through the floating IP after a failover, and a write sent on to the leader is checked there;
//! - a password change (a new stored hash), a deleted or expired login token, a deleted or
//!   disabled user ends the session on every server as soon as it has applied the change;
//! - it needs no state on the server, so nothing is lost when one dies.
//!
//! The CSRF token is an HMAC of the cookie under the same key (a different domain), sent by the
//! page in a header: a cross-site form cannot read it, and a cross-site `fetch` cannot set the
//! header without a preflight this server never grants.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlstore::UserRow;

use crate::auth::Session;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE: &str = "oneha_session";
/// How long a login lasts.
pub const LIFETIME_SECS: i64 = 8 * 3600;
/// Longer cookies are refused before any parsing (a name is at most 128 bytes in OpenNebula).
pub const MAX_COOKIE_LEN: usize = 512;

const SESSION_DOMAIN: &[u8] = b"OneHA dashboard session v1";
const CSRF_DOMAIN: &[u8] = b"OneHA dashboard csrf v1";

/// The key every server of the zone derives alike.
#[derive(Clone)]
pub struct Keys([u8; 32]);

impl Keys {
    pub fn new(key: [u8; 32]) -> Keys {
        Keys(key)
    }

    fn mac(&self, domain: &[u8], fields: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        for f in std::iter::once(&domain).chain(fields) {
            mac.update(&(f.len() as u64).to_be_bytes());
            mac.update(f);
        }
        mac
    }

    fn session_mac(
        &self,
        name: &str,
        scope: i64,
        expiry: i64,
        via: Via,
        bound: &str,
    ) -> HmacSha256 {
        let digest = Sha256::digest(bound.as_bytes());
        self.mac(
            SESSION_DOMAIN,
            &[
                name.as_bytes(),
                &scope.to_be_bytes(),
                &expiry.to_be_bytes(),
                via.tag().as_bytes(),
                digest.as_slice(),
            ],
        )
    }

    /// A cookie value for `user`, valid until `expiry`, bound to `bound`: the user's stored
    /// hash (`Via::Password`) or the login token the user logged in with (`Via::Token`).
    pub fn issue(&self, user: &UserRow, scope: i64, expiry: i64, via: Via, bound: &str) -> String {
        let mac = self.session_mac(&user.name, scope, expiry, via, bound);
        format!(
            "{}.{scope}.{expiry}.{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.name.as_bytes()),
            via.tag(),
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The CSRF token that goes with cookie value `token`.
    pub fn csrf(&self, token: &str) -> String {
        hex::encode(
            self.mac(CSRF_DOMAIN, &[token.as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `given` is the CSRF token of cookie value `token` (constant time).
    pub fn csrf_ok(&self, token: &str, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else {
            return false;
        };
        self.mac(CSRF_DOMAIN, &[token.as_bytes()])
            .verify_slice(&given)
            .is_ok()
    }
}

/// What a login proved, and so what its session is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Password,
    Token,
}

impl Via {
    fn tag(self) -> &'static str {
        match self {
            Via::Password => "p",
            Via::Token => "t",
        }
    }
}

/// A cookie value taken apart; its MAC not yet checked.
#[derive(Debug, PartialEq)]
pub struct Claim {
    pub name: String,
    pub scope: i64,
    pub expiry: i64,
    pub via: Via,
    mac: Vec<u8>,
}

/// Parses a cookie value; `None` if malformed, too long, expired or expiring later than any
/// session this server issues.
pub fn parse(token: &str, now: i64) -> Option<Claim> {
    if token.len() > MAX_COOKIE_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let name = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts.next()?)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let scope = parts.next()?.parse().ok()?;
    let expiry: i64 = parts.next()?.parse().ok()?;
    let via = match parts.next()? {
        "p" => Via::Password,
        "t" => Via::Token,
        _ => return None,
    };
    let mac = hex::decode(parts.next()?).ok()?;
    if parts.next().is_some() || name.is_empty() || expiry <= now || expiry > now + LIFETIME_SECS {
        return None;
    }
    Some(Claim {
        name,
        scope,
        expiry,
        via,
        mac,
    })
}

/// The session a claim opens at `now`, if its MAC holds for `user` as stored now (its password
/// hash, or one of its login tokens still valid), the user is enabled and still in the scoped
/// group.
pub fn verify(keys: &Keys, claim: &Claim, user: &UserRow, now: i64) -> Option<Session> {
    if user.name != claim.name || !user.enabled {
        return None;
    }
    let holds = |bound: &str| {
        keys.session_mac(&user.name, claim.scope, claim.expiry, claim.via, bound)
            .verify_slice(&claim.mac)
            .is_ok()
    };
    let proven = match claim.via {
        Via::Password => holds(&user.password),
        Via::Token => user
            .tokens
            .iter()
            .filter(|t| t.is_valid_at(now))
            .any(|t| holds(&t.token)),
    };
    if !proven {
        return None;
    }
    let mut session = Session::of(user);
    if claim.scope != -1 {
        if !user.groups.contains(&claim.scope) {
            return None;
        }
        session.gid = claim.scope;
        session.groups = vec![claim.scope];
    }
    Some(session)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(password: &str) -> UserRow {
        UserRow {
            oid: 3,
            name: "ana.b".into(),
            password: password.into(),
            auth_driver: "core".into(),
            gid: 1,
            gname: "users".into(),
            enabled: true,
            template: String::new(),
            groups: vec![1, 5],
            tokens: vec![],
        }
    }

    #[test]
    fn a_cookie_verifies_on_any_server_with_the_zone_key_until_the_password_changes() {
        let (a, b) = (Keys::new([7; 32]), Keys::new([7; 32]));
        let u = user("$argon2id$one");
        let now = 1_000_000;
        let token = a.issue(&u, -1, now + 60, Via::Password, &u.password);
        let claim = parse(&token, now).unwrap();
        let s = verify(&b, &claim, &u, now).unwrap();
        assert_eq!((s.uid, s.groups), (3, vec![1, 5]));
        assert!(verify(&b, &claim, &user("$argon2id$two"), now).is_none());
        assert!(verify(&Keys::new([8; 32]), &claim, &u, now).is_none());
        let mut off = u.clone();
        off.enabled = false;
        assert!(verify(&b, &claim, &off, now).is_none());
        assert!(parse(&token, now + 60).is_none(), "expired");
    }

    #[test]
    fn a_tampered_or_overlong_cookie_is_refused() {
        let k = Keys::new([1; 32]);
        let u = user("h");
        let now = 50;
        let token = k.issue(&u, -1, now + 10, Via::Password, &u.password);
        let scoped = token.replacen(".-1.", ".5.", 1);
        assert!(verify(&k, &parse(&scoped, now).unwrap(), &u, now).is_none());
        let as_token = token.replacen(".p.", ".t.", 1);
        assert!(verify(&k, &parse(&as_token, now).unwrap(), &u, now).is_none());
        assert!(parse(&format!("{token}.x"), now).is_none());
        assert!(parse(&"a".repeat(MAX_COOKIE_LEN + 1), now).is_none());
        let far = k.issue(&u, -1, now + LIFETIME_SECS + 1, Via::Password, &u.password);
        assert!(parse(&far, now).is_none(), "beyond the lifetime");
        let scoped = k.issue(&u, 5, now + 10, Via::Password, &u.password);
        let s = verify(&k, &parse(&scoped, now).unwrap(), &u, now).unwrap();
        assert_eq!((s.gid, s.groups), (5, vec![5]));
    }

    #[test]
    fn a_session_opened_with_a_login_token_ends_with_the_token() {
        let k = Keys::new([3; 32]);
        let mut u = user("h");
        u.tokens = vec![sqlstore::LoginToken {
            token: "tok-1".into(),
            expiration: 100,
            egid: -1,
        }];
        let claim = parse(&k.issue(&u, -1, 90, Via::Token, "tok-1"), 50).unwrap();
        assert!(verify(&k, &claim, &u, 50).is_some());
        assert!(verify(&k, &claim, &u, 100).is_none(), "the token expired");
        let mut password_changed = u.clone();
        password_changed.password = "other".into();
        assert!(verify(&k, &claim, &password_changed, 50).is_some());
        u.tokens.clear();
        assert!(
            verify(&k, &claim, &u, 50).is_none(),
            "the token was deleted"
        );
    }

    #[test]
    fn every_server_derives_the_same_key_from_the_zone_key_and_no_other() {
        let (a, b) = (
            peerauth::ZoneKey::new("zone-secret\n"),
            peerauth::ZoneKey::new("zone-secret"),
        );
        assert_eq!(a.derive("dashboard session"), b.derive("dashboard session"));
        assert_ne!(a.derive("dashboard session"), a.derive("other"));
        assert_ne!(
            a.derive("dashboard session"),
            peerauth::ZoneKey::new("another zone").derive("dashboard session")
        );
    }

    #[test]
    fn the_csrf_token_belongs_to_its_cookie() {
        let k = Keys::new([2; 32]);
        let t = k.csrf("cookie-a");
        assert!(k.csrf_ok("cookie-a", &t));
        assert!(!k.csrf_ok("cookie-b", &t));
        assert!(!k.csrf_ok("cookie-a", ""));
        assert!(!k.csrf_ok("cookie-a", "zz"));
        assert_eq!(cookie("a=1; oneha_session=x.y; b=2", COOKIE), Some("x.y"));
    }
}
