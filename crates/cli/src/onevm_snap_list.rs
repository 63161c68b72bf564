//! `onevm snapshot-list` and `disk-snapshot-list`, as `OneVMHelper#format_template_snapshots`
//! and `#format_snapshots` print them when the output is not a terminal (the padding at the
//! end of a line left out, as `crate::image` does).

use std::io::Write;

use crate::listing::col;
use crate::market::{push, unit_to_str};
use crate::objects::text;
use crate::vntemplate::time_to_str;
use crate::xml::Element;

/// `snapshot-list`: the VM's SNAPSHOTs (ID TIME NAME HYPERVISOR_ID), times without seconds.
pub(crate) fn system(vm: &Element) -> String {
    let snaps: Vec<&Element> = vm
        .child("TEMPLATE")
        .map(|t| t.children_named("SNAPSHOT").collect())
        .unwrap_or_default();
    let mut s = String::new();
    if snaps.is_empty() {
        push(&mut s, "No snapshots available");
        return s;
    }
    push(&mut s, "SNAPSHOTS");
    let columns = [
        col("ID", 4, false, false),
        col("TIME", 12, false, false),
        col("NAME", 46, true, false),
        col("HYPERVISOR_ID", 15, true, false),
    ];
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|d| {
            let time = text(d, "TIME").trim().parse().unwrap_or(0);
            let mut shown = time_to_str(time);
            // `time_to_str(t, false)`: no seconds.
            if shown.len() > 3 && time != 0 {
                shown.truncate(shown.len() - 3);
            }
            vec![
                text(d, "SNAPSHOT_ID").into(),
                shown,
                text(d, "NAME").into(),
                text(d, "HYPERVISOR_ID").into(),
            ]
        })
        .collect();
    for line in crate::listing::table(&columns, &rows) {
        push(&mut s, &line);
    }
    s
}

/// `disk-snapshot-list`: disk `disk_id`'s snapshots (AC ID DISK PARENT DATE SIZE NAME, SIZE as
/// `<monitored>/<size>`).
pub(crate) fn disk(vm: &Element, disk_id: &str) -> String {
    let all: Vec<&Element> = vm.children_named("SNAPSHOTS").collect();
    let mut s = String::new();
    if all.is_empty() {
        push(&mut s, "No snapshots available in this disk");
        return s;
    }
    push(&mut s, "VM DISK SNAPSHOTS");
    let columns = [
        col("AC", 2, true, false),
        col("ID", 3, false, false),
        col("DISK", 4, false, false),
        col("PARENT", 6, false, false),
        col("DATE", 15, false, false),
        col("SIZE", 12, true, false),
        col("NAME", 32, true, false),
    ];
    let rows: Vec<Vec<String>> = all
        .iter()
        .filter(|d| text(d, "DISK_ID") == disk_id)
        .flat_map(|d| {
            d.children_named("SNAPSHOT")
                .map(move |x| (text(d, "DISK_ID"), x))
        })
        .map(|(disk, d)| {
            let active = if text(d, "ACTIVE") == "YES" { "=>" } else { "" };
            let size = match d.text_of("SIZE") {
                Ok(v) => unit_to_str(v.trim().parse().unwrap_or(0), "M"),
                Err(_) => "-".into(),
            };
            vec![
                active.into(),
                text(d, "ID").into(),
                disk.into(),
                text(d, "PARENT").into(),
                time_to_str(text(d, "DATE").trim().parse().unwrap_or(0)),
                format!("-/{size}"),
                text(d, "NAME").into(),
            ]
        })
        .collect();
    for line in crate::listing::table(&columns, &rows) {
        push(&mut s, &line);
    }
    s
}

pub(crate) fn print(out: &mut dyn Write, text: &str) -> Result<(), String> {
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str = "<VM><TEMPLATE><SNAPSHOT><HYPERVISOR_ID>dummy-snap</HYPERVISOR_ID>\
        <NAME>first</NAME><SNAPSHOT_ID>0</SNAPSHOT_ID><TIME>0</TIME></SNAPSHOT></TEMPLATE>\
        <SNAPSHOTS><ALLOW_ORPHANS>NO</ALLOW_ORPHANS><DISK_ID>0</DISK_ID><SNAPSHOT>\
        <ACTIVE>YES</ACTIVE><DATE>0</DATE><ID>0</ID><NAME>s0</NAME><PARENT>-1</PARENT>\
        <SIZE>16</SIZE></SNAPSHOT></SNAPSHOTS></VM>";

    #[test]
    fn snapshot_lists_have_opennebulas_columns() {
        let vm = Element::parse(VM).unwrap();
        let out = system(&vm);
        assert!(
            out.starts_with("SNAPSHOTS\n  ID         TIME NAME"),
            "{out}"
        );
        assert!(out.contains("   0            - first"), "{out}");
        let out = disk(&vm, "0");
        assert!(
            out.starts_with("VM DISK SNAPSHOTS\nAC  ID DISK PARENT"),
            "{out}"
        );
        assert!(out.contains("=>   0    0     -1"), "{out}");
        assert!(out.contains("-/16M"), "{out}");
        assert_eq!(
            system(&Element::parse("<VM><TEMPLATE/></VM>").unwrap()),
            "No snapshots available\n"
        );
    }
}
