//! The roles of a VM group and the placement rules between them (`VMGroupRoles`,
//! `VMGroupRole`, `VMGroupRule` and the checks of `VMGroup`): pure code over the stored
//! `ROLE` vectors and the group's template, with OpenNebula's messages.
//!
//! A rule is a template attribute `AFFINED = "a, b"` or `ANTI_AFFINED = "c, d"` naming roles;
//! as OpenNebula's bitsets, a rule only sees roles with an id below [`MAX_ROLES`].

use std::collections::BTreeSet;

use template::{Template, Value};

/// `VMGroupRoles::MAX_ROLES`: the most roles a new group may have, and the ids rules see.
pub const MAX_ROLES: usize = 32;

/// The most roles `roleadd` lets a group reach. OpenNebula sets none; ids past
/// [`MAX_ROLES`] are outside every rule anyway, so this only bounds the row.
pub const MAX_ADDED_ROLES: usize = 512;

type Pairs = Vec<(String, String)>;

/// `VMGroupPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    Affined,
    AntiAffined,
}

impl Policy {
    fn attribute(self) -> &'static str {
        match self {
            Policy::None => "NONE",
            Policy::Affined => "AFFINED",
            Policy::AntiAffined => "ANTI_AFFINED",
        }
    }
}

/// One role: its vector, `ID` and `NAME` included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Role {
    id: i64,
    pairs: Pairs,
}

impl Role {
    fn get(&self, key: &str) -> &str {
        template::vector_get(&self.pairs, key).unwrap_or("")
    }

    fn name(&self) -> &str {
        self.get("NAME")
    }

    /// `VMGroupRole::policy`: AFFINED or ANTI_AFFINED in any case, else NONE.
    fn policy(&self) -> Policy {
        match self.get("POLICY").to_ascii_uppercase().as_str() {
            "AFFINED" => Policy::Affined,
            "ANTI_AFFINED" => Policy::AntiAffined,
            _ => Policy::None,
        }
    }

    fn vms(&self) -> BTreeSet<i64> {
        numbers(self.get("VMS"))
    }

    fn set(&mut self, key: &str, value: String) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(p) => p.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
    }

    fn remove(&mut self, key: &str) {
        self.pairs.retain(|(k, _)| k != key);
    }

    fn set_vms(&mut self, vms: &BTreeSet<i64>) {
        if vms.is_empty() {
            self.remove("VMS");
        } else {
            let list: Vec<String> = vms.iter().map(i64::to_string).collect();
            self.set("VMS", list.join(","));
        }
    }
}

/// `one_util::split_unique<int>`: the numbers of a comma-separated list, skipping the rest.
fn numbers(list: &str) -> BTreeSet<i64> {
    list.split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The roles of one group, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    roles: Vec<Role>,
}

impl Roles {
    /// The stored `ROLE` vectors (`VMGroupRoles::from_xml_node`): each needs a NAME and an ID.
    pub fn parse(text: &str) -> Result<Roles, String> {
        let t = Template::parse(text).map_err(|e| format!("The stored roles do not parse: {e}"))?;
        let mut roles = Roles::default();
        for a in t.get_all("ROLE") {
            let Some(pairs) = a.value.as_vector() else {
                continue;
            };
            let id = template::vector_get(pairs, "ID")
                .and_then(|i| i.trim().parse().ok())
                .ok_or("A stored role has no ID")?;
            roles.roles.push(Role {
                id,
                pairs: pairs.to_vec(),
            });
        }
        roles.roles.sort_by_key(|r| r.id);
        Ok(roles)
    }

    /// The roles as stored: one `ROLE` vector each, in id order.
    pub fn to_text(&self) -> String {
        let mut t = Template::default();
        for r in &self.roles {
            t.push("ROLE", Value::Vector(r.pairs.clone()));
        }
        t.to_text()
    }

    pub fn len(&self) -> usize {
        self.roles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    fn by_id(&self, id: i64) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    fn by_name(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name() == name)
    }

    /// `VMGroupRoles::vm_size`: the VMs in all roles.
    pub fn vm_count(&self) -> usize {
        self.roles.iter().map(|r| r.vms().len()).sum()
    }

