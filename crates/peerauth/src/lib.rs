//! Proof of possession of the zone key for server-to-server calls (`/raft/*`, `/oneha/sync/*`).
//!
//! The zone key never travels. A call carries an HMAC-SHA256, keyed with the zone key, over what
//! it is: method, path, argument (`x-oneha-path`), target server id, source server id, a
//! timestamp, a random nonce and the SHA-256 of its body. The receiver recomputes it (constant
//! time), checks the target is itself, that the timestamp is within [`MAX_SKEW`] of its clock
//! and that the MAC was not seen before (a bounded replay cache). The answer carries an
//! HMAC over the request's MAC, the status code and the SHA-256 of the answer's body, which the
//! caller checks: a server without the key can neither call nor answer (it cannot ack an
//! AppendEntries or grant a vote). See `docs/security-peers.md`.
//!
//! Pure apart from reading the clock and the random nonce: the HTTP layers (reqwest in
//! `consensus`, axum in `oned`, ureq in `cli`) only move the header values.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

// The headers a signed call carries; their names are shared with every caller (`wire`).
pub use wire::header::{
    MAC as MAC_HEADER, NONCE as NONCE_HEADER, REPLY_MAC as REPLY_MAC_HEADER,
    SOURCE as SOURCE_HEADER, SYNC_PATH as ARG_HEADER, TARGET as TARGET_HEADER, TIME as TIME_HEADER,
};

/// How far a call's timestamp may be from the receiver's clock, either way. Servers of a zone
/// must keep their clocks within this of each other (NTP does far better).
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// MACs remembered to refuse replays: more than a zone sends one server in [`MAX_SKEW`]
/// (heartbeats every 100 ms from one leader are 3,000).
const REPLAY_CAPACITY: usize = 1 << 17;

const REQUEST_DOMAIN: &[u8] = b"OneHA peer request v1";
const REPLY_DOMAIN: &[u8] = b"OneHA peer reply v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Reject {
    #[error("peer call refused: missing or malformed {0}")]
    Missing(&'static str),
    #[error("peer call refused: bad MAC (not signed with this zone's key)")]
    BadMac,
    #[error("peer call meant for server {0}, this is server {1}")]
    WrongServer(String, u64),
    #[error("peer call refused: its time {time} is more than {max}s from this server's clock {now} (check NTP)", max = MAX_SKEW.as_secs())]
    Stale { time: u64, now: u64 },
    #[error("peer call refused: replayed")]
    Replayed,
    #[error("peer answer refused: missing or bad reply MAC (not the zone's server)")]
    BadReply,
}

/// The zone key (`one_key`). Its `Debug` never shows it.
#[derive(Clone)]
pub struct ZoneKey(Vec<u8>);

impl ZoneKey {
    /// From the text of `one_key` (surrounding whitespace is not part of the key).
    pub fn new(text: &str) -> ZoneKey {
        ZoneKey(text.trim().as_bytes().to_vec())
    }

    /// A key for another use of the zone key (`domain` names it, e.g. the dashboard's session
    /// cookies): every server of the zone derives the same one, and it reveals nothing of the
    /// zone key nor of the keys of other domains.
    pub fn derive(&self, domain: &str) -> [u8; 32] {
        let mut mac = self.mac();
        field(&mut mac, b"OneHA derived key v1");
        field(&mut mac, domain.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZoneKey(..)")
    }
}

/// What a call is: bound by its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The URI path, `/raft/append`.
    pub path: &'a str,
    /// The value of [`ARG_HEADER`], empty if none.
    pub arg: &'a str,
}

/// The header values that prove a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub target: u64,
    pub source: u64,
    pub time: u64,
    pub nonce: String,
    pub mac: String,
}

