//! Address ranges (`AR`) of virtual networks, as OpenNebula's `AddressRange`: each is a vector
//! in the network's template (where OpenNebula keeps its `AR_POOL`), with its first MAC, IPv4
//! address, IPv6 prefixes or first static IPv6 address, and SIZE; the address at index `i` is
//! the first plus `i`. Which addresses are taken lives in `vnet_lease`
//! (`sqlstore::objects::lease`).

use std::net::Ipv6Addr;

use sqlstore::objects::lease::Lease;
use template::{Template, Value};

use super::xml::Xml;

/// OpenNebula's default `MAC_PREFIX` (oned.conf), the two high bytes of generated MACs.
const MAC_PREFIX: u32 = 0x0200;

/// The largest range accepted: OpenNebula's indexes are 32-bit, and a range is listed address
/// by address in its leases.
const MAX_SIZE: u64 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ether,
    Ip4,
    Ip6,
    Ip6Static,
    Ip4_6,
    Ip4_6Static,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_uppercase().as_str() {
            "ETHER" => Kind::Ether,
            "IP4" => Kind::Ip4,
            "IP6" => Kind::Ip6,
            "IP6_STATIC" => Kind::Ip6Static,
            "IP4_6" => Kind::Ip4_6,
            "IP4_6_STATIC" => Kind::Ip4_6Static,
            _ => return None,
        })
    }

    fn ipv4(self) -> bool {
        matches!(self, Kind::Ip4 | Kind::Ip4_6 | Kind::Ip4_6Static)
    }

    /// IPv6 from prefixes and the MAC (SLAAC).
    fn ipv6(self) -> bool {
        matches!(self, Kind::Ip6 | Kind::Ip4_6)
    }

    fn ipv6_static(self) -> bool {
        matches!(self, Kind::Ip6Static | Kind::Ip4_6Static)
    }
}

/// One address range of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub id: i64,
    pub kind: Kind,
    pub size: u64,
    /// The first MAC: its two high bytes, and its four low ones (OpenNebula adds the index to
    /// the low word only).
    mac: (u32, u32),
    ip: Option<u32>,
    ula6: Option<u64>,
    global6: Option<u64>,
    ip6: Option<u128>,
    /// The vector as stored, without the figures computed when shown.
    pub attrs: Vec<(String, String)>,
}

/// The addresses of one index of a range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Address {
    pub mac: String,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub ip6_ula: Option<String>,
    pub ip6_global: Option<String>,
    pub ip6_link: Option<String>,
    /// EXTERNAL_PORT_RANGE and INTERNAL_PORT_RANGE, for a range with PORT_START and PORT_SIZE.
    pub ports: Option<(String, String)>,
}

impl Address {
    /// The attributes a NIC or a lease shows, by name.
    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("MAC", self.mac.clone())];
        for (k, v) in [
            ("IP", &self.ip),
            ("IP6", &self.ip6),
            ("IP6_GLOBAL", &self.ip6_global),
            ("IP6_LINK", &self.ip6_link),
            ("IP6_ULA", &self.ip6_ula),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if let Some((external, internal)) = &self.ports {
            out.push(("EXTERNAL_PORT_RANGE", external.clone()));
            out.push(("INTERNAL_PORT_RANGE", internal.clone()));
        }
        out.sort();
        out
    }
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(k))
        .map_or("", |(_, v)| v.as_str())
}

fn remove(pairs: &mut Vec<(String, String)>, k: &str) {
    pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
}

/// `AddressRange::mac_to_i`: six hex bytes separated by colons.
pub fn parse_mac(s: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut bytes = [0u32; 6];
    for (b, p) in bytes.iter_mut().zip(&parts) {
        *b = u32::from_str_radix(p.trim(), 16)
            .ok()
            .filter(|v| *v <= 0xff)?;
    }
    Some((
        (bytes[0] << 8) | bytes[1],
        (bytes[2] << 24) | (bytes[3] << 16) | (bytes[4] << 8) | bytes[5],
    ))
}

fn mac_to_s((hi, lo): (u32, u32)) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (hi >> 8) & 0xff,
        hi & 0xff,
        lo >> 24,
        (lo >> 16) & 0xff,
        (lo >> 8) & 0xff,
        lo & 0xff
    )
}

