//! Object ids as OpenNebula's CLI reads them (`OpenNebulaHelper::OneHelper#to_id`,
//! `#list_to_id`, `OpenNebulaHelper.rname_to_id` and `CommandParser#format_range`): a number is
//! an id, anything else a NAME looked up in the family's pool; `1..5`, `1,3,7` and lists mixing
//! names and ranges (`web,3..4`) name several objects, acted on one after the other as
//! `OneHelper#perform_actions` does.

use xmlrpc::Value;

use crate::client::Client;
use crate::objects::{err_text, Kind};
use crate::xml::Element;

/// `OpenNebula::Pool::INFO_ALL`: every object the caller may see.
pub(crate) const INFO_ALL: i32 = -2;

/// An object family whose pool names can be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    User,
    Group,
    Acl,
    Host,
    Vm,
    Template,
    Cluster,
    Vdc,
    Hook,
    Market,
    MarketApp,
    SecGroup,
    Datastore,
    Vnet,
    Zone,
    Image,
    VnTemplate,
    VmGroup,
    Vrouter,
    BackupJob,
}

impl Family {
    pub(crate) fn of(kind: Kind) -> Family {
        match kind {
            Kind::User => Family::User,
            Kind::Group => Family::Group,
            Kind::Acl => Family::Acl,
            Kind::Host => Family::Host,
            Kind::Vm => Family::Vm,
            Kind::Template => Family::Template,
            Kind::Cluster => Family::Cluster,
            Kind::Vdc => Family::Vdc,
            Kind::Hook => Family::Hook,
            Kind::Market => Family::Market,
            Kind::MarketApp => Family::MarketApp,
            Kind::SecGroup => Family::SecGroup,
            Kind::VnTemplate => Family::VnTemplate,
            Kind::VmGroup => Family::VmGroup,
            Kind::Vrouter => Family::Vrouter,
            Kind::BackupJob => Family::BackupJob,
            Kind::Image => Family::Image,
            Kind::Datastore => Family::Datastore,
            Kind::Vnet => Family::Vnet,
        }
    }

    /// The helper's `rname`, which is also the element of each pool item.
    pub(crate) fn rname(self) -> &'static str {
        match self {
            Family::User => "USER",
            Family::Group => "GROUP",
            Family::Acl => "ACL",
            Family::Host => "HOST",
            Family::Vm => "VM",
            Family::Template => "VMTEMPLATE",
            Family::Cluster => "CLUSTER",
            Family::Vdc => "VDC",
            Family::Hook => "HOOK",
            Family::Market => "MARKETPLACE",
            Family::MarketApp => "MARKETPLACEAPP",
            Family::SecGroup => "SECURITY_GROUP",
            Family::Datastore => "DATASTORE",
            Family::Vnet => "VNET",
            Family::Zone => "ZONE",
            Family::Image => "IMAGE",
            Family::VnTemplate => "VNTEMPLATE",
            Family::VmGroup => "VM_GROUP",
            Family::Vrouter => "VROUTER",
            Family::BackupJob => "BACKUPJOB",
        }
    }

    /// The pool call and its arguments, with `filter` as the owner filter where the pool
    /// takes one (as each helper's `factory_pool`; the hook pool ignores it, as OpenNebula's).
    pub(crate) fn pool_call(self, filter: i32) -> (&'static str, Vec<Value>) {
        let filtered = |method| {
            (
                method,
                vec![Value::Int(filter), Value::Int(-1), Value::Int(-1)],
            )
        };
        match self {
            Family::User => (wire::method::USERPOOL_INFO, vec![]),
            Family::Group => (wire::method::GROUPPOOL_INFO, vec![]),
            Family::Acl => (wire::method::ACL_INFO, vec![]),
            Family::Host => (wire::method::HOSTPOOL_INFO, vec![]),
            Family::Vm => {
                let (method, mut params) = filtered(wire::method::VMPOOL_INFO);
                params.push(Value::Int(-1));
                (method, params)
            }
            Family::Template => filtered(wire::method::TEMPLATEPOOL_INFO),
            Family::Cluster => ("one.clusterpool.info", vec![]),
            Family::Vdc => ("one.vdcpool.info", vec![]),
            Family::Hook => (
                "one.hookpool.info",
                vec![Value::Int(-1), Value::Int(-1), Value::Int(-1)],
            ),
            Family::Market => ("one.marketpool.info", vec![]),
            Family::MarketApp => filtered("one.marketapppool.info"),
            Family::SecGroup => filtered("one.secgrouppool.info"),
            Family::Datastore => ("one.datastorepool.info", vec![]),
            Family::Vnet => filtered("one.vnpool.info"),
            Family::Zone => ("one.zonepool.info", vec![]),
            Family::Image => filtered("one.imagepool.info"),
            Family::VnTemplate => filtered("one.vntemplatepool.info"),
            Family::VmGroup => filtered("one.vmgrouppool.info"),
            Family::Vrouter => filtered("one.vrouterpool.info"),
            Family::BackupJob => filtered("one.backupjobpool.info"),
        }
    }
}

