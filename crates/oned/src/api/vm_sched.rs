//! Scheduled actions of VMs: `one.vm.schedadd`, `one.vm.schedupdate`, `one.vm.scheddelete`,
//! as OpenNebula's `RequestManagerSched*` and `ScheduledAction`. Each action is kept as a
//! `SCHED_ACTION` vector of the VM template (all its fields, normalized), so it changes with
//! the VM in one guarded write; the body shows the ids in `SCHED_ACTIONS` and the actions at
//! the end of `TEMPLATE`, as OpenNebula 7.0 does. The leader runs due ones
//! (`crate::sched_runner`).

use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::vm::{state, VMS};
use super::xml::Xml;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.vm.schedadd", Write, Auth::Object, schedadd),
    method!("one.vm.schedupdate", Write, Auth::Object, schedupdate),
    method!("one.vm.scheddelete", Write, Auth::Object, scheddelete),
];

/// `ScheduledAction::VM_ACTIONS`.
pub const VM_ACTIONS: &[&str] = &[
    "terminate",
    "terminate-hard",
    "undeploy",
    "undeploy-hard",
    "hold",
    "release",
    "stop",
    "suspend",
    "resume",
    "reboot",
    "reboot-hard",
    "poweroff",
    "poweroff-hard",
    "snapshot-create",
    "snapshot-revert",
    "snapshot-delete",
    "disk-snapshot-create",
    "disk-snapshot-revert",
    "disk-snapshot-delete",
    "backup",
];

/// Scheduled actions a VM may hold: a bound on what a client makes the template carry.
const MAX_ACTIONS: usize = 128;
/// How often a write is computed again after a concurrent change of the VM.
const RETRIES: usize = 10;

/// REPEAT values.
const NONE: i64 = -1;
const WEEKLY: i64 = 0;
const MONTHLY: i64 = 1;
const YEARLY: i64 = 2;
const HOURLY: i64 = 3;
/// END_TYPE values.
const END_NONE: i64 = -1;
const NEVER: i64 = 0;
const TIMES: i64 = 1;
const DATE: i64 = 2;

/// One scheduled action, with OpenNebula's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedAction {
    pub id: i64,
    pub parent: i64,
    pub action: String,
    pub args: String,
    pub time: i64,
    pub repeat: i64,
    pub days: String,
    pub end_type: i64,
    pub end_value: i64,
    pub done: i64,
    pub message: String,
    pub warning: i64,
}

impl SchedAction {
    pub fn new(id: i64, parent: i64) -> SchedAction {
        SchedAction {
            id,
            parent,
            action: String::new(),
            args: String::new(),
            time: -1,
            repeat: NONE,
            days: String::new(),
            end_type: END_NONE,
            end_value: -1,
            done: -1,
            message: String::new(),
            warning: 0,
        }
    }