/// `AddressRange::ip_to_i`: four decimal octets, nothing else.
pub fn parse_ip(s: &str) -> Option<u32> {
    if s.is_empty() || s.chars().any(|c| !c.is_ascii_digit() && c != '.') {
        return None;
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut ip = 0u32;
    for p in parts {
        let v: u32 = p.parse().ok().filter(|v| *v <= 255)?;
        ip = (ip << 8) | v;
    }
    Some(ip)
}

fn ip_to_s(ip: u32) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

/// `prefix6_to_i` of a SLAAC range's GLOBAL_PREFIX then ULA_PREFIX (empty is none).
pub(super) fn check_prefixes(pairs: &[(String, String)]) -> Result<(), String> {
    if parse_prefix(get(pairs, "GLOBAL_PREFIX")).is_err() {
        return Err("Wrong format for IP6 global address prefix".into());
    }
    if parse_prefix(get(pairs, "ULA_PREFIX")).is_err() {
        return Err("Wrong format for IP6 unique local address prefix".into());
    }
    Ok(())
}

/// The upper 64 bits of an IPv6 prefix; empty is none.
fn parse_prefix(s: &str) -> Result<Option<u64>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    let a: Ipv6Addr = s.parse().map_err(|_| ())?;
    Ok(Some((u128::from(a) >> 64) as u64).filter(|p| *p != 0))
}

/// `AddressRange::ip6_to_s(prefix, mac)`: the prefix and the EUI-64 of the MAC.
fn slaac(prefix: u64, (hi, lo): (u32, u32)) -> String {
    let upper = (((hi ^ 0x0200) as u64) << 16) + (((lo & 0xFF00_0000) >> 16) as u64) + 0xFF;
    let lower = 0xFE00_0000u64 + (lo & 0x00FF_FFFF) as u64;
    let iid = ((upper & 0xFFFF_FFFF) << 32) | lower;
    Ipv6Addr::from(((prefix as u128) << 64) | iid as u128).to_string()
}

impl Range {
    /// A new range from `pairs` (`AddressRange::from_attr`), numbered `id`: its stored vector,
    /// or OpenNebula's refusal. `random` gives the low word of a MAC for ranges without IPv4
    /// or a MAC of their own (OpenNebula's random choice, made once on the leader).
    pub fn create(mut pairs: Vec<(String, String)>, id: i64, random: u32) -> Result<Range, String> {
        let kind = Kind::parse(get(&pairs, "TYPE"))
            .ok_or_else(|| "Unknown or missing address range TYPE.".to_string())?;
        if !kind.ipv4() {
            remove(&mut pairs, "IP");
        } else if parse_ip(get(&pairs, "IP")).is_none() {
            return Err("Wrong or empty IP attribute".into());
        }
        if !kind.ipv6() {
            remove(&mut pairs, "GLOBAL_PREFIX");
            remove(&mut pairs, "ULA_PREFIX");
        } else {
            check_prefixes(&pairs)?;
        }
        if !kind.ipv6_static() {
            remove(&mut pairs, "IP6");
        } else {
            if get(&pairs, "IP6").parse::<Ipv6Addr>().is_err() {
                return Err("Wrong or empty IP6 attribute".into());
            }
            let pl: Option<u32> = get(&pairs, "PREFIX_LENGTH").trim().parse().ok();
            let Some(pl) = pl.filter(|p| *p <= 128) else {
                return Err("Wrong or empty PREFIX_LENGTH".into());
            };
            // `init_ipv6_static`: without a SIZE, the range runs from IP6 to the end of its
            // prefix (a /64 or wider: to the end of the 64-bit host part).
            if get(&pairs, "SIZE").trim().is_empty() {
                let all = if pl <= 64 {
                    u64::MAX
                } else {
                    1u64 << (128 - pl)
                };
                let mask = if pl <= 64 { all } else { all - 1 };
                let first = get(&pairs, "IP6")
                    .parse::<Ipv6Addr>()
                    .map_or(0, |a| u128::from(a) as u64);
                template::vector_set(&mut pairs, "SIZE", (all - (first & mask)).to_string());
            }
        }
        let mac = get(&pairs, "MAC");
        if mac.is_empty() {
            let low = match parse_ip(get(&pairs, "IP")) {
                Some(ip) if kind.ipv4() => ip,
                _ => random,
            };
            template::vector_set(&mut pairs, "MAC", mac_to_s((MAC_PREFIX, low)));
        } else if parse_mac(mac).is_none() {
            return Err("Wrong format for MAC attribute".into());
        }
        let size: Option<u64> = get(&pairs, "SIZE").trim().parse().ok();
        if size.is_none_or(|s| s == 0 || s > MAX_SIZE) {
            return Err("Wrong SIZE for address range".into());
        }
        template::vector_set(&mut pairs, "AR_ID", id.to_string());
        for k in [
            "ALLOCATED",
            "USED_LEASES",
            "LEASES",
            "PARENT_NETWORK_AR_ID",
            "PARENT_NETWORK",
        ] {
            remove(&mut pairs, k);
        }
        Range::stored(pairs, id).ok_or_else(|| "Wrong SIZE for address range".to_string())
    }