/// Ruby's `/^[0123456789]+$/`.
fn is_number(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

fn number(word: &str) -> Result<i32, String> {
    word.parse()
        .map_err(|_| format!("Argument '{word}' is not a valid ID"))
}

/// `OneHelper.name_to_id`: the id of the one item of `pool` called `name`.
pub(crate) fn name_to_id(pool: &Element, rname: &str, name: &str) -> Result<i32, String> {
    let found: Vec<&Element> = pool
        .children_named(rname)
        .filter(|o| o.text_of("NAME").is_ok_and(|n| n == name))
        .collect();
    match found[..] {
        [] => Err(format!("{rname} named {name} not found.")),
        [one] => one
            .int_of("ID")
            .ok()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| format!("{rname} named {name} has no valid ID")),
        _ => Err(format!("There are multiple {rname}s with name {name}.")),
    }
}

/// `CommandParser#format_range`: `1,8..15` (blanks ignored) as its ids, each once; `None`
/// when `arg` is not made of numbers and ranges only.
pub(crate) fn parse_range(arg: &str) -> Option<Vec<i32>> {
    let compact: String = arg.chars().filter(|&c| c != ' ').collect();
    let mut ids: Vec<i32> = Vec::new();
    for part in compact.split(',') {
        for id in range_part(part)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Some(ids)
}

/// `N` or `N..M` (empty when M < N, as Ruby's range).
fn range_part(part: &str) -> Option<Vec<i32>> {
    if is_number(part) {
        return part.parse().ok().map(|n| vec![n]);
    }
    let (from, to) = part.split_once("..")?;
    if !is_number(from) || !is_number(to) {
        return None;
    }
    let (from, to): (i32, i32) = (from.parse().ok()?, to.parse().ok()?);
    Some((from..=to).collect())
}

/// Looks names up in one family's pool, fetched once.
pub(crate) struct Resolver<'a> {
    client: &'a Client,
    family: Family,
    /// `rname_to_id`'s error text when the pool cannot be read (not the helper's own).
    foreign: bool,
    pool: Option<Element>,
}