impl Signed {
    /// `(name, value)` of every header to send.
    pub fn headers(&self) -> [(&'static str, String); 5] {
        [
            (TARGET_HEADER, self.target.to_string()),
            (SOURCE_HEADER, self.source.to_string()),
            (TIME_HEADER, self.time.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (MAC_HEADER, self.mac.clone()),
        ]
    }

    /// Checks the answer to this call: `header` is its [`REPLY_MAC_HEADER`].
    pub fn check_reply(
        &self,
        key: &ZoneKey,
        status: u16,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<(), Reject> {
        let given = header
            .and_then(|h| hex::decode(h).ok())
            .ok_or(Reject::BadReply)?;
        reply_hmac(key, &self.mac, status, body)
            .verify_slice(&given)
            .map_err(|_| Reject::BadReply)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs a call from `source` to `target` now, with a fresh nonce.
pub fn sign(key: &ZoneKey, call: Call<'_>, target: u64, source: u64, body: &[u8]) -> Signed {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    sign_at(key, call, target, source, now(), &hex::encode(nonce), body)
}

/// [`sign`] with a given time and nonce.
pub fn sign_at(
    key: &ZoneKey,
    call: Call<'_>,
    target: u64,
    source: u64,
    time: u64,
    nonce: &str,
    body: &[u8],
) -> Signed {
    let mac = request_hmac(key, call, target, source, time, nonce, body).finalize();
    Signed {
        target,
        source,
        time,
        nonce: nonce.to_string(),
        mac: hex::encode(mac.into_bytes()),
    }
}

/// Each field is length-prefixed, so no two different calls share the signed bytes.
fn field(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn request_hmac(
    key: &ZoneKey,
    call: Call<'_>,
    target: u64,
    source: u64,
    time: u64,
    nonce: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = key.mac();
    field(&mut mac, REQUEST_DOMAIN);
    field(&mut mac, call.method.as_bytes());
    field(&mut mac, call.path.as_bytes());
    field(&mut mac, call.arg.as_bytes());
    field(&mut mac, &target.to_be_bytes());
    field(&mut mac, &source.to_be_bytes());
    field(&mut mac, &time.to_be_bytes());
    field(&mut mac, nonce.as_bytes());
    field(&mut mac, &Sha256::digest(body));
    mac
}

fn reply_hmac(key: &ZoneKey, request_mac: &str, status: u16, body: &[u8]) -> HmacSha256 {
    let mut mac = key.mac();
    field(&mut mac, REPLY_DOMAIN);
    field(&mut mac, request_mac.as_bytes());
    field(&mut mac, &status.to_be_bytes());
    field(&mut mac, &Sha256::digest(body));
    mac
}

/// A call that passed [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub source: u64,
    mac: String,
}

impl Verified {
    /// The [`REPLY_MAC_HEADER`] value for an answer with `status` and `body`.
    pub fn reply_mac(&self, key: &ZoneKey, status: u16, body: &[u8]) -> String {
        hex::encode(
            reply_hmac(key, &self.mac, status, body)
                .finalize()
                .into_bytes(),
        )
    }
}

/// MACs seen within the skew window, oldest first; bounded.
#[derive(Default)]
struct ReplayCache {
    order: VecDeque<(u64, [u8; 32])>,
    seen: HashSet<[u8; 32]>,
}

impl ReplayCache {
    /// False if `mac` was already seen.
    fn insert(&mut self, mac: [u8; 32], time: u64, now: u64) -> bool {
        let horizon = now.saturating_sub(2 * MAX_SKEW.as_secs());
        while let Some(&(t, old)) = self.order.front() {
            if t >= horizon && self.order.len() < REPLAY_CAPACITY {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(mac) {
            return false;
        }
        self.order.push_back((time, mac));
        true
    }
}

/// Checks incoming calls for one server.
pub struct Verifier {
    pub key: ZoneKey,
    pub server_id: u64,
    replays: Mutex<ReplayCache>,
}

impl Verifier {
    pub fn new(key: ZoneKey, server_id: u64) -> Verifier {
        Verifier {
            key,
            server_id,
            replays: Mutex::new(ReplayCache::default()),
        }
    }

    /// Checks a call whose headers `header` returns, at Unix time `now`.
    pub fn verify<'h>(
        &self,
        call: Call<'_>,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, Reject> {
        let number = |name: &'static str| {
            header(name)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Reject::Missing(name))
        };
        let target = number(TARGET_HEADER)?;
        let source = number(SOURCE_HEADER)?;
        let time = number(TIME_HEADER)?;
        let nonce = header(NONCE_HEADER)
            .filter(|n| !n.is_empty() && n.len() <= 64)
            .ok_or(Reject::Missing(NONCE_HEADER))?;
        let given: [u8; 32] = header(MAC_HEADER)
            .and_then(|m| hex::decode(m).ok())
            .and_then(|m| m.try_into().ok())
            .ok_or(Reject::Missing(MAC_HEADER))?;
        request_hmac(&self.key, call, target, source, time, nonce, body)
            .verify_slice(&given)
            .map_err(|_| Reject::BadMac)?;
        if target != self.server_id {
            return Err(Reject::WrongServer(target.to_string(), self.server_id));
        }
        if time.abs_diff(now) > MAX_SKEW.as_secs() {
            return Err(Reject::Stale { time, now });
        }
        let fresh = self
            .replays
            .lock()
            .map_err(|_| Reject::Replayed)?
            .insert(given, time, now);
        if !fresh {
            return Err(Reject::Replayed);
        }
        Ok(Verified {
            source,
            mac: hex::encode(given),
        })
    }
}

pub mod server_cipher;
pub mod server_x509;

#[cfg(test)]
mod tests;
