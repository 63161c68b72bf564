//! Each command's `list` table: its columns (the defaults these CLIs have always printed; a
//! column widens to fit its data) and one row of cells per pool item.

use crate::ids::Family;
use crate::listing::{col, Column, ListOpts, Table};
use crate::objects::{int, text, vm_stat, Kind};
use crate::xml::Element;

/// The table of `pool` for `kind`.
pub(crate) fn pool_table(kind: Kind, pool: &Element, lo: &ListOpts) -> Table {
    let items: Vec<&Element> = pool.children_named(Family::of(kind).rname()).collect();
    match kind {
        Kind::User => users(&items, lo),
        Kind::Group => groups(&items),
        Kind::Acl => acls(&items),
        Kind::Host => hosts(&items, lo),
        Kind::Vm => vms(&items, lo),
        Kind::Template => templates(&items, lo),
        Kind::Cluster => clusters(&items),
        Kind::Vdc => vdcs(&items),
        Kind::Hook => crate::hook::list(&items),
        Kind::Market => crate::market::market_table(&items),
        Kind::MarketApp => crate::market::app_table(&items),
        Kind::SecGroup => crate::secgroup::table(&items, lo),
        Kind::VnTemplate => crate::vntemplate::table(&items, lo.numeric),
        Kind::VmGroup => crate::vmgroup::table(&items, lo),
        Kind::Vrouter => crate::vrouter::table(&items, lo),
        Kind::BackupJob => crate::backupjob::table(&items, lo),
        Kind::Image => crate::image::table(&items, lo),
        Kind::Datastore => crate::datastore::table(&items, lo),
        Kind::Vnet => crate::vnet_show::table(&items, lo),
    }
}

/// A column that widens to fit its data rather than cutting it.
const fn fit(name: &'static str, size: usize, left: bool) -> Column {
    col(name, size, left, true)
}

fn rows(items: &[&Element], row: impl Fn(&Element) -> Vec<String>) -> Vec<Vec<String>> {
    items.iter().map(|e| row(e)).collect()
}

/// `OneHelper#user_name` / `#group_name`: the owner's name, or with `--numeric` its id.
fn owner(e: &Element, lo: &ListOpts, name: &str, id: &str) -> String {
    text(e, if lo.numeric { id } else { name }).to_string()
}

/// Memory in KiB as these tables print it (`--kilobytes`: the number of KiB).
fn mem(kib: i64, lo: &ListOpts) -> String {
    if lo.kilobytes {
        kib.to_string()
    } else if kib >= 1 << 20 {
        format!("{}G", kib >> 20)
    } else {
        format!("{}M", kib >> 10)
    }
}

/// OpenNebula's short host state (`onehost list` STAT column).
fn host_stat(state: i64) -> &'static str {
    wire::HostState::from_i64(state).map_or("unkn", wire::HostState::short_name)
}

fn users(items: &[&Element], lo: &ListOpts) -> Table {
    Table {
        columns: vec![
            fit("ID", 4, false),
            fit("NAME", 20, true),
            fit("ENAB", 4, true),
            fit("GROUP", 8, true),
            fit("AUTH", 8, true),
        ],
        rows: rows(items, |u| {
            let enab = if int(u, "ENABLED") == 1 { "yes" } else { "no" };
            vec![
                int(u, "ID").to_string(),
                text(u, "NAME").to_string(),
                enab.to_string(),
                owner(u, lo, "GNAME", "GID"),
                text(u, "AUTH_DRIVER").to_string(),
            ]
        }),
    }
}

fn groups(items: &[&Element]) -> Table {
    Table {
        columns: vec![
            fit("ID", 4, false),
            fit("NAME", 20, true),
            fit("USERS", 5, false),
        ],
        rows: rows(items, |g| {
            let users = g
                .child("USERS")
                .map_or(0, |u| u.children_named("ID").count());
            vec![
                int(g, "ID").to_string(),
                text(g, "NAME").to_string(),
                users.to_string(),
            ]
        }),
    }
}

fn acls(items: &[&Element]) -> Table {
    Table {
        columns: vec![fit("ID", 4, false), fit("RULE", 0, true)],
        rows: rows(items, |a| {
            vec![int(a, "ID").to_string(), text(a, "STRING").to_string()]
        }),
    }
}

