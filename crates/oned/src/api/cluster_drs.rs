//! A cluster template's ONE_DRS vector (the distributed resource scheduler's settings), checked
//! and normalized as 7.0.2's `Cluster::post_update_template` does on every `one.cluster.update`.

use template::{Template, Value};

/// Whether a field's value (trimmed, in lower case) is one it may take.
type Valid = fn(&str) -> bool;

/// The fields checked, in `post_update_template`'s order, each with what its value may be.
const FIELDS: &[(&str, Valid)] = &[
    ("POLICY", |v| matches!(v, "pack" | "balance")),
    ("AUTOMATION", |v| matches!(v, "manual" | "partial" | "full")),
    ("MIGRATION_THRESHOLD", |v| {
        v.is_empty() || v == "-1" || number(v)
    }),
    ("CPU_USAGE_WEIGHT", number_or_empty),
    ("CPU_WEIGHT", number_or_empty),
    ("MEMORY_WEIGHT", number_or_empty),
    ("NET_WEIGHT", number_or_empty),
    ("DISK_WEIGHT", number_or_empty),
    ("PREDICTIVE", number_or_empty),
];

/// `\d+(\.\d+)?`
fn number(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('.') {
        Some((whole, part)) => digits(whole) && digits(part),
        None => digits(v),
    }
}

fn number_or_empty(v: &str) -> bool {
    v.is_empty() || number(v)
}

/// Whether `t` has a ONE_DRS vector (only then are the cluster's hosts checked for pinning).
pub fn present(t: &Template) -> bool {
    t.vector("ONE_DRS").is_some()
}

/// Checks the first ONE_DRS vector of `t` and writes its values trimmed and in lower case;
/// a refusal in oned's words (`Error cluster template contains invalid POLICY`).
pub fn normalize(t: &mut Template) -> Result<(), String> {
    let Some(drs) = t.attrs.iter_mut().find_map(|a| match &mut a.value {
        Value::Vector(pairs) if a.name.eq_ignore_ascii_case("ONE_DRS") => Some(pairs),
        _ => None,
    }) else {
        return Ok(());
    };
    for (field, valid) in FIELDS {
        let at = drs.iter().position(|(k, _)| k.eq_ignore_ascii_case(field));
        let value = at.map_or(String::new(), |i| drs[i].1.trim().to_ascii_lowercase());
        if !valid(&value) {
            return Err(format!("Error cluster template contains invalid {field}"));
        }
        if let (Some(i), false) = (at, value.is_empty()) {
            drs[i].1 = value;
        }
    }
    Ok(())
}

/// `Host::is_pinned`: the host template's PIN_POLICY is PINNED, in any case.
pub fn pinned(host_template: &str) -> bool {
    Template::parse(host_template)
        .ok()
        .and_then(|t| t.single("PIN_POLICY").map(str::to_ascii_lowercase))
        .is_some_and(|p| p == "pinned")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Result<String, String> {
        let mut t = Template::parse(text).map_err(|e| e.to_string())?;
        normalize(&mut t)?;
        Ok(t.to_text())
    }

    #[test]
    fn fields_are_checked_in_order_and_stored_in_lower_case() {
        assert_eq!(
            checked("ONE_DRS = [ AUTOMATION = manual ]").unwrap_err(),
            "Error cluster template contains invalid POLICY"
        );
        assert_eq!(
            checked("ONE_DRS = [ POLICY = Pack, AUTOMATION = sometimes ]").unwrap_err(),
            "Error cluster template contains invalid AUTOMATION"
        );
        assert_eq!(
            checked("ONE_DRS = [ POLICY = pack, AUTOMATION = full, CPU_WEIGHT = 1. ]").unwrap_err(),
            "Error cluster template contains invalid CPU_WEIGHT"
        );
        assert_eq!(
            checked("ONE_DRS = [ POLICY = pack, AUTOMATION = full, MIGRATION_THRESHOLD = -2 ]")
                .unwrap_err(),
            "Error cluster template contains invalid MIGRATION_THRESHOLD"
        );
        let ok = checked(
            "ONE_DRS = [ POLICY = \" BALANCE \", AUTOMATION = Partial, MIGRATION_THRESHOLD = -1, \
             PREDICTIVE = 0.3 ]\nOTHER = x",
        )
        .unwrap();
        let t = Template::parse(&ok).unwrap();
        let drs = t.vector("ONE_DRS").unwrap();
        let get = |k: &str| drs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POLICY"), Some("balance"));
        assert_eq!(get("AUTOMATION"), Some("partial"));
        assert_eq!(get("MIGRATION_THRESHOLD"), Some("-1"));
        assert_eq!(get("PREDICTIVE"), Some("0.3"));
        assert_eq!(checked("OTHER = x").unwrap(), "OTHER=\"x\"\n");
    }

    #[test]
    fn pin_policy_is_read_in_any_case() {
        assert!(pinned("PIN_POLICY = Pinned"));
        assert!(!pinned("PIN_POLICY = NONE"));
        assert!(!pinned(""));
    }
}
