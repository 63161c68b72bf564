//! A security group's `RULE` vectors, checked as `SecurityGroup::is_valid` checks them (its
//! messages, in its order) and rid of duplicates as `SecurityGroup::remove_duplicates`.

use std::net::{Ipv4Addr, Ipv6Addr};

use template::{vector_get, Template};

/// Most ports one rule's RANGE may name (a `from:to` span counts two).
const MAX_PORTS: usize = 15;

/// Checks every RULE of `t`, then drops the rules equal to an earlier one. A RULE that is not a
/// vector is left alone, as OpenNebula reads vectors only.
pub fn check(t: &mut Template) -> Result<(), String> {
    for a in t.get_all("RULE") {
        if let Some(pairs) = a.value.as_vector() {
            is_valid(pairs)?;
        }
    }
    remove_duplicates(t);
    Ok(())
}

/// A rule as OpenNebula compares them: its keys and values, in key order.
fn key(pairs: &[(String, String)]) -> Vec<(String, &str)> {
    let mut k: Vec<(String, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.to_ascii_uppercase(), v.as_str()))
        .collect();
    k.sort();
    k
}

/// Keeps the first of equal rules; the others go, the template keeping its order.
fn remove_duplicates(t: &mut Template) {
    let mut seen: Vec<Vec<(String, String)>> = Vec::new();
    t.attrs.retain(|a| {
        if !a.name.eq_ignore_ascii_case("RULE") {
            return true;
        }
        let Some(pairs) = a.value.as_vector() else {
            return true;
        };
        let k: Vec<(String, String)> = key(pairs)
            .into_iter()
            .map(|(n, v)| (n, v.to_string()))
            .collect();
        if seen.contains(&k) {
            return false;
        }
        seen.push(k);
        true
    });
    // The HASH `remove_duplicates` compared them by is taken out of every rule kept, a
    // client's own HASH included.
    for a in t
        .attrs
        .iter_mut()
        .filter(|a| a.name.eq_ignore_ascii_case("RULE"))
    {
        if let template::Value::Vector(pairs) = &mut a.value {
            pairs.retain(|(k, _)| !k.eq_ignore_ascii_case("HASH"));
        }
    }
}

