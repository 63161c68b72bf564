//! `AUTH_MAD_CONF`: how each authentication driver's users behave (`Nebula::get_auth_conf_attribute`).
//!
//! OpenNebula ships one `AUTH_MAD_CONF` per driver in its `oned.conf`; OneHA starts from those
//! shipped values, so a zone whose `oned.conf` says nothing of drivers behaves as a stock
//! OpenNebula front-end, and an `AUTH_MAD_CONF = [ NAME = "ldap", ... ]` in the file replaces
//! what it names of that driver. A driver no entry names gets OpenNebula's fallbacks for a
//! missing attribute.

use std::collections::BTreeMap;

use template::{Template, Value};

/// What `AUTH_MAD_CONF` says of one driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConf {
    /// `PASSWORD_CHANGE`: its users may change their own password (`one.user.passwd`).
    pub password_change: bool,
    /// `PASSWORD_REQUIRED`: a new user of the driver must be given a password.
    pub password_required: bool,
    /// `DRIVER_MANAGED_GROUPS`: the driver sets its users' groups; `chgrp`, `addgroup` and
    /// `delgroup` refuse them.
    pub driver_managed_groups: bool,
    /// `MAX_TOKEN_TIME`: the longest a login token of its users lives, in seconds; -1 no
    /// limit, 0 no login tokens at all.
    pub max_token_time: i64,
}

/// OpenNebula's answer for an attribute no entry gives (`get_auth_conf_attribute` fails):
/// no password change, a password required, groups managed by hand.
const FALLBACK: DriverConf = DriverConf {
    password_change: false,
    password_required: true,
    driver_managed_groups: false,
    max_token_time: -1,
};

/// The drivers of OpenNebula 7.0's shipped `oned.conf`, and saml's built-in entry: (name, PASSWORD_CHANGE,
/// PASSWORD_REQUIRED, DRIVER_MANAGED_GROUPS, MAX_TOKEN_TIME).
const SHIPPED: &[(&str, bool, bool, bool, i64)] = &[
    ("core", true, true, false, -1),
    ("public", false, true, false, -1),
    ("ssh", true, true, false, -1),
    ("x509", false, true, false, -1),
    ("ldap", true, false, true, 86400),
    // Not in the shipped file: `OpenNebulaTemplate`'s built-in entry.
    ("saml", true, true, true, 86400),
    ("server_cipher", false, true, false, -1),
    ("server_x509", false, true, false, -1),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthDrivers(BTreeMap<String, DriverConf>);

impl Default for AuthDrivers {
    fn default() -> Self {
        AuthDrivers(
            SHIPPED
                .iter()
                .map(|&(name, change, required, managed, max_token_time)| {
                    let conf = DriverConf {
                        password_change: change,
                        password_required: required,
                        driver_managed_groups: managed,
                        max_token_time,
                    };
                    (name.to_string(), conf)
                })
                .collect(),
        )
    }
}

impl AuthDrivers {
    /// The shipped drivers with every `AUTH_MAD_CONF` of `t` laid over them; an error names
    /// the attribute and line that is not understood.
    pub fn from_template(t: &Template) -> Result<AuthDrivers, (usize, String, String)> {
        let mut drivers = AuthDrivers::default();
        for a in t.get_all("AUTH_MAD_CONF") {
            let Value::Vector(pairs) = &a.value else {
                return Err((
                    a.line,
                    "AUTH_MAD_CONF".into(),
                    "expected a vector value [ ... ]".into(),
                ));
            };
            let name = template::vector_get(pairs, "NAME").unwrap_or("").trim();
            if name.is_empty() {
                return Err((a.line, "AUTH_MAD_CONF/NAME".into(), "must be given".into()));
            }
            let conf = drivers.0.entry(name.to_string()).or_insert(FALLBACK);
            let flag = |key: &str, into: &mut bool| -> Result<(), (usize, String, String)> {
                match template::vector_get(pairs, key).map(str::trim) {
                    None => Ok(()),
                    Some(v) if v.eq_ignore_ascii_case("yes") => {
                        *into = true;
                        Ok(())
                    }
                    Some(v) if v.eq_ignore_ascii_case("no") => {
                        *into = false;
                        Ok(())
                    }
                    Some(v) => Err((
                        a.line,
                        format!("AUTH_MAD_CONF/{key}"),
                        format!("expected YES or NO, got \"{v}\""),
                    )),
                }
            };
            flag("PASSWORD_CHANGE", &mut conf.password_change)?;
            flag("PASSWORD_REQUIRED", &mut conf.password_required)?;
            flag("DRIVER_MANAGED_GROUPS", &mut conf.driver_managed_groups)?;
            if let Some(v) = template::vector_get(pairs, "MAX_TOKEN_TIME").map(str::trim) {
                conf.max_token_time = match v.parse::<i64>() {
                    Ok(n) if n >= -1 => n,
                    _ => {
                        return Err((
                            a.line,
                            "AUTH_MAD_CONF/MAX_TOKEN_TIME".into(),
                            format!("expected -1, 0 or a number of seconds, got \"{v}\""),
                        ))
                    }
                };
            }
        }
        Ok(drivers)
    }

    pub fn get(&self, driver: &str) -> DriverConf {
        self.0.get(driver).copied().unwrap_or(FALLBACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthDrivers, (usize, String, String)> {
        AuthDrivers::from_template(&Template::parse_checked(text).expect("template"))
    }

    #[test]
    fn a_file_without_entries_behaves_as_stock_opennebula() {
        let d = parse("PORT = 2633").expect("parses");
        assert!(d.get("core").password_change && d.get("core").password_required);
        assert!(!d.get("public").password_change);
        assert!(!d.get("ldap").password_required && d.get("ldap").driver_managed_groups);
        assert_eq!(d.get("kerberos"), FALLBACK);
    }

    #[test]
    fn an_entry_replaces_only_what_it_names() {
        let d = parse("AUTH_MAD_CONF = [ NAME = \"ldap\", DRIVER_MANAGED_GROUPS = \"NO\" ]\n")
            .expect("parses");
        let ldap = d.get("ldap");
        assert!(!ldap.driver_managed_groups && ldap.password_change && !ldap.password_required);
        let custom = parse(
            "AUTH_MAD_CONF = [ NAME = \"mine\", PASSWORD_REQUIRED = \"no\", MAX_TOKEN_TIME = 0 ]",
        )
        .expect("parses")
        .get("mine");
        assert!(!custom.password_required && !custom.password_change);
        assert_eq!(custom.max_token_time, 0);
        assert_eq!(d.get("ldap").max_token_time, 86400);
    }

    #[test]
    fn the_shipped_oned_conf_keeps_the_stock_drivers() {
        let shipped = parse(include_str!("../../../share/etc/oned.conf")).expect("parses");
        assert_eq!(shipped, AuthDrivers::default());
    }

    #[test]
    fn a_bad_entry_is_named() {
        let (line, attr, _) =
            parse("\nAUTH_MAD_CONF = [ NAME = \"core\", PASSWORD_CHANGE = \"maybe\" ]")
                .expect_err("refused");
        assert_eq!((line, attr.as_str()), (2, "AUTH_MAD_CONF/PASSWORD_CHANGE"));
        let (_, attr, _) =
            parse("AUTH_MAD_CONF = [ PASSWORD_CHANGE = \"YES\" ]").expect_err("no name");
        assert_eq!(attr, "AUTH_MAD_CONF/NAME");
    }
}