    /// A range as stored (`AddressRange::from_vattr_db`); `None` when it does not read back.
    /// Ranges stored before they carried an AR_ID are numbered by position (`fallback`).
    pub fn stored(pairs: Vec<(String, String)>, fallback: i64) -> Option<Range> {
        let id = get(&pairs, "AR_ID").trim().parse().unwrap_or(fallback);
        let kind = Kind::parse(get(&pairs, "TYPE"))?;
        let size: u64 = get(&pairs, "SIZE").trim().parse().ok()?;
        let ip = if kind.ipv4() {
            Some(parse_ip(get(&pairs, "IP"))?)
        } else {
            None
        };
        let mac = match parse_mac(get(&pairs, "MAC")) {
            Some(m) => m,
            None => (MAC_PREFIX, ip.unwrap_or(0)),
        };
        let ip6 = if kind.ipv6_static() {
            Some(u128::from(get(&pairs, "IP6").parse::<Ipv6Addr>().ok()?))
        } else {
            None
        };
        Some(Range {
            id,
            kind,
            size: size.min(MAX_SIZE),
            mac,
            ip,
            ula6: parse_prefix(get(&pairs, "ULA_PREFIX")).ok().flatten(),
            global6: parse_prefix(get(&pairs, "GLOBAL_PREFIX")).ok().flatten(),
            ip6,
            attrs: pairs,
        })
    }

    pub fn get(&self, k: &str) -> &str {
        get(&self.attrs, k)
    }

    fn mac_at(&self, idx: u64) -> (u32, u32) {
        (self.mac.0, self.mac.1.wrapping_add(idx as u32))
    }

    /// The addresses at index `idx`.
    pub fn address(&self, idx: u64) -> Address {
        let mac = self.mac_at(idx);
        let mut a = Address {
            mac: mac_to_s(mac),
            ip: self.ip.map(|ip| ip_to_s(ip.wrapping_add(idx as u32))),
            ..Address::default()
        };
        if self.kind.ipv6() {
            a.ip6_link = Some(slaac(0xfe80_0000_0000_0000, mac));
            a.ip6_ula = self.ula6.map(|p| slaac(p, mac));
            a.ip6_global = self.global6.map(|p| slaac(p, mac));
        }
        a.ip6 = self
            .ip6
            .map(|ip6| Ipv6Addr::from(ip6.wrapping_add(idx as u128)).to_string());
        a.ports = self.ports(idx);
        a
    }

    /// `set_port_ranges`: address `idx` forwards PORT_SIZE ports from PORT_START (both
    /// unsigned, 0 when unset or unreadable, as `vector_value` leaves them).
    fn ports(&self, idx: u64) -> Option<(String, String)> {
        let num = |k: &str| get(&self.attrs, k).trim().parse::<u32>().unwrap_or(0);
        let (start, size) = (num("PORT_START"), num("PORT_SIZE"));
        if start == 0 || size == 0 {
            return None;
        }
        let first = start
            .wrapping_add((idx as u32).wrapping_mul(size))
            .wrapping_add(1);
        let last = first.wrapping_add(size - 1);
        Some((format!("{first}:{last}"), format!("1-{size}/{first}")))
    }

    /// The index of `ip` in this range, if it is one of its IPv4 addresses.
    pub fn index_of_ip(&self, ip: &str) -> Option<u64> {
        let first = self.ip?;
        let ip = parse_ip(ip)?;
        let idx = ip.checked_sub(first)? as u64;
        (idx < self.size).then_some(idx)
    }

    pub fn index_of_mac(&self, mac: &str) -> Option<u64> {
        let (hi, lo) = parse_mac(mac)?;
        if hi != self.mac.0 {
            return None;
        }
        let idx = lo.checked_sub(self.mac.1)? as u64;
        (idx < self.size).then_some(idx)
    }