fn hosts(items: &[&Element], lo: &ListOpts) -> Table {
    let pct = |a: i64, t: i64| if t > 0 { a * 100 / t } else { 0 };
    Table {
        columns: vec![
            fit("ID", 4, false),
            fit("NAME", 18, true),
            fit("CLUSTER", 10, true),
            fit("TVM", 3, false),
            fit("ALLOCATED_CPU", 20, false),
            fit("ALLOCATED_MEM", 20, false),
            fit("STAT", 4, true),
        ],
        rows: rows(items, |h| {
            let share = h.child("HOST_SHARE");
            let g = |n: &str| share.map_or(0, |s| int(s, n));
            let (cpu, total_cpu) = (g("CPU_USAGE"), g("TOTAL_CPU"));
            let (used, total_mem) = (g("MEM_USAGE"), g("TOTAL_MEM"));
            vec![
                int(h, "ID").to_string(),
                text(h, "NAME").to_string(),
                text(h, "CLUSTER").to_string(),
                g("RUNNING_VMS").to_string(),
                format!("{cpu} / {total_cpu} ({}%)", pct(cpu, total_cpu)),
                format!(
                    "{} / {} ({}%)",
                    mem(used, lo),
                    mem(total_mem, lo),
                    pct(used, total_mem)
                ),
                host_stat(int(h, "STATE")).to_string(),
            ]
        }),
    }
}

fn vms(items: &[&Element], lo: &ListOpts) -> Table {
    Table {
        columns: vec![
            fit("ID", 6, false),
            fit("USER", 8, true),
            fit("GROUP", 8, true),
            fit("NAME", 20, true),
            fit("STAT", 4, true),
            fit("CPU", 4, false),
            fit("MEM", 7, false),
            fit("HOST", 12, true),
        ],
        rows: rows(items, |v| {
            let t = v.child("TEMPLATE");
            let host = v
                .child("HISTORY_RECORDS")
                .and_then(|h| h.children_named("HISTORY").last())
                .map_or("", |h| text(h, "HOSTNAME"));
            let memory = t.map_or(0, |t| text(t, "MEMORY").parse::<i64>().unwrap_or(0));
            vec![
                int(v, "ID").to_string(),
                owner(v, lo, "UNAME", "UID"),
                owner(v, lo, "GNAME", "GID"),
                text(v, "NAME").to_string(),
                vm_stat(int(v, "STATE"), int(v, "LCM_STATE")).to_string(),
                t.map_or("", |t| text(t, "CPU")).to_string(),
                mem(memory * 1024, lo),
                host.to_string(),
            ]
        }),
    }
}

fn templates(items: &[&Element], lo: &ListOpts) -> Table {
    Table {
        columns: vec![
            fit("ID", 4, false),
            fit("USER", 8, true),
            fit("GROUP", 8, true),
            fit("NAME", 28, true),
        ],
        rows: rows(items, |t| {
            vec![
                int(t, "ID").to_string(),
                owner(t, lo, "UNAME", "UID"),
                owner(t, lo, "GNAME", "GID"),
                text(t, "NAME").to_string(),
            ]
        }),
    }
}

/// onevdc_helper's default columns.
fn vdcs(items: &[&Element]) -> Table {
    Table {
        columns: vec![
            fit("ID", 5, false),
            fit("NAME", 30, true),
            fit("GROUPS", 6, false),
            fit("CLUSTERS", 8, false),
            fit("HOSTS", 5, false),
            fit("VNETS", 5, false),
            fit("DATASTORES", 10, false),
        ],
        rows: rows(items, |v| {
            let n = |list: &str, each: &str| {
                v.child(list)
                    .map_or(0, |l| l.children_named(each).count())
                    .to_string()
            };
            vec![
                int(v, "ID").to_string(),
                text(v, "NAME").to_string(),
                n("GROUPS", "ID"),
                n("CLUSTERS", "CLUSTER"),
                n("HOSTS", "HOST"),
                n("VNETS", "VNET"),
                n("DATASTORES", "DATASTORE"),
            ]
        }),
    }
}

/// onecluster_helper's default columns.
fn clusters(items: &[&Element]) -> Table {
    Table {
        columns: vec![
            fit("ID", 5, false),
            fit("NAME", 25, true),
            fit("HOSTS", 5, false),
            fit("VNETS", 5, false),
            fit("DATASTORES", 10, false),
        ],
        rows: rows(items, |c| {
            let n = |list: &str| {
                c.child(list)
                    .map_or(0, |l| l.children_named("ID").count())
                    .to_string()
            };
            vec![
                int(c, "ID").to_string(),
                text(c, "NAME").to_string(),
                n("HOSTS"),
                n("VNETS"),
                n("DATASTORES"),
            ]
        }),
    }
}