    /// `VMGroupRoles::add_role`: the next id (one past the highest, as OpenNebula counts after
    /// reading a group), no VMS, a name no other role has.
    pub fn add(&mut self, mut pairs: Pairs) -> Result<(), String> {
        let name = template::vector_get(&pairs, "NAME")
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            return Err("Missing NAME in VM group role".into());
        }
        let id = self.roles.iter().map(|r| r.id + 1).max().unwrap_or(0);
        pairs.retain(|(k, _)| k != "ID" && k != "VMS");
        pairs.insert(0, ("ID".to_string(), id.to_string()));
        if self.by_name(&name).is_some() {
            return Err("Role already exists".into());
        }
        self.roles.push(Role { id, pairs });
        Ok(())
    }

    /// `VMGroup::del_role`'s checks, then the removal (rules are checked by the caller).
    pub fn delete(&mut self, id: i64) -> Result<(), String> {
        let Some(role) = self.by_id(id) else {
            return Err(format!(
                "Unable to delete role {id}, the role doesn't exists"
            ));
        };
        if !role.vms().is_empty() {
            return Err(format!(
                "Unable to delete role {id}, the role has assigned VMs "
            ));
        }
        self.roles.retain(|r| r.id != id);
        Ok(())
    }

    /// `VMGroup::update_role`'s checks, then `VMGroupRole::update`: the given keys replace the
    /// role's, except VMS (the system's) and ID (the role's identity, which OpenNebula would
    /// let an update corrupt); an empty NAME keeps the name.
    pub fn update(&mut self, group: i64, id: i64, pairs: Pairs) -> Result<(), String> {
        let Some(role) = self.by_id(id) else {
            return Err(format!("VMGroup {group} doesn't have role {id}"));
        };
        if !role.vms().is_empty() {
            return Err(format!(
                "VMGroup {group} Role {id} has VMs, unable to update"
            ));
        }
        let new_name = template::vector_get(&pairs, "NAME").unwrap_or("");
        if !new_name.is_empty() && new_name != role.name() && self.by_name(new_name).is_some() {
            return Err(format!(
                "VMGroup {group} Role {id} can not update name, role with name {new_name} already exists"
            ));
        }
        let Some(role) = self.roles.iter_mut().find(|r| r.id == id) else {
            return Err(format!("VMGroup {group} doesn't have role {id}"));
        };
        for (k, v) in pairs {
            if k == "VMS" || k == "ID" || (k == "NAME" && v.is_empty()) {
                continue;
            }
            role.set(&k, v);
        }
        Ok(())
    }

    /// `VMGroupRoles::add_vm` (`add` true) or `del_vm` by role name: false if there is no
    /// such role.
    pub fn set_vm(&mut self, role: &str, vm: i64, add: bool) -> bool {
        let Some(r) = self.roles.iter_mut().find(|r| r.name() == role) else {
            return false;
        };
        let mut vms = r.vms();
        let changed = if add { vms.insert(vm) } else { vms.remove(&vm) };
        if changed {
            r.set_vms(&vms);
        }
        true
    }

    /// `VMGroupRoles::names_to_ids`: the ids of the roles a rule names (comma-separated,
    /// trimmed), or `None` if one is not a role.
    fn names_to_ids(&self, names: &str) -> Option<BTreeSet<i64>> {
        let raw: BTreeSet<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
        let trimmed: BTreeSet<&str> = raw.into_iter().map(str::trim).collect();
        trimmed
            .into_iter()
            .map(|n| self.by_name(n).map(|r| r.id))
            .collect()
    }

    /// The rule attributes of `policy` in the template, in their order.
    fn rule_values(t: &Template, policy: Policy) -> impl Iterator<Item = &str> {
        t.get_all(policy.attribute())
            .filter_map(|a| a.value.as_single())
    }

    /// `VMGroup::check_rule_names`.
    fn check_rule_names(&self, t: &Template, policy: Policy) -> Result<(), String> {
        for value in Self::rule_values(t, policy) {
            if self.names_to_ids(value).is_none() {
                return Err(format!(
                    "Some roles used in {} attribute ({value}) are not defined",
                    policy.attribute()
                ));
            }
        }
        Ok(())
    }

    /// `VMGroup::get_rules`: the rules of `policy` as role bitsets, in OpenNebula's set order
    /// (by bitset value); two rules over the same roles are an error.
    fn rules(&self, t: &Template, policy: Policy) -> Result<BTreeSet<u32>, String> {
        let mut rules = BTreeSet::new();
        for value in Self::rule_values(t, policy) {
            let bits = self
                .names_to_ids(value)
                .unwrap_or_default()
                .into_iter()
                .filter(|&id| (0..MAX_ROLES as i64).contains(&id))
                .fold(0u32, |b, id| b | (1 << id));
            if !rules.insert(bits) {
                return Err(format!(
                    "Duplicated {} rule ({value}) detected.",
                    policy.attribute()
                ));
            }
        }
        Ok(rules)
    }

    /// The names of the roles in `bits`, in id order.
    fn names_in(&self, bits: u32) -> impl Iterator<Item = &str> {
        (0..MAX_ROLES as i64)
            .filter(move |i| bits & (1 << i) != 0)
            .filter_map(|i| self.by_id(i).map(Role::name))
    }

    /// `VMGroup::check_consistency`: every role a rule names exists, no role in an AFFINED
    /// rule is itself ANTI_AFFINED, no role is in both an AFFINED and an ANTI_AFFINED rule.
    pub fn check(&self, t: &Template) -> Result<(), String> {
        self.check_rule_names(t, Policy::Affined)?;
        self.check_rule_names(t, Policy::AntiAffined)?;
        let affined = self.rules(t, Policy::Affined)?;
        for &rule in &affined {
            for i in (0..MAX_ROLES as i64).filter(|i| rule & (1 << i) != 0) {
                if let Some(r) = self.by_id(i).filter(|r| r.policy() == Policy::AntiAffined) {
                    return Err(format!(
                        "Role {} is in an AFFINED rule but the role policy is ANTI_AFFINED",
                        r.name()
                    ));
                }
            }
        }
        let anti = self.rules(t, Policy::AntiAffined)?;
        let both = affined.iter().fold(0, |b, r| b | r) & anti.iter().fold(0, |b, r| b | r);
        if both != 0 {
            let mut m = String::from("Roles defined in AFFINED and ANTI_AFFINED rules:");
            for name in self.names_in(both) {
                m.push(' ');
                m.push_str(name);
            }
            return Err(m);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    fn role(text: &str) -> Pairs {
        t(&format!("ROLE = [ {text} ]"))
            .vector("ROLE")
            .unwrap()
            .to_vec()
    }

    fn roles(list: &[&str]) -> Roles {
        let mut r = Roles::default();
        for l in list {
            r.add(role(l)).unwrap();
        }
        r
    }

    #[test]
    fn roles_take_the_next_id_and_unique_names() {
        let mut r = roles(&["NAME = a", "NAME = b, VMS = \"1,2\", ID = 9"]);
        assert_eq!(r.by_id(1).unwrap().name(), "b");
        assert!(r.by_id(1).unwrap().vms().is_empty(), "VMS is the system's");
        assert_eq!(r.add(role("NAME = a")).unwrap_err(), "Role already exists");
        assert_eq!(
            r.add(role("POLICY = AFFINED")).unwrap_err(),
            "Missing NAME in VM group role"
        );
        r.delete(1).unwrap();
        r.add(role("NAME = c")).unwrap();
        assert_eq!(
            r.by_id(1).unwrap().name(),
            "c",
            "ids restart past the highest"
        );
        let back = Roles::parse(&r.to_text()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rules_name_existing_roles_once() {
        let r = roles(&["NAME = a", "NAME = b"]);
        assert_eq!(
            r.check(&t("AFFINED = \"a, c\"")).unwrap_err(),
            "Some roles used in AFFINED attribute (a, c) are not defined"
        );
        assert_eq!(
            r.check(&t("ANTI_AFFINED = \"a,,b\"\nANTI_AFFINED = \"b, a\""))
                .unwrap_err(),
            "Duplicated ANTI_AFFINED rule (b, a) detected."
        );
        assert!(r.check(&t("AFFINED = \" a , b \"")).is_ok());
    }

    #[test]
    fn affined_and_anti_affined_rules_must_agree() {
        let r = roles(&["NAME = a", "NAME = b, POLICY = anti_affined", "NAME = c"]);
        assert_eq!(
            r.check(&t("AFFINED = \"a, b\"")).unwrap_err(),
            "Role b is in an AFFINED rule but the role policy is ANTI_AFFINED"
        );
        assert_eq!(
            r.check(&t(
                "AFFINED = \"a, c\"\nANTI_AFFINED = \"c, b\"\nANTI_AFFINED = a"
            ))
            .unwrap_err(),
            "Roles defined in AFFINED and ANTI_AFFINED rules: a c"
        );
        assert!(r.check(&t("AFFINED = \"a, c\"\nANTI_AFFINED = b")).is_ok());
    }

    #[test]
    fn roles_with_vms_are_neither_deleted_nor_updated() {
        let mut r = roles(&["NAME = a", "NAME = b"]);
        assert!(r.set_vm("a", 7, true));
        assert!(!r.set_vm("z", 7, true), "no such role");
        assert_eq!(r.vm_count(), 1);
        assert_eq!(
            r.delete(0).unwrap_err(),
            "Unable to delete role 0, the role has assigned VMs "
        );
        assert_eq!(
            r.update(4, 0, role("POLICY = AFFINED")).unwrap_err(),
            "VMGroup 4 Role 0 has VMs, unable to update"
        );
        assert_eq!(
            r.delete(5).unwrap_err(),
            "Unable to delete role 5, the role doesn't exists"
        );
        assert_eq!(
            r.update(4, 1, role("NAME = a")).unwrap_err(),
            "VMGroup 4 Role 1 can not update name, role with name a already exists"
        );
        r.update(4, 1, role("NAME = d, POLICY = AFFINED, VMS = 3, ID = 8"))
            .unwrap();
        let d = r.by_id(1).unwrap();
        assert_eq!((d.name(), d.policy()), ("d", Policy::Affined));
        assert!(d.vms().is_empty());
        assert!(r.set_vm("a", 7, false));
        r.delete(0).unwrap();
        assert_eq!(r.len(), 1);
    }
}