    pub fn index_of_ip6(&self, ip6: &str) -> Option<u64> {
        let first = self.ip6?;
        let ip = u128::from(ip6.parse::<Ipv6Addr>().ok()?);
        // The three high 32-bit words must be the range's, as OpenNebula compares them.
        if ip >> 32 != first >> 32 {
            return None;
        }
        let idx = (ip as u32).checked_sub(first as u32)? as u64;
        (idx < self.size).then_some(idx)
    }

    /// The first free index, lowest first (OpenNebula's cursor starts at 0 each time a
    /// network is loaded), given the taken ones of this range in ascending order.
    pub fn first_free(&self, taken: &[i64]) -> Option<u64> {
        let mut want = 0i64;
        for t in taken {
            if *t > want {
                break;
            }
            if *t == want {
                want += 1;
            }
        }
        ((want as u64) < self.size).then_some(want as u64)
    }

    /// The first run of `n` free indexes (`get_range_addr`).
    pub fn first_free_run(&self, taken: &[i64], n: u64) -> Option<u64> {
        let mut start = 0u64;
        for t in taken.iter().map(|t| *t as u64) {
            if t >= start + n {
                break;
            }
            if t >= start {
                start = t + 1;
            }
        }
        (start + n <= self.size).then_some(start)
    }

    /// `AddressRange::to_xml` with its leases (`one.vn.info`): the stored attributes but
    /// ALLOCATED in name order, the last addresses, USED_LEASES (`used`, every lease of the
    /// range) and LEASES (`leases`, which the caller may have cut).
    pub fn xml_extended(&self, x: &mut Xml<'_>, leases: &[&Lease], used: usize) {
        x.elem("AR", |x| {
            let mut attrs = self.attrs.clone();
            attrs.retain(|(k, _)| k != "ALLOCATED");
            attrs.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in &attrs {
                x.text(k, v);
            }
            let last = self.size.saturating_sub(1);
            let end = self.address(last);
            x.text("MAC_END", &end.mac);
            if let Some(ip) = &end.ip {
                x.text("IP_END", ip);
            }
            if self.kind.ipv6() {
                let first = self.address(0);
                if let (Some(a), Some(b)) = (&first.ip6_ula, &end.ip6_ula) {
                    x.text("IP6_ULA", a).text("IP6_ULA_END", b);
                }
                if let (Some(a), Some(b)) = (&first.ip6_global, &end.ip6_global) {
                    x.text("IP6_GLOBAL", a).text("IP6_GLOBAL_END", b);
                }
            }
            if let Some(ip6) = &end.ip6 {
                x.text("IP6_END", ip6);
            }
            x.num("USED_LEASES", used);
            if leases.is_empty() {
                x.empty("LEASES");
            } else {
                x.elem("LEASES", |x| {
                    for l in leases {
                        lease_xml(x, self, l);
                    }
                });
            }
        });
    }

    /// The range as the network's template holds it (`vnpool.info`, OpenNebula's
    /// `ar_template.to_xml`): every attribute in CDATA, ALLOCATED included.
    pub fn xml_stored(&self, x: &mut Xml<'_>, leases: &[&Lease]) {
        let mut attrs = self.attrs.clone();
        template::vector_set(&mut attrs, "ALLOCATED", allocated(leases));
        // Ranges stored before they were numbered show the id and MAC they are used with.
        template::vector_set(&mut attrs, "AR_ID", self.id.to_string());
        template::vector_set(&mut attrs, "MAC", mac_to_s(self.mac));
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        x.elem("AR", |x| {
            for (k, v) in &attrs {
                x.open(k).raw(&super::xml::cdata(v)).close(k);
            }
        });
    }
}

/// OpenNebula's `ALLOCATED` text: ` <index> <type bits | owner>` per lease.
fn allocated(leases: &[&Lease]) -> String {
    leases
        .iter()
        .map(|l| {
            let packed = l.holder.code() | (l.owner & 0xFFFF_FFFF);
            format!(" {} {packed}", l.idx)
        })
        .collect()
}

fn lease_xml(x: &mut Xml<'_>, r: &Range, l: &Lease) {
    let mut attrs: Vec<(&str, String)> = r.address(l.idx as u64).attrs();
    attrs.push((l.holder.element(), l.owner.to_string()));
    attrs.sort();
    x.elem("LEASE", |x| {
        for (k, v) in &attrs {
            x.text(k, v);
        }
    });
}

