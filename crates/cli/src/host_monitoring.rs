//! `onehost monitoring <host> <attr>`: one figure of a host's monitoring records over time, as
//! `OneHostHelper#monitoring` prints it with `--table` or `--csv <separator>` (dates in UTC).
//! The default, a gnuplot drawing, is refused as OpenNebula refuses it without gnuplot.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{Family, Resolver};
use crate::listing::{col, render, write_lines, ListOpts, Table};
use crate::objects::{err_text, Opts};
use crate::xml::Element;

/// The subcommand's options that take a value.
pub(crate) const VALUED: &[&str] = &["--start", "--end", "--unit", "--n", "--csv"];

/// `OneHostHelper::MONITORING`: the element each figure is under.
fn section(attr: &str) -> Option<&'static str> {
    match attr {
        "FREE_CPU" | "FREE_MEMORY" | "USED_CPU" | "USED_MEMORY" => Some("CAPACITY"),
        "NETRX" | "NETTX" => Some("SYSTEM"),
        a if a.starts_with("FREE_") || a.starts_with("USED_") => Some("CAPACITY"),
        a if a.starts_with("NET") => Some("SYSTEM"),
        _ => None,
    }
}

/// The first element named `name` under `e`, at any depth.
fn descendant<'a>(e: &'a Element, name: &str) -> Option<&'a Element> {
    e.children
        .iter()
        .find(|c| c.name == name)
        .or_else(|| e.children.iter().find_map(|c| descendant(c, name)))
}

/// Ruby's `Float#to_s` for the values printed here.
fn ruby_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn strftime(t: i64, with_date: bool) -> String {
    let z = t.div_euclid(86400);
    let s = t.rem_euclid(86400);
    let (h, m) = (s / 3600, s / 60 % 60);
    if !with_date {
        return format!("{h:02}:{m:02}");
    }
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{d:02}/{mo:02}/{y} {h:02}:{m:02}")
}

pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let word = o.words.get(1).ok_or("missing the host")?;
    let attr = o
        .words
        .get(2)
        .ok_or("missing the attribute")?
        .to_uppercase();
    let id = Resolver::other(client, Family::Host).id(word)?;
    let unit = o.value(&["--unit"]).unwrap_or_else(|| "G".into());
    let power = ["K", "M", "G", "T"]
        .iter()
        .position(|u| *u == unit)
        .ok_or_else(|| format!("Invalid unit `{unit}`"))?;
    let n = match o.value(&["--n"]) {
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("invalid argument: --n {v}"))?,
        None => 8,
    };
    client
        .call_xml(wire::method::HOST_INFO, vec![Value::Int(id)])
        .map_err(err_text)?;
    let xml = client
        .call_xml("one.host.monitoring", vec![Value::Int(id)])
        .map_err(err_text)?;
    let doc = Element::parse(&xml).map_err(|e| e.to_string())?;
    let mut data: Vec<(i64, String)> = doc
        .children_named("MONITORING")
        .filter(|m| m.child("ID").is_some_and(|i| i.text == id.to_string()))
        .filter_map(|m| {
            let ts = m.child("TIMESTAMP")?.text.trim().parse::<i64>().ok()?;
            let value = match section(&attr) {
                Some(s) => m.child(s)?.child(&attr)?,
                None => descendant(m, &attr)?,
            };
            Some((ts, value.text.clone()))
        })
        .collect();
    if data.is_empty() {
        return Err("No monitoring data found".into());
    }
    let date = |name: &str| {
        o.value(&[name])
            .map(|d| crate::acct::parse_time(&d))
            .transpose()
    };
    let start = date("--start")?.unwrap_or_else(|| data.iter().map(|d| d.0).min().unwrap_or(0));
    let end = date("--end")?.unwrap_or_else(|| data.iter().map(|d| d.0).max().unwrap_or(0));
    data.retain(|(t, _)| *t >= start && *t <= end);
    if data.is_empty() {
        return Err(format!(
            "No monitoring data found between {} and {}",
            strftime(start, true),
            strftime(end, true)
        ));
    }
    let memory = attr.contains("_MEMORY");
    let mut title = format!("Host {id} {attr} ");
    if memory {
        title.push_str(&format!("in {unit}B "));
    }
    title.push_str(&format!(
        "from {} to {}",
        strftime(start, true),
        strftime(end, true)
    ));
    let skip = data.len().saturating_sub(n);
    let points: Vec<(String, String)> = data[skip..]
        .iter()
        .map(|(t, v)| {
            let y = if memory {
                let bytes = v.trim().parse::<i64>().unwrap_or(0) as f64;
                let scaled = bytes / 1024f64.powi(power as i32);
                format!("{} {unit}B", ruby_float((scaled * 100.0).round() / 100.0))
            } else {
                v.clone()
            };
            (strftime(*t, false), y)
        })
        .collect();
    let io = |e: std::io::Error| e.to_string();
    if o.flag(&["--table"]) {
        write!(out, "\n{title}\n\n").map_err(io)?;
        let table = Table {
            columns: vec![col("TIME", 8, false, false), col("VALUE", 8, false, false)],
            rows: points.into_iter().map(|(x, y)| vec![x, y]).collect(),
        };
        return write_lines(out, &render(&table, &ListOpts::default())?);
    }
    if let Some(sep) = o.value(&["--csv"]) {
        writeln!(out, "TIME{sep}VALUE").map_err(io)?;
        for (x, y) in points {
            writeln!(out, "{x}{sep}{y}").map_err(io)?;
        }
        return Ok(());
    }
    Err("Gnuplot gem is not installed, run `gem install gnuplot` to install it".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_as_the_helper_prints_them() {
        assert_eq!(ruby_float(16.0), "16.0");
        assert_eq!(ruby_float(12.34), "12.34");
        assert_eq!(strftime(1709254923, true), "01/03/2024 01:02");
        assert_eq!(strftime(1709254923, false), "01:02");
        assert_eq!(section("FREE_MEMORY"), Some("CAPACITY"));
        assert_eq!(section("NETTX"), Some("SYSTEM"));
    }
}
