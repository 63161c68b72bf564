//! `one.vmpool.calculateshowback` and `one.vmpool.showback`: monthly costs of VMs from their
//! placement records and CPU_COST, MEMORY_COST, DISK_COST (or oned.conf's DEFAULT_COST), as
//! OpenNebula's `VirtualMachinePool::calculate_showback` computes them, kept in `vm_showback`.
//! Months are calendar months in UTC (OpenNebula uses the server's local time).

use std::collections::BTreeMap;

use sqlstore::objects::monitoring as store;
use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::sql::params_from_iter;
use sqlstore::{SqlStmt, SqlTxn};
use template::Template;
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::perms::{self, caller, PoolFilter, Where};
use super::xml::Xml;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.vmpool.showback", Read, Auth::Object, showback),
    method!(
        "one.vmpool.calculateshowback",
        Write,
        Auth::Object,
        calculate
    ),
];

/// VMs read at a time while computing.
const VM_BATCH: i64 = 500;
/// Records written per replicated write.
const WRITE_BATCH: usize = 1000;

/// The first second of month `month` (1-12, or 13 for January of the next year) in UTC.
pub fn month_start(year: i64, month: i64) -> i64 {
    let (y, m) = (
        year + (month - 1).div_euclid(12),
        (month - 1).rem_euclid(12) + 1,
    );
    days_from_civil(y, m, 1) * 86400
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The (year, month) of a time in UTC.
pub fn year_month(t: i64) -> (i64, i64) {
    let z = t.div_euclid(86400) + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// The costs a VM without its own pays (`DEFAULT_COST`), and `SHOWBACK_ONLY_RUNNING`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Defaults {
    pub cpu: f32,
    pub memory: f32,
    pub disk: f32,
    pub only_running: bool,
}

impl Defaults {
    pub fn from_config(t: &Template) -> Defaults {
        let mut d = Defaults::default();
        if let Some(template::Value::Vector(pairs)) = t.get("DEFAULT_COST").map(|a| &a.value) {
            let get = |k: &str| {
                template::vector_get(pairs, k)
                    .and_then(|v| v.trim().parse::<f32>().ok())
                    .unwrap_or(0.0)
            };
            d.cpu = get("CPU_COST");
            d.memory = get("MEMORY_COST");
            d.disk = get("DISK_COST");
        }
        d.only_running = t
            .single("SHOWBACK_ONLY_RUNNING")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
        d
    }
}

/// One VM's figures in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub cpu_cost: f32,
    pub mem_cost: f32,
    pub disk_cost: f32,
    pub hours: f32,
    pub rhours: f32,
}