    /// A stored `SCHED_ACTION` vector; a field missing or unreadable takes its default.
    pub fn from_pairs(pairs: &[(String, String)], index: i64, parent: i64) -> SchedAction {
        let s = |k: &str| template::vector_get(pairs, k).unwrap_or("").to_string();
        let n = |k: &str, d: i64| {
            template::vector_get(pairs, k)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d)
        };
        SchedAction {
            id: n("ID", index),
            parent,
            action: s("ACTION"),
            args: s("ARGS"),
            time: n("TIME", -1),
            repeat: n("REPEAT", NONE),
            days: s("DAYS"),
            end_type: n("END_TYPE", END_NONE),
            end_value: n("END_VALUE", -1),
            done: n("DONE", -1),
            message: s("MESSAGE"),
            warning: n("WARNING", 0),
        }
    }

    pub fn to_pairs(&self) -> Vec<(String, String)> {
        [
            ("ACTION", self.action.clone()),
            ("ARGS", self.args.clone()),
            ("DAYS", self.days.clone()),
            ("DONE", self.done.to_string()),
            ("END_TYPE", self.end_type.to_string()),
            ("END_VALUE", self.end_value.to_string()),
            ("ID", self.id.to_string()),
            ("MESSAGE", self.message.clone()),
            ("REPEAT", self.repeat.to_string()),
            ("TIME", self.time.to_string()),
            ("WARNING", self.warning.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn xml(&self, x: &mut Xml<'_>) {
        self.xml_as(x, "VM");
    }

    /// The action's XML, of an object of `kind` (`VM`, `BACKUPJOB`).
    pub fn xml_as(&self, x: &mut Xml<'_>, kind: &str) {
        x.elem("SCHED_ACTION", |x| {
            x.num("ID", self.id)
                .num("PARENT_ID", self.parent)
                .text("TYPE", kind)
                .text("ACTION", &self.action)
                .text("ARGS", &self.args)
                .num("TIME", self.time)
                .num("REPEAT", self.repeat)
                .text("DAYS", &self.days)
                .num("END_TYPE", self.end_type)
                .num("END_VALUE", self.end_value)
                .num("DONE", self.done)
                .text("MESSAGE", &self.message)
                .num("WARNING", self.warning);
        });
    }

    /// `ScheduledAction::parse`: the fields `va` gives replace this action's; `origin` (the
    /// VM's STIME) is what a `+seconds` TIME counts from.
    pub fn parse(&mut self, va: &[(String, String)], origin: i64) -> Result<(), String> {
        let get = |k: &str| template::vector_get(va, k).map(str::trim);
        if let Some(a) = get("ACTION").filter(|a| !a.is_empty()) {
            if !VM_ACTIONS.contains(&a) {
                return Err(format!("{a} is not supported."));
            }
            self.action = a.to_string();
        }
        if self.action.is_empty() {
            return Err("No ACTION in template for Scheduled Action.".into());
        }
        let time = get("TIME").unwrap_or("");
        if !time.is_empty() {
            self.time = parse_time(time, origin);
        }
        if self.time == -1 {
            return Err(format!(
                "Unable to parse the time value or value is empty: {time}"
            ));
        }
        if let Some(w) = get("WARNING").filter(|w| !w.is_empty()) {
            self.warning = parse_time(w, origin);
            if self.warning == -1 {
                return Err(format!("Unable to parse the warning value: {w}"));
            }
        }
        if let Some(r) = get("REPEAT").and_then(|r| r.parse::<i64>().ok()) {
            if !(NONE..=HOURLY).contains(&r) {
                return Err(format!("Wrong REPEAT value: {r}"));
            }
            self.repeat = r;
        }
        if self.repeat == NONE {
            self.days.clear();
        } else if let Some(d) = get("DAYS") {
            self.days = d.to_string();
            self.days_in_range()?;
        } else if self.days.is_empty() {
            return Err("Repeat set, but DAYS are empty".into());
        }
        if let Some(e) = get("END_TYPE").and_then(|e| e.parse::<i64>().ok()) {
            if !(END_NONE..=DATE).contains(&e) {
                return Err(format!("Wrong END_TYPE value: {e}"));
            }
            self.end_type = e;
        }
        if self.end_type <= NEVER {
            self.end_value = -1;
        } else if let Some(v) = get("END_VALUE").and_then(|v| v.parse::<i64>().ok()) {
            self.end_value = v;
            if self.end_type == TIMES && v < 0 {
                return Err(
                    "Error parsing END_VALUE, times has to be greater or equal to 0".into(),
                );
            }
        }
        if let Some(a) = template::vector_get(va, "ARGS") {
            self.args = a.to_string();
        }
        Ok(())
    }

    fn day_set(&self) -> Vec<i64> {
        let mut d: Vec<i64> = self
            .days
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        d.sort_unstable();
        d.dedup();
        d
    }

    fn days_in_range(&self) -> Result<(), String> {
        let d = self.day_set();
        let (Some(&first), Some(&last)) = (d.first(), d.last()) else {
            return Err("Scheduled Action repeat set, but DAYS are empty".into());
        };
        let (lo, hi, msg) = match self.repeat {
            WEEKLY => (0, 7, "Days in a week have to be in [0,6] range"),
            MONTHLY => (1, 32, "Days in a month have to be in [1,31] range"),
            YEARLY => (0, 366, "Days in a year have to be in [0,365] range"),
            _ => (1, 168, "Hours have to be in [0,168] range"),
        };
        if first < lo || last >= hi || (self.repeat == HOURLY && d.len() != 1) {
            return Err(msg.into());
        }
        Ok(())
    }

    /// `ScheduledAction::is_due` at `now`.
    pub fn is_due(&self, now: i64) -> bool {
        let ended = match self.end_type {
            TIMES => self.end_value <= 0,
            DATE => now > self.end_value,
            _ => false,
        };
        if ended || (self.done > 0 && self.done >= self.time) {
            return false;
        }
        self.time < now
    }

    /// `ScheduledAction::next_action`: marks it done at `now` and moves a repeating one to
    /// its next time (days counted in UTC).
    pub fn next_action(&mut self, now: i64) {
        self.done = now;
        let days = self.day_set();
        let Some(&first) = days.first() else {
            return;
        };
        if self.repeat == NONE {
            return;
        }
        match self.end_type {
            TIMES if self.end_value <= 0 => return,
            TIMES => self.end_value -= 1,
            DATE if now > self.end_value => return,
            _ => {}
        }
        if self.repeat == HOURLY {
            if first <= 0 {
                return;
            }
            while self.time < now {
                self.time += first * 3600;
            }
            return;
        }
        let day = now.div_euclid(86_400);
        let (year, month, mday) = civil(day);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let (cday, period) = match self.repeat {
            WEEKLY => ((day + 4).rem_euclid(7), 7),
            MONTHLY => {
                const DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
                let extra = i64::from(leap && month == 2);
                (mday, DAYS[(month - 1) as usize] + extra)
            }
            _ => (day - days_from_civil(year, 1, 1), 365 + i64::from(leap)),
        };
        let last = days.last().copied().unwrap_or(first);
        let delta = if cday < first {
            first - cday
        } else if cday >= last {
            period - cday + first
        } else {
            days.iter().find(|d| **d > cday).map_or(0, |d| d - cday)
        };
        self.time += delta * 86_400;
        self.warning = 0;
    }
}

/// `ScheduledAction::parse_time`: `+seconds` from `origin`, or an absolute epoch; -1 if not a
/// number.
fn parse_time(s: &str, origin: i64) -> i64 {
    let (digits, base) = match s.strip_prefix('+') {
        Some(rest) => (rest, origin),
        None => (s, 0),
    };
    digits
        .parse::<i64>()
        .ok()
        .and_then(|t| t.checked_add(base))
        .unwrap_or(-1)
}

/// (year, month 1-12, day 1-31) of a day count since the epoch.
pub fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The VM's scheduled actions, in template order.
pub fn actions(t: &Template, vid: i64) -> Vec<SchedAction> {
    t.get_all("SCHED_ACTION")
        .filter_map(|a| a.value.as_vector())
        .enumerate()
        .map(|(i, p)| SchedAction::from_pairs(p, i as i64, vid))
        .collect()
}

/// A new VM's `SCHED_ACTION`s (`one.vm.allocate`, `one.template.instantiate`) become its
/// scheduled actions, a `+seconds` TIME counted from `stime`; one OpenNebula cannot parse
/// refuses the VM.
pub fn from_allocate(t: &mut Template, stime: i64) -> Result<(), Failure> {
    let given: Vec<Vec<(String, String)>> = t
        .get_all("SCHED_ACTION")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    if given.len() > MAX_ACTIONS {
        return Err(fail(
            code::INTERNAL,
            format!("A VM holds at most {MAX_ACTIONS} scheduled actions"),
        ));
    }
    let mut list = Vec::new();
    for (n, va) in given.iter().enumerate() {
        let mut a = SchedAction::new(n as i64, -1);
        a.parse(va, stime).map_err(|e| fail(code::INTERNAL, e))?;
        list.push(a);
    }
    *t = with_actions(t, &list);
    Ok(())
}

/// `t` with its scheduled actions replaced by `list`.
pub fn with_actions(t: &Template, list: &[SchedAction]) -> Template {
    let mut t = t.clone();
    t.remove("SCHED_ACTION");
    for a in list {
        t.push("SCHED_ACTION", TValue::Vector(a.to_pairs()));
    }
    t
}

/// What the VM body shows of the actions, taken out of its template: the `SCHED_ACTIONS`
/// element and the actions placed at the end of `TEMPLATE`.
pub struct BodyXml {
    pub ids: String,
    pub actions: String,
}

pub fn take_xml(t: &mut Template, vid: i64) -> BodyXml {
    let list = actions(t, vid);
    t.remove("SCHED_ACTION");
    let (mut ids, mut actions) = (String::new(), String::new());
    Xml::new(&mut ids).elem("SCHED_ACTIONS", |x| {
        for a in &list {
            x.num("ID", a.id);
        }
    });
    let mut x = Xml::new(&mut actions);
    for a in &list {
        a.xml(&mut x);
    }
    BodyXml { ids, actions }
}

impl BodyXml {
    /// The template's XML with the actions as its last children.
    pub fn template(&self, t: &Template) -> String {
        let xml = t.to_xml();
        if self.actions.is_empty() {
            return xml;
        }
        match xml.strip_suffix("</TEMPLATE>") {
            Some(head) => format!("{head}{}</TEMPLATE>", self.actions),
            // An empty template prints as `<TEMPLATE/>`.
            None => format!("<TEMPLATE>{}</TEMPLATE>", self.actions),
        }
    }
}

/// The `SCHED_ACTION` vector of a call's template.
pub(super) fn given(text: &str, missing: i32) -> Result<Vec<(String, String)>, Failure> {
    let t = super::validate::template(text).map_err(|e| fail(code::INTERNAL, e))?;
    t.vector("SCHED_ACTION")
        .map(<[_]>::to_vec)
        .ok_or_else(|| fail(missing, "No SCHED_ACTION attribute in template"))
}

/// Reads VM `id` (MANAGE: OpenNebula's `sched-action` operation), lets `change` edit its
/// actions, and writes the template back guarded on the text read, again after a concurrent
/// change. Answers what `change` answers.
async fn edit(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    mut change: impl FnMut(&sqlstore::objects::vm::VmRow, &mut Vec<SchedAction>) -> Result<i64, Failure>,
) -> MethodResult {
    for _ in 0..RETRIES {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "sched-action", MANAGE).await?,
            )
            .await?;
        let old = Template::parse(&v.template).unwrap_or_default();
        let mut list = actions(&old, id);
        let answer = change(&v, &mut list)?;
        let new = with_actions(&old, &list).to_text();
        let stmt = sqlstore::objects::replace_template(
            sqlstore::objects::vm::TABLE,
            "template",
            id,
            new,
            v.template.clone(),
        );
        let mut changed = false;
        let written = ctx
            .commit(sqlstore::SqlTxn { stmts: vec![stmt] }, |r| {
                changed = r.kind == sqlstore::TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match written {
            Ok(_) => return Ok(Value::Int(answer as i32)),
            Err(_) if changed => continue,
            Err(f) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot change the scheduled actions: the VM kept changing, try again",
    ))
}

pub async fn schedadd(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    // The VM is checked first, as OpenNebula does, then the template.
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "sched-action", MANAGE).await?,
        )
        .await?;
    refuse_done(&v)?;
    let va = given(&text, code::ACTION)?;
    edit(ctx, s, id, |v, list| {
        refuse_done(v)?;
        if list.len() >= MAX_ACTIONS {
            return Err(fail(
                code::ACTION,
                format!("A VM holds at most {MAX_ACTIONS} scheduled actions"),
            ));
        }
        let next = list.iter().map(|a| a.id + 1).max().unwrap_or(0);
        let mut a = SchedAction::new(next, id);
        a.parse(&va, v.stime).map_err(|e| fail(code::ACTION, e))?;
        list.push(a);
        Ok(next)
    })
    .await
}

