//! `onecluster show` as `OneClusterHelper#format_resource` prints it when the output is not a
//! terminal: the cluster, the CPU and memory of its hosts (each read with `one.host.info`), its
//! template, its hosts, networks and datastores, and its optimization PLAN with one row per
//! action when it has one.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::listing::{col, table};
use crate::market::{push, puts, template_str, utc};
use crate::objects::{err_text, int, text};
use crate::xml::Element;

/// `Cluster::PLAN_STATE`, for the plan and for each action.
const PLAN_STATES: [&str; 5] = ["READY", "APPLYING", "DONE", "ERROR", "TIMEOUT"];

/// Hosts read for CLUSTER RESOURCES, at most: a cluster with more is summed over these.
const MAX_HOSTS: usize = 10_000;

pub(crate) fn show(
    client: &Client,
    oid: i32,
    xml_out: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let xml = client
        .call_xml("one.cluster.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    let hosts = ids(&e, "HOSTS");
    let mut shares = Vec::new();
    for h in hosts.iter().take(MAX_HOSTS) {
        let body = client
            .call_xml("one.host.info", vec![Value::Int(*h as i32)])
            .map_err(err_text)?;
        let host = Element::parse(&body).map_err(|e| e.to_string())?;
        if let Some(share) = host.child("HOST_SHARE") {
            let n = |name: &str| int(share, name);
            shares.push([
                n("TOTAL_CPU"),
                n("CPU_USAGE"),
                n("TOTAL_MEM"),
                n("MEM_USAGE"),
            ]);
        }
    }
    out.write_all(layout(&e, &shares).as_bytes())
        .map_err(|e| e.to_string())
}

/// The ids listed under `<list><ID>..</ID>...</list>`.
fn ids(e: &Element, list: &str) -> Vec<i64> {
    e.child(list).map_or_else(Vec::new, |l| {
        l.children_named("ID")
            .filter_map(|i| i.text.trim().parse().ok())
            .collect()
    })
}

fn field(s: &mut String, name: &str, value: &str) {
    push(s, &format!("{name:<18}: {value}"));
}

/// The whole text; `shares` is each host's TOTAL_CPU, CPU_USAGE, TOTAL_MEM and MEM_USAGE.
fn layout(e: &Element, shares: &[[i64; 4]]) -> String {
    let mut s = String::new();
    push(&mut s, &format!("CLUSTER {} INFORMATION", text(e, "ID")));
    field(&mut s, "ID", text(e, "ID"));
    field(&mut s, "NAME", text(e, "NAME"));
    push(&mut s, "");
    push(&mut s, "CLUSTER RESOURCES");
    if e.child("HOSTS").is_some_and(|h| !h.children.is_empty()) {
        // Each host's figures are cut to whole CPUs and GB before they are summed.
        let sum = |i: usize, div: i64| shares.iter().map(|h| h[i] / div).sum::<i64>();
        let (total_cpu, used_cpu) = (sum(0, 100), sum(1, 100));
        let (total_ram, used_ram) = (sum(2, 1024 * 1024), sum(3, 1024 * 1024));
        push(&mut s, &format!("TOTAL CPUs: {total_cpu}"));
        push(&mut s, &format!("OCCUPIED CPUs: {used_cpu}"));
        push(&mut s, &format!("AVAILABLE CPUs: {}", total_cpu - used_cpu));
        push(&mut s, "");
        push(&mut s, &format!("TOTAL RAM: {total_ram}"));
        push(&mut s, &format!("OCCUPIED RAM: {used_ram}"));
        push(&mut s, &format!("AVAILABLE RAM: {}", total_ram - used_ram));
    }
    push(&mut s, "");
    push(&mut s, "CLUSTER TEMPLATE");
    puts(&mut s, &template_str(e));
    for list in ["HOSTS", "VNETS", "DATASTORES"] {
        push(&mut s, "");
        push(&mut s, list);
        for id in ids(e, list) {
            push(&mut s, &id.to_string());
        }
    }
    plan(e, &mut s);
    s
}

/// `onecluster show`'s PLAN section: nothing without a plan (`PLAN/STATE` missing or -1).
fn plan(e: &Element, s: &mut String) {
    let Some(p) = e.child("PLAN") else { return };
    let state = int(p, "STATE");
    if state < 0 {
        return;
    }
    let name = |st: i64| {
        usize::try_from(st)
            .ok()
            .and_then(|i| PLAN_STATES.get(i))
            .copied()
            .unwrap_or("")
    };
    push(s, "");
    push(s, &format!("PLAN: {}", name(state)));
    let columns = [
        col("VM", 6, false, false),
        col("ACTION", 10, true, false),
        col("HOST", 6, false, false),
        col("DS", 6, false, false),
        col("STATE", 8, false, false),
        col("START_TIME", 16, false, false),
    ];
    let or_dash = |v: &str| if v == "-1" { "-".into() } else { v.to_string() };
    let rows: Vec<Vec<String>> = p
        .children_named("ACTION")
        .map(|a| {
            let ts = int(a, "TIMESTAMP");
            vec![
                text(a, "VM_ID").to_string(),
                text(a, "OPERATION").to_string(),
                or_dash(text(a, "HOST_ID")),
                or_dash(text(a, "DS_ID")),
                name(int(a, "STATE")).to_string(),
                if ts == 0 { "-".into() } else { time_to_str(ts) },
            ]
        })
        .collect();
    for line in table(&columns, &rows) {
        push(s, &line);
    }
}

/// `OpenNebulaHelper.time_to_str`: `%m/%d %H:%M:%S` (UTC here).
fn time_to_str(t: i64) -> String {
    let ((_, m, d), (h, mi, s)) = utc(t);
    format!("{m:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn a_cluster_with_a_plan_shows_its_resources_lists_and_actions() {
        let xml = "<CLUSTER><ID>0</ID><NAME>default</NAME><HOSTS><ID>0</ID><ID>1</ID></HOSTS>\
            <DATASTORES><ID>0</ID><ID>1</ID></DATASTORES><VNETS/>\
            <TEMPLATE><RESERVED_CPU><![CDATA[]]></RESERVED_CPU><K><![CDATA[v]]></K></TEMPLATE>\
            <PLAN><ID>0</ID><STATE>1</STATE>\
            <ACTION><ID>0</ID><VM_ID>4</VM_ID><STATE>1</STATE><OPERATION>migrate</OPERATION>\
            <HOST_ID>1</HOST_ID><DS_ID>-1</DS_ID><TIMESTAMP>1709254923</TIMESTAMP></ACTION>\
            <ACTION><ID>1</ID><VM_ID>12</VM_ID><STATE>0</STATE><OPERATION>migrate</OPERATION>\
            <HOST_ID>0</HOST_ID><DS_ID>-1</DS_ID><TIMESTAMP>0</TIMESTAMP></ACTION></PLAN>\
            </CLUSTER>";
        let e = Element::parse(xml).unwrap();
        let shares = [
            [800, 150, 16 * 1024 * 1024, 1024 * 1024],
            [400, 0, 8 * 1024 * 1024, 0],
        ];
        let text = layout(&e, &shares);
        let expected = "CLUSTER 0 INFORMATION\n\
            ID                : 0\n\
            NAME              : default\n\
            \n\
            CLUSTER RESOURCES\n\
            TOTAL CPUs: 12\n\
            OCCUPIED CPUs: 1\n\
            AVAILABLE CPUs: 11\n\
            \n\
            TOTAL RAM: 24\n\
            OCCUPIED RAM: 1\n\
            AVAILABLE RAM: 23\n\
            \n\
            CLUSTER TEMPLATE\n\
            K=\"v\"\n\
            \n\
            HOSTS\n\
            0\n\
            1\n\
            \n\
            VNETS\n\
            \n\
            DATASTORES\n\
            0\n\
            1\n\
            \n\
            PLAN: APPLYING\n";
        assert!(text.starts_with(expected), "{text}");
        let table: Vec<&str> = text[expected.len()..].lines().collect();
        assert_eq!(
            table,
            [
                "    VM ACTION       HOST     DS    STATE       START_TIME",
                "     4 migrate         1      - APPLYING   03/01 01:02:03",
                "    12 migrate         0      -    READY                -",
            ]
        );
    }

    #[test]
    fn a_cluster_without_a_plan_or_hosts_has_no_plan_and_no_figures() {
        let xml = "<CLUSTER><ID>100</ID><NAME>c</NAME><HOSTS/><DATASTORES/><VNETS/>\
            <TEMPLATE/></CLUSTER>";
        let text = layout(&Element::parse(xml).unwrap(), &[]);
        assert!(
            !text.contains("PLAN") && !text.contains("TOTAL CPUs"),
            "{text}"
        );
        assert!(
            text.contains("CLUSTER RESOURCES\n\nCLUSTER TEMPLATE\n\n\nHOSTS\n"),
            "{text}"
        );
    }
}