/// `one_util::float_to_str`: no decimals for a whole number, else two.
pub fn float_str(v: f32) -> String {
    if v == v.ceil() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// What a VM costs per hour and what it is made of, from its template.
struct Rates {
    cpu: f32,
    memory: f32,
    disk: f32,
    cpu_cost: f32,
    mem_cost: f32,
    disk_cost: f32,
}

fn rates(v: &VmRow, d: &Defaults) -> Rates {
    let t = Template::parse(&v.template).unwrap_or_default();
    let num = |k: &str, default: f32| {
        t.single(k)
            .and_then(|s| s.trim().parse::<f32>().ok())
            .unwrap_or(default)
    };
    let disk: f32 = t
        .attrs
        .iter()
        .filter(|a| a.name == "DISK")
        .filter_map(|a| match &a.value {
            template::Value::Vector(pairs) => Some(pairs),
            template::Value::Single(_) => None,
        })
        .map(|pairs| {
            ["SIZE", "DISK_SNAPSHOT_TOTAL_SIZE"]
                .iter()
                .filter_map(|k| template::vector_get(pairs, k))
                .filter_map(|s| s.trim().parse::<f32>().ok())
                .sum::<f32>()
        })
        .sum();
    Rates {
        cpu: v.cpu as f32,
        memory: v.memory as f32,
        disk,
        cpu_cost: num("CPU_COST", d.cpu),
        mem_cost: num("MEMORY_COST", d.memory),
        disk_cost: num("DISK_COST", d.disk),
    }
}

/// A VM's monthly totals over `slots` (month starts, then the end of the window), as
/// `calculate_showback` adds each history record's hours.
pub fn vm_totals(v: &VmRow, slots: &[i64], d: &Defaults) -> BTreeMap<i64, Totals> {
    let r = rates(v, d);
    let mut totals: BTreeMap<i64, Totals> = BTreeMap::new();
    for h in &v.history {
        for pair in slots.windows(2) {
            let (t, t_next) = (pair[0], pair[1]);
            let mut count = |st: i64, et: i64, cpu_mem: bool, disk: bool, running: bool| {
                if (et > t || et == 0) && st != 0 && st <= t_next {
                    let from = t.max(st);
                    let to = if et == 0 { t_next } else { t_next.min(et) };
                    let n = (to - from) as f32 / 60.0 / 60.0;
                    let s = totals.entry(t).or_default();
                    if cpu_mem {
                        s.cpu_cost += r.cpu_cost * r.cpu * n;
                        s.mem_cost += r.mem_cost * r.memory * n;
                    }
                    if disk {
                        s.disk_cost += r.disk_cost * r.disk * n;
                        s.hours += n;
                    }
                    if running {
                        s.rhours += n;
                    }
                }
            };
            // The dummy driver runs a VM for the whole of its placement: RSTIME/RETIME are
            // its STIME/ETIME.
            if d.only_running {
                count(h.stime, h.etime, false, true, false);
                count(h.stime, h.etime, true, false, true);
            } else {
                count(h.stime, h.etime, true, true, false);
                count(h.stime, h.etime, false, false, true);
            }
        }
    }
    totals
}

/// A SHOWBACK record's body, as OpenNebula stores it.
pub fn record_xml(v: &VmRow, year: i64, month: i64, s: &Totals) -> String {
    let mut out = String::new();
    let head = &v.head;
    Xml::new(&mut out).elem("SHOWBACK", |x| {
        x.num("VMID", head.owned.oid)
            .text("VMNAME", &head.name)
            .num("UID", head.owned.uid)
            .num("GID", head.owned.gid)
            .text("UNAME", &head.uname)
            .text("GNAME", &head.gname)
            .num("YEAR", year)
            .num("MONTH", month)
            .num("CPU_COST", float_str(s.cpu_cost))
            .num("MEMORY_COST", float_str(s.mem_cost))
            .num("DISK_COST", float_str(s.disk_cost))
            .num(
                "TOTAL_COST",
                float_str(s.cpu_cost + s.mem_cost + s.disk_cost),
            )
            .num("HOURS", float_str(s.hours))
            .num("RHOURS", float_str(s.rhours));
    });
    out
}

/// The month starts from `start`'s month while before `end`, then `end`.
pub fn slots(start: i64, end: i64) -> Vec<i64> {
    let (mut y, mut m) = year_month(start);
    let mut out = Vec::new();
    let mut t = month_start(y, m);
    while t < end {
        out.push(t);
        m += 1;
        if m > 12 {
            (y, m) = (y + 1, 1);
        }
        t = month_start(y, m);
    }
    out.push(end);
    out
}

fn four_ints(p: &Params<'_>, from: usize) -> Result<[i64; 4], Failure> {
    Ok([
        p.int(from)? as i64,
        p.int(from + 1)? as i64,
        p.int(from + 2)? as i64,
        p.int(from + 3)? as i64,
    ])
}

/// `one.vmpool.calculateshowback(first_month, first_year, last_month, last_year)`: group
/// oneadmin only; stores every VM's records for the months of the window (-1: from the first
/// history record, up to now).
pub async fn calculate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let [fm, fy, lm, ly] = four_ints(&p, 0)?;
    if s.gid != 0 {
        return Err(fail(
            code::AUTHORIZATION,
            "Action reserved for group 0 only",
        ));
    }
    let now = super::vm::now();
    let start = if fm != -1 && fy != -1 {
        month_start(fy, fm)
    } else {
        ctx.read(store::first_stime).await?.unwrap_or(now)
    };
    let mut end = now;
    if lm != -1 && ly != -1 {
        end = end.min(month_start(ly, lm + 1));
    }
    let slots = slots(start, end);
    let defaults = Defaults::from_config(&ctx.config.raw);
    let mut stmts: Vec<SqlStmt> = Vec::new();
    let mut after = -1;
    loop {
        let mut w = Where::default();
        super::accounting::with_history_in(&mut w, start, end);
        w.and("v.oid > ?", [after]);
        let sql = format!(
            "{}{} ORDER BY v.oid LIMIT ?",
            rows::WHOLE_HISTORY_ROWS.select,
            w.clause()
        );
        let mut args = w.args;
        args.push(VM_BATCH);
        let vms = ctx
            .read(move |c| {
                let mut st = c.prepare(&sql)?;
                let mut it = st.query(params_from_iter(args))?;
                let mut out = Vec::new();
                while let Some(r) = it.next()? {
                    out.push((rows::WHOLE_HISTORY_ROWS.read)(c, r)?);
                }
                Ok(out)
            })
            .await?;
        let Some(last) = vms.last() else { break };
        after = last.head.owned.oid;
        for v in &vms {
            for (t, totals) in vm_totals(v, &slots, &defaults) {
                let (y, m) = year_month(t);
                let body = record_xml(v, y, m, &totals);
                stmts.push(store::put_showback(v.head.owned.oid, y, m, body));
                if stmts.len() >= WRITE_BATCH {
                    write(ctx, std::mem::take(&mut stmts)).await?;
                }
            }
        }
        if (vms.len() as i64) < VM_BATCH {
            break;
        }
    }
    if !stmts.is_empty() {
        write(ctx, stmts).await?;
    }
    Ok(Value::String(String::new()))
}