/// `VectorAttribute::vector_value` into an unsigned int: the whole value, no sign.
fn unsigned(v: Option<&str>) -> Option<u32> {
    let v = v.filter(|v| !v.is_empty())?;
    if v.trim().starts_with('-') {
        return None;
    }
    let t = v.trim_start();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `VectorAttribute::vector_value` into an int: the whole value, a sign allowed.
fn int(v: &str) -> Option<i32> {
    let t = v.trim_start();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.strip_prefix('+').unwrap_or(t).parse().ok()
}

/// `one_util::string_to_unsigned<uint32_t>`: 0 for anything but digits, the largest value for
/// digits that do not fit.
fn port(s: &str) -> u32 {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse().unwrap_or(u32::MAX)
}

/// RANGE: `port` or `from:to` items separated by commas, at most 15 ports.
fn range(value: &str) -> Result<(), String> {
    let item = |s: &str| {
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match s.split_once(':') {
            Some((a, b)) => all_digits(a) && all_digits(b),
            None => all_digits(s),
        }
    };
    if !value.split(',').all(item) {
        return Err("Invalid RANGE specification.".into());
    }
    let mut ports = 0;
    for part in value.split(',') {
        match part.split_once(':') {
            Some((from, to)) => {
                let to = port(to);
                if to > 65535 {
                    return Err("RANGE out of bounds 0-65536.".into());
                }
                if to < port(from) {
                    return Err("RANGE BEGIN value is greater than RANGE END value".into());
                }
                ports += 2;
            }
            None => {
                if port(part) > 65535 {
                    return Err("RANGE out of bounds 0-65536.".into());
                }
                ports += 1;
            }
        }
        if ports > MAX_PORTS {
            return Err("Not more than 15 ports can be specified in a RULE".into());
        }
    }
    Ok(())
}

/// `SecurityGroup::is_valid`.
fn is_valid(rule: &[(String, String)]) -> Result<(), String> {
    let get = |k: &str| vector_get(rule, k);
    let proto = get("PROTOCOL").unwrap_or("").to_ascii_uppercase();
    if !matches!(
        proto.as_str(),
        "TCP" | "UDP" | "ICMP" | "ICMPV6" | "IPSEC" | "ALL"
    ) {
        return Err(
            "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL.".into(),
        );
    }
    let range_value = get("RANGE").unwrap_or("");
    if !range_value.is_empty() {
        if proto != "TCP" && proto != "UDP" {
            return Err("RANGE is supported only for TCP and UDP protocols.".into());
        }
        range(range_value)?;
    }
    for (attr, only) in [("ICMP_TYPE", "ICMP"), ("ICMPV6_TYPE", "ICMPV6")] {
        if get(attr).is_some_and(|v| !v.is_empty()) {
            if proto != only {
                return Err(format!("{attr} is supported only for {only} protocol."));
            }
            if unsigned(get(attr)).is_none() {
                return Err(format!("Wrong {attr}, it must be integer"));
            }
        }
    }
    let kind = get("RULE_TYPE").unwrap_or("").to_ascii_uppercase();
    if kind != "INBOUND" && kind != "OUTBOUND" {
        return Err("Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND.".into());
    }
    let ip = get("IP").unwrap_or("");
    if !ip.is_empty() {
        if unsigned(get("SIZE")).is_none() {
            return Err("Wrong or empty SIZE.".into());
        }
        if ip.parse::<Ipv6Addr>().is_err() && ip.parse::<Ipv4Addr>().is_err() {
            return Err("Wrong format for IP value.".into());
        }
    } else if get("NETWORK_ID").is_some_and(|n| int(n).is_none()) {
        return Err("Wrong NETWORK_ID.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn checked(text: &str) -> Result<String, String> {
        let mut t = Template::parse(text).unwrap();
        check(&mut t).map(|()| t.to_text())
    }

    fn rule(body: &str) -> Result<String, String> {
        checked(&format!("RULE = [ {body} ]"))
    }

    #[test]
    fn a_clients_hash_is_compared_then_dropped() {
        let t = checked(
            "RULE = [ PROTOCOL = ALL, RULE_TYPE = inbound, HASH = x ]\n\
             RULE = [ PROTOCOL = ALL, RULE_TYPE = inbound, HASH = x ]\n\
             RULE = [ PROTOCOL = ALL, RULE_TYPE = inbound ]",
        )
        .unwrap();
        assert!(!t.contains("HASH"), "{t}");
        assert_eq!(t.matches("RULE=").count(), 2, "{t}");
    }

    #[test]
    fn rules_are_refused_with_opennebulas_messages() {
        let cases = [
            (
                "RULE_TYPE=inbound",
                "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL.",
            ),
            ("PROTOCOL=GRE, RULE_TYPE=inbound", "Wrong PROTOCOL"),
            (
                "PROTOCOL=ICMP, RANGE=22, RULE_TYPE=inbound",
                "RANGE is supported only for TCP and UDP protocols.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"22,\", RULE_TYPE=inbound",
                "Invalid RANGE specification.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"a\", RULE_TYPE=inbound",
                "Invalid RANGE specification.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"1:2:3\", RULE_TYPE=inbound",
                "Invalid RANGE specification.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"70000\", RULE_TYPE=inbound",
                "RANGE out of bounds 0-65536.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"1:99999999999\", RULE_TYPE=inbound",
                "RANGE out of bounds 0-65536.",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"100:20\", RULE_TYPE=inbound",
                "RANGE BEGIN value is greater than RANGE END value",
            ),
            (
                "PROTOCOL=TCP, RANGE=\"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16\", RULE_TYPE=inbound",
                "Not more than 15 ports can be specified in a RULE",
            ),
            (
                "PROTOCOL=TCP, ICMP_TYPE=8, RULE_TYPE=inbound",
                "ICMP_TYPE is supported only for ICMP protocol.",
            ),
            (
                "PROTOCOL=ICMP, ICMP_TYPE=x, RULE_TYPE=inbound",
                "Wrong ICMP_TYPE, it must be integer",
            ),
            (
                "PROTOCOL=ICMP, ICMP_TYPE=-1, RULE_TYPE=inbound",
                "Wrong ICMP_TYPE, it must be integer",
            ),
            (
                "PROTOCOL=ICMP, ICMPV6_TYPE=1, RULE_TYPE=inbound",
                "ICMPV6_TYPE is supported only for ICMPV6 protocol.",
            ),
            (
                "PROTOCOL=ICMPV6, ICMPV6_TYPE=\"1 \", RULE_TYPE=inbound",
                "Wrong ICMPV6_TYPE, it must be integer",
            ),
            (
                "PROTOCOL=TCP",
                "Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND.",
            ),
            ("PROTOCOL=TCP, RULE_TYPE=both", "Wrong RULE_TYPE"),
            (
                "PROTOCOL=TCP, RULE_TYPE=inbound, IP=10.0.0.1",
                "Wrong or empty SIZE.",
            ),
            (
                "PROTOCOL=TCP, RULE_TYPE=inbound, IP=10.0.0.1, SIZE=-4",
                "Wrong or empty SIZE.",
            ),
            (
                "PROTOCOL=TCP, RULE_TYPE=inbound, IP=10.0.0.300, SIZE=4",
                "Wrong format for IP value.",
            ),
            (
                "PROTOCOL=TCP, RULE_TYPE=inbound, NETWORK_ID=net",
                "Wrong NETWORK_ID.",
            ),
            (
                "PROTOCOL=TCP, RULE_TYPE=inbound, NETWORK_ID=\"\"",
                "Wrong NETWORK_ID.",
            ),
        ];
        for (body, want) in cases {
            let got = rule(body).unwrap_err();
            assert!(got.starts_with(want), "{body}: {got}");
        }
    }

    #[test]
    fn good_rules_pass_and_keep_their_case() {
        for body in [
            "PROTOCOL=all, RULE_TYPE=outbound",
            "PROTOCOL=tcp, RULE_TYPE=inbound, RANGE=\"22,80:90,443\"",
            "PROTOCOL=UDP, RULE_TYPE=INBOUND, RANGE=\"0:65535\"",
            "PROTOCOL=ICMP, RULE_TYPE=INBOUND, ICMP_TYPE=8",
            "PROTOCOL=ICMPV6, RULE_TYPE=INBOUND, ICMPV6_TYPE=\"+128\"",
            "PROTOCOL=IPSEC, RULE_TYPE=INBOUND, IP=\"2001:db8::1\", SIZE=16",
            "PROTOCOL=TCP, RULE_TYPE=OUTBOUND, IP=10.0.0.1, SIZE=255",
            "PROTOCOL=TCP, RULE_TYPE=OUTBOUND, NETWORK_ID=\"-3\"",
            // With an IP, NETWORK_ID is not read.
            "PROTOCOL=TCP, RULE_TYPE=OUTBOUND, IP=10.0.0.1, SIZE=1, NETWORK_ID=x",
        ] {
            let text = rule(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(text.contains("RULE=["), "{text}");
        }
        assert!(rule("PROTOCOL=tcp, RULE_TYPE=inbound")
            .unwrap()
            .contains("PROTOCOL=\"tcp\""));
        // A RULE that is not a vector is not a rule.
        assert!(checked("RULE = \"anything\"").is_ok());
    }

    #[test]
    fn equal_rules_are_kept_once_in_their_first_place() {
        let text = checked(
            "RULE = [ PROTOCOL=TCP, RULE_TYPE=inbound ]\n\
             DESCRIPTION = d\n\
             RULE = [ PROTOCOL=UDP, RULE_TYPE=inbound ]\n\
             RULE = [ RULE_TYPE=inbound, PROTOCOL=TCP ]\n\
             RULE = [ PROTOCOL=tcp, RULE_TYPE=inbound ]",
        )
        .unwrap();
        assert_eq!(text.matches("RULE=[").count(), 3, "{text}");
        let tcp = text.find("\"TCP\"").unwrap();
        assert!(tcp < text.find("DESCRIPTION").unwrap(), "{text}");
    }
}
