use std::collections::HashMap;

use super::*;

const APPEND: Call<'static> = Call {
    method: "POST",
    path: "/raft/append",
    arg: "",
};

fn key() -> ZoneKey {
    ZoneKey::new("0123456789abcdef0123456789abcdef\n")
}

fn headers(s: &Signed) -> HashMap<&'static str, String> {
    s.headers().into_iter().collect()
}

fn verify(
    v: &Verifier,
    call: Call<'_>,
    h: &HashMap<&'static str, String>,
    body: &[u8],
    now: u64,
) -> Result<Verified, Reject> {
    v.verify(call, |name| h.get(name).map(String::as_str), body, now)
}

#[test]
fn a_signed_call_verifies_and_its_signed_answer_is_accepted() {
    let signed = sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"body");
    let v = Verifier::new(key(), 2);
    let ok = verify(&v, APPEND, &headers(&signed), b"body", 1000).unwrap();
    assert_eq!(ok.source, 1);
    let reply = ok.reply_mac(&key(), 200, b"answer");
    assert_eq!(
        signed.check_reply(&key(), 200, b"answer", Some(&reply)),
        Ok(())
    );
}

#[test]
fn the_headers_never_contain_the_key() {
    let signed = sign(&key(), APPEND, 2, 1, b"body");
    for (_, value) in signed.headers() {
        assert!(!value.contains("0123456789abcdef0123456789abcdef"));
    }
    assert_eq!(format!("{:?}", key()), "ZoneKey(..)");
}

#[test]
fn any_change_to_the_call_breaks_the_mac() {
    let signed = sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"body");
    let h = headers(&signed);
    let v = Verifier::new(key(), 2);
    // Another body, path, method or argument.
    assert_eq!(verify(&v, APPEND, &h, b"bodY", 1000), Err(Reject::BadMac));
    let vote = Call {
        path: "/raft/vote",
        ..APPEND
    };
    assert_eq!(verify(&v, vote, &h, b"body", 1000), Err(Reject::BadMac));
    let get = Call {
        method: "GET",
        ..APPEND
    };
    assert_eq!(verify(&v, get, &h, b"body", 1000), Err(Reject::BadMac));
    let arg = Call {
        arg: "oned.conf",
        ..APPEND
    };
    assert_eq!(verify(&v, arg, &h, b"body", 1000), Err(Reject::BadMac));
    // Another header value.
    for (name, value) in [
        (SOURCE_HEADER, "3"),
        (TIME_HEADER, "1001"),
        (NONCE_HEADER, "n2"),
    ] {
        let mut h = h.clone();
        h.insert(name, value.to_string());
        assert_eq!(
            verify(&v, APPEND, &h, b"body", 1000),
            Err(Reject::BadMac),
            "{name}"
        );
    }
    // Another key.
    let other = Verifier::new(ZoneKey::new("another key"), 2);
    assert_eq!(
        verify(&other, APPEND, &h, b"body", 1000),
        Err(Reject::BadMac)
    );
}

#[test]
fn a_call_for_another_server_is_refused() {
    let signed = sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"");
    let v = Verifier::new(key(), 3);
    assert!(matches!(
        verify(&v, APPEND, &headers(&signed), b"", 1000),
        Err(Reject::WrongServer(..))
    ));
    // A forged target header breaks the MAC.
    let mut h = headers(&signed);
    h.insert(TARGET_HEADER, "3".into());
    assert_eq!(verify(&v, APPEND, &h, b"", 1000), Err(Reject::BadMac));
}

#[test]
fn missing_headers_are_refused() {
    let signed = sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"");
    let v = Verifier::new(key(), 2);
    for name in [
        SOURCE_HEADER,
        TIME_HEADER,
        NONCE_HEADER,
        MAC_HEADER,
        TARGET_HEADER,
    ] {
        let mut h = headers(&signed);
        h.remove(name);
        assert!(verify(&v, APPEND, &h, b"", 1000).is_err(), "{name}");
    }
    // The old scheme's header alone gets nowhere.
    let h = HashMap::from([
        (
            "x-oneha-zone-key",
            "0123456789abcdef0123456789abcdef".to_string(),
        ),
        (TARGET_HEADER, "2".to_string()),
    ]);
    assert!(verify(&v, APPEND, &h, b"", 1000).is_err());
}

#[test]
fn calls_outside_the_clock_window_are_refused() {
    let v = Verifier::new(key(), 2);
    let skew = MAX_SKEW.as_secs();
    let at = |time: u64, nonce: &str| headers(&sign_at(&key(), APPEND, 2, 1, time, nonce, b""));
    let now = 10_000;
    assert!(verify(&v, APPEND, &at(now - skew, "a"), b"", now).is_ok());
    assert!(verify(&v, APPEND, &at(now + skew, "b"), b"", now).is_ok());
    assert!(matches!(
        verify(&v, APPEND, &at(now - skew - 1, "c"), b"", now),
        Err(Reject::Stale { .. })
    ));
    assert!(matches!(
        verify(&v, APPEND, &at(now + skew + 1, "d"), b"", now),
        Err(Reject::Stale { .. })
    ));
}

#[test]
fn a_replayed_call_is_refused() {
    let v = Verifier::new(key(), 2);
    let h = headers(&sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"x"));
    assert!(verify(&v, APPEND, &h, b"x", 1000).is_ok());
    assert_eq!(verify(&v, APPEND, &h, b"x", 1001), Err(Reject::Replayed));
    // A fresh nonce is a new call.
    let h = headers(&sign_at(&key(), APPEND, 2, 1, 1000, "n2", b"x"));
    assert!(verify(&v, APPEND, &h, b"x", 1001).is_ok());
}

#[test]
fn the_replay_cache_forgets_what_the_window_refuses_anyway() {
    let mut cache = ReplayCache::default();
    assert!(cache.insert([1; 32], 1000, 1000));
    assert!(!cache.insert([1; 32], 1000, 1000));
    let later = 1000 + 2 * MAX_SKEW.as_secs() + 1;
    assert!(cache.insert([2; 32], later, later));
    assert_eq!(cache.order.len(), 1);
    assert!(!cache.seen.contains(&[1; 32]));
}

#[test]
fn a_forged_or_altered_answer_is_refused() {
    let signed = sign_at(&key(), APPEND, 2, 1, 1000, "n1", b"body");
    let v = Verifier::new(key(), 2);
    let ok = verify(&v, APPEND, &headers(&signed), b"body", 1000).unwrap();
    let reply = ok.reply_mac(&key(), 200, b"granted");
    assert_eq!(
        signed.check_reply(&key(), 200, b"denied", Some(&reply)),
        Err(Reject::BadReply)
    );
    assert_eq!(
        signed.check_reply(&key(), 500, b"granted", Some(&reply)),
        Err(Reject::BadReply)
    );
    assert_eq!(
        signed.check_reply(&key(), 200, b"granted", None),
        Err(Reject::BadReply)
    );
    // Signed with another key: a server that does not hold the zone's key.
    let fake = ok.reply_mac(&ZoneKey::new("guess"), 200, b"granted");
    assert_eq!(
        signed.check_reply(&key(), 200, b"granted", Some(&fake)),
        Err(Reject::BadReply)
    );
    // The answer to another call does not fit this one.
    let other = sign_at(&key(), APPEND, 2, 1, 1000, "n2", b"body");
    assert_eq!(
        other.check_reply(&key(), 200, b"granted", Some(&reply)),
        Err(Reject::BadReply)
    );
}