async fn write(ctx: &Ctx, stmts: Vec<SqlStmt>) -> Result<(), Failure> {
    ctx.commit(SqlTxn { stmts }, |r| {
        fail(
            code::AUTHORIZATION,
            format!("Error writing to DB. {}", r.message),
        )
    })
    .await?;
    Ok(())
}

/// `one.vmpool.showback(filter, first_month, first_year, last_month, last_year)`: the stored
/// records of the VMs the caller may see, by month then VM.
pub async fn showback(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let flag = p.int(0)? as i64;
    let [fm, fy, lm, ly] = four_ints(&p, 1)?;
    if flag < -4 {
        return Err(fail(code::XML_RPC_API, "Incorrect filter_flag"));
    }
    let c = caller(ctx, s).await?;
    let mut w = Where::default();
    let all = PoolFilter {
        flag,
        start: -1,
        end: -1,
    };
    all.sql(&c, perms::VM, "v", &mut w);
    if fm != -1 && fy != -1 {
        w.and("s.year > ? OR (s.year = ? AND s.month >= ?)", [fy, fy, fm]);
    }
    if lm != -1 && ly != -1 {
        w.and("s.year < ? OR (s.year = ? AND s.month <= ?)", [ly, ly, lm]);
    }
    let sql = format!(
        "SELECT s.body FROM vm_showback s JOIN vm_pool v ON v.oid = s.vmid{} \
         ORDER BY s.year, s.month, s.vmid",
        w.clause()
    );
    let args = w.args;
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<SHOWBACK_RECORDS>");
            let mut st = c.prepare(&sql)?;
            let mut it = st.query(params_from_iter(args))?;
            while let Some(r) = it.next()? {
                let body: String = r.get(0)?;
                out.push_str(&body);
            }
            out.push_str("</SHOWBACK_RECORDS>");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_where_the_calendar_says() {
        assert_eq!(month_start(1970, 1), 0);
        assert_eq!(month_start(2024, 3), 1709251200);
        assert_eq!(month_start(2023, 13), month_start(2024, 1));
        assert_eq!(year_month(1709251200), (2024, 3));
        assert_eq!(year_month(1709251199), (2024, 2));
        assert_eq!(year_month(0), (1970, 1));
    }

    #[test]
    fn slots_cover_each_month_then_the_end() {
        let s = slots(month_start(2024, 1) + 5, month_start(2024, 3) + 10);
        assert_eq!(
            s,
            vec![
                month_start(2024, 1),
                month_start(2024, 2),
                month_start(2024, 3),
                month_start(2024, 3) + 10
            ]
        );
    }

    fn vm(template: &str, history: Vec<(i64, i64)>) -> VmRow {
        VmRow {
            head: sqlstore::Head {
                owned: sqlstore::Owned {
                    oid: 5,
                    uid: 2,
                    gid: 1,
                    perms: 0o600,
                },
                name: "web".into(),
                uname: "alice".into(),
                gname: "users".into(),
            },
            lock: sqlstore::Lock::default(),
            state: 3,
            lcm_state: 3,
            prev_state: 3,
            prev_lcm_state: 3,
            stime: 0,
            etime: 0,
            cpu: 2.0,
            memory: 512,
            template: template.into(),
            user_template: String::new(),
            resched: false,
            history: history
                .into_iter()
                .enumerate()
                .map(|(i, (stime, etime))| {
                    rows::History::new(i as i64, 0, "h", "dummy", stime, etime)
                })
                .collect(),
            monitoring: None,
        }
    }

    #[test]
    fn a_placement_across_a_month_end_is_charged_to_both_months() {
        let noon = |y, m, d: i64| month_start(y, m) + (d - 1) * 86400 + 12 * 3600;
        let v = vm(
            "CPU = 2\nMEMORY = 512\nCPU_COST = 1\nDISK = [ SIZE = 100 ]",
            vec![(noon(2024, 1, 31), noon(2024, 2, 1))],
        );
        let t = Template::parse("DEFAULT_COST = [ MEMORY_COST = 0.5, DISK_COST = 0.01 ]")
            .unwrap_or_default();
        let d = Defaults::from_config(&t);
        assert_eq!(
            (d.cpu, d.memory, d.disk, d.only_running),
            (0.0, 0.5, 0.01, false)
        );
        let window = slots(month_start(2024, 1), month_start(2024, 3));
        let totals = vm_totals(&v, &window, &d);
        assert_eq!(totals.len(), 2);
        for (start, s) in &totals {
            assert!([month_start(2024, 1), month_start(2024, 2)].contains(start));
            assert_eq!(s.hours, 12.0);
            assert_eq!(s.rhours, 12.0);
            assert_eq!(s.cpu_cost, 24.0);
            assert_eq!(s.mem_cost, 3072.0);
            assert!((s.disk_cost - 12.0).abs() < 1e-4, "{s:?}");
        }
        let body = record_xml(&v, 2024, 2, &totals[&month_start(2024, 2)]);
        assert_eq!(
            body,
            "<SHOWBACK><VMID>5</VMID><VMNAME>web</VMNAME><UID>2</UID><GID>1</GID>\
             <UNAME>alice</UNAME><GNAME>users</GNAME><YEAR>2024</YEAR><MONTH>2</MONTH>\
             <CPU_COST>24</CPU_COST><MEMORY_COST>3072</MEMORY_COST><DISK_COST>12</DISK_COST>\
             <TOTAL_COST>3108</TOTAL_COST><HOURS>12</HOURS><RHOURS>12</RHOURS></SHOWBACK>"
        );
        // A placement still open runs to the end of the window.
        let open = vm("CPU = 2\nMEMORY = 512", vec![(noon(2024, 2, 28), 0)]);
        let end = month_start(2024, 3);
        let totals = vm_totals(&open, &slots(month_start(2024, 2), end), &d);
        assert_eq!(totals[&month_start(2024, 2)].hours, 36.0);
    }

    #[test]
    fn costs_print_as_opennebula_prints_floats() {
        assert_eq!(float_str(3.0), "3");
        assert_eq!(float_str(0.5), "0.50");
        assert_eq!(float_str(1.0 / 3.0), "0.33");
    }
}
