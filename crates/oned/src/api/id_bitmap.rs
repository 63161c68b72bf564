//! OpenNebula's `BitMap<N>` as its pools use it to hand out numbers (VNC ports, VLAN ids): a
//! START from oned.conf, a RESERVED list (`"a:b, c"`), and `get(hint)`: the hint if free and not
//! reserved, else the first free number from START. What is taken is read from the rows that
//! hold the numbers, not kept in a bitmap row of its own.

use std::collections::BTreeSet;

use template::Template;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBitmap {
    start: i64,
    /// Inclusive ranges never chosen (a number asked for by name may be one).
    reserved: Vec<(i64, i64)>,
    /// The highest number: `N - 1`.
    last: i64,
}

impl IdBitmap {
    /// `start` and `reserved` as OpenNebula's defaults for a bitmap of `last + 1` numbers.
    pub const fn new(start: i64, reserved: Vec<(i64, i64)>, last: i64) -> IdBitmap {
        IdBitmap {
            start,
            reserved,
            last,
        }
    }

    /// oned.conf's vector `name` (`[ START = n, RESERVED = "a:b, c" ]`), else `defaults`
    /// (`OpenNebulaTemplate` sets the whole vector only when oned.conf has none; a vector
    /// without START starts at 0 as `BitMap`'s constructor does). A RESERVED entry that does not
    /// parse is left out, as `BitMap::set_reserved_bit` leaves it.
    pub fn of(conf: &Template, name: &str, defaults: IdBitmap) -> IdBitmap {
        let Some(v) = conf.vector(name) else {
            return defaults;
        };
        let mut out = IdBitmap::new(0, Vec::new(), defaults.last);
        if let Some(start) = template::vector_get(v, "START")
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|s| (0..out.last).contains(s))
        {
            out.start = start;
        }
        for part in template::vector_get(v, "RESERVED").unwrap_or("").split(',') {
            let bound = |s: &str| s.trim().parse::<i64>().ok();
            let range = match part.split_once(':') {
                Some((a, b)) => bound(a).zip(bound(b)),
                None => bound(part).map(|p| (p, p)),
            };
            if let Some((a, b)) = range.filter(|(a, b)| a <= b && *a >= 0) {
                out.reserved.push((a, b.min(out.last)));
            }
        }
        out
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    fn reserved(&self, n: i64) -> bool {
        self.reserved.iter().any(|(a, b)| (*a..=*b).contains(&n))
    }

    /// The number for object `oid`: `START + oid % (last - START)` if free, else the first
    /// free and not reserved from START (`BitMap::get` with the pools' hint); `None` when full.
    pub fn choose(&self, oid: i64, taken: &BTreeSet<i64>) -> Option<i64> {
        let free = |n: i64| !taken.contains(&n) && !self.reserved(n);
        let hint = self.start + oid.rem_euclid((self.last - self.start).max(1));
        if hint != 0 && free(hint) {
            return Some(hint);
        }
        (self.start..=self.last).find(|n| free(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_lists_replace_the_defaults_and_skip_what_does_not_parse() {
        let d = IdBitmap::new(2, vec![(0, 1), (4095, 4095)], 4095);
        let t = Template::parse("VLAN_IDS = [ START = 10, RESERVED = \"20:22, x, 30\" ]").unwrap();
        let b = IdBitmap::of(&t, "VLAN_IDS", d.clone());
        assert_eq!(b, IdBitmap::new(10, vec![(20, 22), (30, 30)], 4095));
        assert_eq!(IdBitmap::of(&Template::default(), "VLAN_IDS", d.clone()), d);
        let bare = Template::parse("VLAN_IDS = [ RESERVED = 5 ]").unwrap();
        assert_eq!(
            IdBitmap::of(&bare, "VLAN_IDS", d.clone()),
            IdBitmap::new(0, vec![(5, 5)], 4095)
        );
        // The hint wraps below the last number; 4095 stays reserved.
        assert_eq!(d.choose(4093, &BTreeSet::new()), Some(2));
        let full: BTreeSet<i64> = (2..4095).collect();
        assert_eq!(d.choose(7, &full), None);
    }
}