impl<'a> Resolver<'a> {
    /// The command's own family (`helper.to_id`).
    pub(crate) fn own(client: &'a Client, kind: Kind) -> Resolver<'a> {
        Resolver {
            client,
            family: Family::of(kind),
            foreign: false,
            pool: None,
        }
    }

    /// Another family (`OpenNebulaHelper.rname_to_id`).
    pub(crate) fn other(client: &'a Client, family: Family) -> Resolver<'a> {
        Resolver {
            client,
            family,
            foreign: true,
            pool: None,
        }
    }

    fn pool(&mut self) -> Result<&Element, String> {
        if self.pool.is_none() {
            self.pool = Some(self.fetch()?);
        }
        self.pool
            .as_ref()
            .ok_or_else(|| "the pool could not be read".to_string())
    }

    /// `OneHelper#get_pool`: the pool with `INFO_ALL`.
    fn fetch(&self) -> Result<Element, String> {
        let rname = self.family.rname();
        let not_found = || format!("OpenNebula {rname} name not found, use the ID instead");
        let (method, params) = self.family.pool_call(INFO_ALL);
        let xml = match self.client.call_xml(method, params) {
            Ok(xml) => xml,
            Err(_) if self.foreign => return Err(not_found()),
            Err(e) => {
                let message = err_text(e);
                return Err(if message.is_empty() {
                    not_found()
                } else {
                    message
                });
            }
        };
        Element::parse(&xml).map_err(|e| e.to_string())
    }

    /// One name or number (`to_id` / `rname_to_id`).
    pub(crate) fn id(&mut self, word: &str) -> Result<i32, String> {
        if is_number(word) {
            return number(word);
        }
        let rname = self.family.rname();
        name_to_id(self.pool()?, rname, word)
    }

    /// A required argument; `what` names it when it is missing.
    pub(crate) fn arg(&mut self, word: Option<&String>, what: &str) -> Result<i32, String> {
        self.id(word.ok_or_else(|| format!("missing {what}"))?)
    }

    /// `[:range, :<x>id_list]`: a range as `format_range` reads it, else a comma list of
    /// names, numbers and ranges.
    pub(crate) fn ids(&mut self, word: &str) -> Result<Vec<i32>, String> {
        if let Some(ids) = parse_range(word) {
            return Ok(ids);
        }
        // Ruby's `split(',')`: empty fields at the end are dropped.
        let mut parts: Vec<&str> = word.split(',').collect();
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        let mut ids = Vec::new();
        for part in parts {
            match range_part(part) {
                Some(range) => ids.extend(range),
                None => ids.push(self.id(part)?),
            }
        }
        Ok(ids)
    }

    /// A required list argument.
    pub(crate) fn args(&mut self, word: Option<&String>, what: &str) -> Result<Vec<i32>, String> {
        self.ids(word.ok_or_else(|| format!("missing {what}"))?)
    }
}

/// `rname_to_id` of an optional value, as the option procs of `-c`, `-m`, `-d`... read it:
/// a refusal is followed by `option <name>: Parsing error`.
pub(crate) fn option_id(
    client: &Client,
    family: Family,
    value: Option<String>,
    option: &str,
) -> Result<Option<i32>, String> {
    value
        .map(|v| {
            Resolver::other(client, family)
                .id(&v)
                .map_err(|e| format!("{e}\noption {option}: Parsing error"))
        })
        .transpose()
}

/// `[:range]` alone (`oneacl delete`): numbers and ranges only.
pub(crate) fn range_only(word: Option<&String>, command: &str) -> Result<Vec<i32>, String> {
    let word = word.ok_or_else(|| "missing id".to_string())?;
    parse_range(word).ok_or_else(|| format!("command {command}: argument 0 must be one of range"))
}

/// `OneHelper#perform_actions`: `action` on each id in order; a refusal is reported and the
/// rest still acted on. The refusals, one a line, are the error.
pub(crate) fn perform(
    ids: &[i32],
    mut action: impl FnMut(i32) -> Result<(), String>,
) -> Result<(), String> {
    let failures: Vec<String> = ids.iter().filter_map(|&id| action(id).err()).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// `OneHelper#filterflag_to_i` without the user lookup: `None` for a user name.
pub(crate) fn filter_flag_value(word: &str) -> Option<Result<i32, String>> {
    match word {
        "a" | "all" => Some(Ok(INFO_ALL)),
        "m" | "mine" => Some(Ok(-3)),
        "g" | "group" => Some(Ok(-1)),
        "G" | "primary group" => Some(Ok(-4)),
        w if is_number(w) => Some(number(w)),
        _ => None,
    }
}

/// `OneHelper#filterflag_to_i`: a flag, a user id or a user name.
pub(crate) fn filter_flag(client: &Client, word: &str) -> Result<i32, String> {
    match filter_flag_value(word) {
        Some(flag) => flag,
        None => Resolver::other(client, Family::User).id(word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_opennebulas_format_range() {
        assert_eq!(parse_range("3"), Some(vec![3]));
        assert_eq!(parse_range("1..5"), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(parse_range("1,3,7"), Some(vec![1, 3, 7]));
        assert_eq!(parse_range("7, 1..3,2"), Some(vec![7, 1, 2, 3]));
        assert_eq!(parse_range("5..3"), Some(vec![]));
        for not in ["web", "1..", "..2", "1...3", "-1", "1,web", "", "1,,2"] {
            assert_eq!(parse_range(not), None, "{not}");
        }
    }

    fn pool() -> Element {
        Element::parse(
            "<VM_POOL><VM><ID>0</ID><NAME>web</NAME></VM><VM><ID>4</ID><NAME>db</NAME></VM>\
             <VM><ID>7</ID><NAME>db</NAME></VM></VM_POOL>",
        )
        .unwrap()
    }

    #[test]
    fn names_are_looked_up_with_opennebulas_messages() {
        assert_eq!(name_to_id(&pool(), "VM", "web"), Ok(0));
        assert_eq!(
            name_to_id(&pool(), "VM", "x"),
            Err("VM named x not found.".into())
        );
        assert_eq!(
            name_to_id(&pool(), "VM", "db"),
            Err("There are multiple VMs with name db.".into())
        );
        assert_eq!(
            name_to_id(&pool(), "VM", "WEB"),
            Err("VM named WEB not found.".into())
        );
    }

    #[test]
    fn actions_go_on_after_a_refusal() {
        let mut done = Vec::new();
        let r = perform(&[1, 2, 3], |id| {
            done.push(id);
            if id == 2 {
                Err(format!("no {id}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(done, [1, 2, 3]);
        assert_eq!(r, Err("no 2".into()));
        assert_eq!(perform(&[1], |_| Ok(())), Ok(()));
    }

    #[test]
    fn filter_flags_are_opennebulas() {
        assert_eq!(filter_flag_value("a"), Some(Ok(-2)));
        assert_eq!(filter_flag_value("mine"), Some(Ok(-3)));
        assert_eq!(filter_flag_value("g"), Some(Ok(-1)));
        assert_eq!(filter_flag_value("G"), Some(Ok(-4)));
        assert_eq!(filter_flag_value("7"), Some(Ok(7)));
        assert_eq!(filter_flag_value("bob"), None);
    }
}