fn refuse_done(v: &sqlstore::objects::vm::VmRow) -> Result<(), Failure> {
    if v.state == state::DONE {
        return Err(fail(
            code::INTERNAL,
            format!(
                "Unable to create Scheduled Action for Virtual Machine {}, it's in DONE state",
                v.head.owned.oid
            ),
        ));
    }
    Ok(())
}

pub async fn schedupdate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let sa_id = p.int(1)? as i64;
    let text = p.string(2)?.to_string();
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "sched-action", MANAGE).await?,
    )
    .await?;
    let va = given(&text, code::INTERNAL)?;
    edit(ctx, s, id, |v, list| {
        let Some(a) = list.iter_mut().find(|a| a.id == sa_id) else {
            return Err(fail(
                code::INTERNAL,
                format!("SCHED_ACTION with id = {sa_id} doesn't exist"),
            ));
        };
        a.parse(&va, v.stime).map_err(|e| fail(code::INTERNAL, e))?;
        Ok(sa_id)
    })
    .await
}

pub async fn scheddelete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let sa_id = p.int(1)? as i64;
    edit(ctx, s, id, |_, list| {
        let before = list.len();
        list.retain(|a| a.id != sa_id);
        if list.len() == before {
            return Err(fail(
                code::NO_EXISTS,
                format!("Error getting scheduled action [{sa_id}]."),
            ));
        }
        Ok(sa_id)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        Template::parse(&format!("SCHED_ACTION = [ {text} ]"))
            .ok()
            .and_then(|t| t.vector("SCHED_ACTION").map(<[_]>::to_vec))
            .unwrap_or_default()
    }

    #[test]
    fn a_relative_time_counts_from_the_vm_start() {
        let mut a = SchedAction::new(0, 3);
        assert!(a
            .parse(&pairs("ACTION = \"poweroff\", TIME = \"+60\""), 1000)
            .is_ok());
        assert_eq!(a.time, 1060);
        assert!(a.is_due(1061) && !a.is_due(1060));
        a.next_action(1061);
        assert!(!a.is_due(5000));
    }

    #[test]
    fn refusals_carry_opennebulas_messages() {
        let mut a = SchedAction::new(0, 3);
        let err = |a: &mut SchedAction, t: &str| a.parse(&pairs(t), 0).err().unwrap_or_default();
        assert_eq!(
            err(&mut a, "TIME = \"1\""),
            "No ACTION in template for Scheduled Action."
        );
        assert_eq!(err(&mut a, "ACTION = \"fly\""), "fly is not supported.");
        assert_eq!(
            err(&mut a, "ACTION = \"hold\", TIME = \"soon\""),
            "Unable to parse the time value or value is empty: soon"
        );
        assert_eq!(
            err(
                &mut a,
                "ACTION = \"hold\", TIME = \"5\", REPEAT = \"0\", DAYS = \"9\""
            ),
            "Days in a week have to be in [0,6] range"
        );
    }

    #[test]
    fn a_repeating_action_moves_to_its_next_time_and_ends() {
        let mut a = SchedAction::new(0, 3);
        let spec = "ACTION = \"reboot\", TIME = \"0\", REPEAT = \"3\", DAYS = \"1\", END_TYPE = \"1\", END_VALUE = \"2\"";
        assert!(a.parse(&pairs(spec), 0).is_ok());
        a.next_action(7200);
        assert_eq!((a.time, a.end_value), (7200, 1));
        a.next_action(7201);
        assert_eq!((a.time, a.end_value), (10_800, 0));
        assert!(!a.is_due(20_000));
    }

    #[test]
    fn calendar_days_are_right() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(civil(19_783), (2024, 3, 1));
    }
}