/// The ranges of a network template, in AR_ID order.
pub fn ranges(t: &Template) -> Vec<Range> {
    let mut out: Vec<Range> = t
        .get_all("AR")
        .enumerate()
        .filter_map(|(n, a)| {
            let pairs = a.value.as_vector()?.to_vec();
            Range::stored(pairs, n as i64)
        })
        .collect();
    out.sort_by_key(|r| r.id);
    out
}

/// The template with `ranges` as its AR vectors (in order), every other attribute kept.
pub fn with_ranges(t: &Template, ranges: &[Range]) -> Template {
    let mut out = t.clone();
    out.remove("AR");
    for r in ranges {
        out.push("AR", Value::Vector(r.attrs.clone()));
    }
    out
}

/// The id a new range gets: one past the highest (OpenNebula's `next_ar`).
pub fn next_id(ranges: &[Range]) -> i64 {
    ranges.iter().map(|r| r.id + 1).max().unwrap_or(0)
}

/// A random word for MACs of ranges without IPv4 (chosen on the leader, then stored).
pub fn random_word() -> u32 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_ipv4_range_derives_its_macs_and_last_addresses_as_opennebula() {
        let r = Range::create(
            pairs(&[("TYPE", "IP4"), ("IP", "10.0.0.250"), ("SIZE", "10")]),
            0,
            7,
        )
        .unwrap();
        assert_eq!(r.get("MAC"), "02:00:0a:00:00:fa");
        let a = r.address(9);
        assert_eq!(a.ip.as_deref(), Some("10.0.1.3"));
        assert_eq!(a.mac, "02:00:0a:00:01:03");
        assert_eq!(r.index_of_ip("10.0.1.3"), Some(9));
        assert_eq!(r.index_of_ip("10.0.1.4"), None);
        assert_eq!(r.index_of_mac("02:00:0a:00:00:fb"), Some(1));
    }

    #[test]
    fn ranges_are_refused_with_opennebula_messages() {
        let bad = |p: &[(&str, &str)]| Range::create(pairs(p), 0, 0).unwrap_err();
        assert_eq!(
            bad(&[("SIZE", "1")]),
            "Unknown or missing address range TYPE."
        );
        assert_eq!(
            bad(&[("TYPE", "IP4"), ("SIZE", "1")]),
            "Wrong or empty IP attribute"
        );
        assert_eq!(
            bad(&[("TYPE", "ETHER"), ("MAC", "zz"), ("SIZE", "1")]),
            "Wrong format for MAC attribute"
        );
        assert_eq!(
            bad(&[("TYPE", "ETHER"), ("SIZE", "x")]),
            "Wrong SIZE for address range"
        );
        assert_eq!(
            bad(&[("TYPE", "IP6"), ("ULA_PREFIX", "nope"), ("SIZE", "2")]),
            "Wrong format for IP6 unique local address prefix"
        );
    }

    #[test]
    fn ipv6_addresses_come_from_the_prefix_and_the_mac() {
        let r = Range::create(
            pairs(&[
                ("TYPE", "IP6"),
                ("MAC", "02:00:c0:a8:00:01"),
                ("GLOBAL_PREFIX", "2001:db8::"),
                ("SIZE", "4"),
            ]),
            1,
            0,
        )
        .unwrap();
        let a = r.address(0);
        assert_eq!(a.ip6_global.as_deref(), Some("2001:db8::c0ff:fea8:1"));
        assert_eq!(a.ip6_link.as_deref(), Some("fe80::c0ff:fea8:1"));
    }

    #[test]
    fn free_indexes_fill_the_lowest_holes_first() {
        let r = Range::create(
            pairs(&[
                ("TYPE", "ETHER"),
                ("MAC", "02:00:00:00:00:00"),
                ("SIZE", "5"),
            ]),
            0,
            0,
        )
        .unwrap();
        assert_eq!(r.first_free(&[]), Some(0));
        assert_eq!(r.first_free(&[0, 1, 3]), Some(2));
        assert_eq!(r.first_free(&[0, 1, 2, 3, 4]), None);
        assert_eq!(r.first_free_run(&[1, 3], 2), None);
        assert_eq!(r.first_free_run(&[1], 2), Some(2));
        assert_eq!(r.first_free_run(&[], 5), Some(0));
    }
}
