//! `one.vmpool.accounting(filter, start, end)`: the placement (HISTORY) records of the VMs the
//! caller may see, in (VM, sequence) order, each with the VM it placed, as OpenNebula's
//! `VirtualMachinePool::dump_acct` prints them.

use sqlstore::objects::vm::{self as rows, History, VmRow};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::method::{Auth, Method};
use super::perms::{self, caller, PoolFilter, Where};
use super::xml::Xml;
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!(
    "one.vmpool.accounting",
    Read,
    Auth::Object,
    accounting
)];

/// Whether a record overlaps [`start`, `end`) (-1: open), as `dump_acct` selects: ended after
/// the start (or still open), started before the end.
pub fn overlaps(h: &History, start: i64, end: i64) -> bool {
    (start == -1 || h.etime > start || h.etime == 0) && (end == -1 || h.stime < end)
}

/// A HISTORY record with the VM it placed (OpenNebula stores the VM's body in it; here the
/// VM as it is now, without its own history).
pub fn history_with_vm(out: &mut String, v: &VmRow, h: &History) {
    let mut record = String::new();
    super::vm::history_xml(&mut Xml::new(&mut record), v, h);
    let Some(open) = record.strip_suffix("</HISTORY>") else {
        out.push_str(&record);
        return;
    };
    out.push_str(open);
    let bare = VmRow {
        history: Vec::new(),
        ..v.clone()
    };
    super::vm::vm_xml(&bare, out);
    out.push_str("</HISTORY>");
}

/// The condition on VMs (alias `v`) that have a record in the window.
pub fn with_history_in(w: &mut Where, start: i64, end: i64) {
    w.and(
        "v.oid IN (SELECT vid FROM history WHERE (? = -1 OR etime > ? OR etime = 0) \
         AND (? = -1 OR stime < ?))",
        [start, start, end, end],
    );
}

pub async fn accounting(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let flag = p.int(0)? as i64;
    let start = p.int(1)? as i64;
    let end = p.int(2)? as i64;
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
    all.sql(&c, perms::VM, rows::ROWS.alias, &mut w);
    with_history_in(&mut w, start, end);
    let whole = &rows::WHOLE_HISTORY_ROWS;
    let sql = format!("{}{} ORDER BY v.oid", whole.select, w.clause());
    let args = w.args;
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<HISTORY_RECORDS>");
            let each = |v: &VmRow, out: &mut String| {
                for h in v.history.iter().filter(|h| overlaps(h, start, end)) {
                    history_with_vm(out, v, h);
                }
            };
            print_rows(c, &sql, args, whole.read, each, &mut out)?;
            out.push_str("</HISTORY_RECORDS>");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(stime: i64, etime: i64) -> History {
        History::new(0, 0, "h", "dummy", stime, etime)
    }

    #[test]
    fn a_record_counts_when_it_overlaps_the_window() {
        assert!(overlaps(&h(10, 20), -1, -1));
        assert!(overlaps(&h(10, 20), 15, 30));
        assert!(!overlaps(&h(10, 20), 20, 30));
        assert!(!overlaps(&h(10, 20), -1, 10));
        assert!(overlaps(&h(10, 0), 100, -1));
    }
}
