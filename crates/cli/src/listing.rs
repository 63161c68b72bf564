//! `list` as OpenNebula's `OneHelper#list_pool` and `CLIHelper::ShowTable` print it when the
//! output is not a terminal: the table (no pager, no colours, no `--expand`), or the pool as
//! XML (`-x`) or JSON (`-j`), with `-l/--list`, `-f/--filter` (`--operator`), `--csv`
//! (`--csv-del`), `--no-header`, `--adjust`, `--size`, `-n/--numeric`, `-k/--kilobytes` and
//! (`onevm`) `--search`.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{filter_flag, Family, INFO_ALL};
use crate::objects::{err_text, Kind, Opts};
use crate::xml::Element;

/// One table column, as `CLIHelper::ShowTable` sizes it: `adjust` columns widen to fit their
/// data, the others cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) size: usize,
    pub(crate) left: bool,
    pub(crate) adjust: bool,
    /// Shown only when `-l` names it: not among the command's default columns.
    pub(crate) hidden: bool,
}

pub(crate) const fn col(name: &'static str, size: usize, left: bool, adjust: bool) -> Column {
    Column {
        name,
        size,
        left,
        adjust,
        hidden: false,
    }
}

/// A column left out of the default ones (`-l` shows it).
pub(crate) const fn hidden(c: Column) -> Column {
    Column { hidden: true, ..c }
}

/// A pool as a table: every column the command defines and one row of cells per object.
pub(crate) struct Table {
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: Vec<Vec<String>>,
}

/// The table's lines with no list option, header first.
pub(crate) fn table(columns: &[Column], rows: &[Vec<String>]) -> Vec<String> {
    let chosen: Vec<(usize, Column)> = columns.iter().copied().enumerate().collect();
    let rows: Vec<&Vec<String>> = rows.iter().collect();
    let chosen = sized(chosen, &rows, &ListOpts::default());
    text_lines(&chosen, &rows, false)
}

/// The list options given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListOpts {
    pub(crate) xml: bool,
    pub(crate) json: bool,
    pub(crate) csv: bool,
    pub(crate) csv_del: String,
    /// `-l`: the columns, upper-cased, in their order.
    pub(crate) columns: Option<Vec<String>>,
    pub(crate) filters: Vec<String>,
    /// `--operator OR`: a row passes when any filter matches (AND by default).
    pub(crate) any: bool,
    pub(crate) no_header: bool,
    pub(crate) search: Option<String>,
    pub(crate) numeric: bool,
    pub(crate) kilobytes: bool,
    pub(crate) adjust: Vec<String>,
    pub(crate) sizes: Vec<(String, usize)>,
}

/// OptionParser's `Array`: the value split at commas (empty fields at the end dropped).
fn array(value: Option<String>) -> Option<Vec<String>> {
    value.map(|v| {
        let mut parts: Vec<String> = v.split(',').map(String::from).collect();
        while parts.last().is_some_and(String::is_empty) {
            parts.pop();
        }
        parts
    })
}

impl ListOpts {
    pub(crate) fn from(o: &Opts) -> ListOpts {
        let upper = |v: Vec<String>| v.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>();
        let sizes = array(o.value(&["-s", "--size"]))
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let (name, size) = s.split_once('=').unwrap_or((s, ""));
                (name.to_uppercase(), ruby_to_i(size))
            })
            .collect();
        ListOpts {
            xml: o.flag(&["-x", "--xml"]),
            json: o.flag(&["-j", "--json"]),
            csv: o.flag(&["--csv"]),
            csv_del: o.value(&["--csv-del"]).unwrap_or_else(|| ",".into()),
            columns: array(o.value(&["-l", "--list"])).map(upper),
            filters: array(o.value(&["-f", "--filter"])).unwrap_or_default(),
            any: o
                .value(&["--operator"])
                .is_some_and(|op| op.eq_ignore_ascii_case("OR")),
            no_header: o.flag(&["--no-header"]),
            search: o.value(&["--search"]),
            numeric: o.flag(&["-n", "--numeric"]),
            kilobytes: o.flag(&["-k", "--kilobytes"]),
            adjust: array(o.value(&["--adjust"])).map(upper).unwrap_or_default(),
            sizes,
        }
    }
}

/// Ruby's `String#to_i` for a size: the leading digits, 0 without any.
fn ruby_to_i(s: &str) -> usize {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// The commands whose `list` takes OpenNebula's `[filterflag]` argument.
fn takes_filter_flag(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Vm
            | Kind::Template
            | Kind::Hook
            | Kind::MarketApp
            | Kind::VnTemplate
            | Kind::VmGroup
            | Kind::Vrouter
            | Kind::BackupJob
            | Kind::Image
            | Kind::Vnet
            | Kind::SecGroup
    )
}

/// `list [filterflag]` with its options.
pub(crate) fn list(
    kind: Kind,
    o: &Opts,
    client: &Client,
    out: &mut dyn Write,
) -> Result<(), String> {
    let lo = ListOpts::from(o);
    if lo.search.is_some() && kind != Kind::Vm {
        return Err("invalid option: --search".into());
    }
    let filter = match o.words.get(1) {
        Some(word) if takes_filter_flag(kind) && lo.search.is_none() => filter_flag(client, word)?,
        _ => INFO_ALL,
    };
    let xml = pool_xml(kind, client, filter, lo.search.as_deref())?;
    if lo.xml {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    if lo.json {
        let json = crate::json::pool_json(&xml)?;
        return writeln!(out, "{json}").map_err(|e| e.to_string());
    }
    let pool = Element::parse(&xml).map_err(|e| e.to_string())?;
    let table = crate::tables::pool_table(kind, &pool, &lo);
    write_lines(out, &render(&table, &lo)?)
}

/// The pool document; with a `--search` query, the objects oned found it to match
/// (`VirtualMachinePool#info_search`: the CLI trusts the server's answer).
fn pool_xml(
    kind: Kind,
    client: &Client,
    filter: i32,
    search: Option<&str>,
) -> Result<String, String> {
    let (method, mut params) = Family::of(kind).pool_call(filter);
    if let Some(query) = search {
        params.push(Value::String(query.to_string()));
    }
    client.call_xml(method, params).map_err(err_text)
}

pub(crate) fn write_lines(out: &mut dyn Write, lines: &[String]) -> Result<(), String> {
    lines
        .iter()
        .try_for_each(|l| writeln!(out, "{l}"))
        .map_err(|e| e.to_string())
}

/// The table's lines with the list options: filtered rows, the chosen columns, as text or
/// CSV, with or without the header.
pub(crate) fn render(table: &Table, lo: &ListOpts) -> Result<Vec<String>, String> {
    let rows = filter_rows(table, lo)?;
    let chosen = chosen_columns(&table.columns, lo)?;
    if lo.csv {
        Ok(csv_lines(&chosen, &rows, lo))
    } else {
        let chosen = sized(chosen, &rows, lo);
        Ok(text_lines(&chosen, &rows, lo.no_header))
    }
}

/// `-l`'s columns (or all), each with its index in the rows.
fn chosen_columns(columns: &[Column], lo: &ListOpts) -> Result<Vec<(usize, Column)>, String> {
    let Some(names) = &lo.columns else {
        return Ok(columns
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .collect());
    };
    names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| c.name == name)
                .map(|i| (i, columns[i]))
                .ok_or_else(|| format!("Column {name} not defined."))
        })
        .collect()
}

/// `--adjust` and `--size` over the columns' own sizes, as `update_columns_size`.
fn sized(
    chosen: Vec<(usize, Column)>,
    rows: &[&Vec<String>],
    lo: &ListOpts,
) -> Vec<(usize, Column)> {
    chosen
        .into_iter()
        .map(|(i, mut c)| {
            let widest = rows.iter().map(|r| cell_len(r, i)).max();
            let adjust = c.adjust || lo.adjust.iter().any(|a| a == c.name);
            if let Some(w) = widest.filter(|&w| adjust && w > c.size) {
                c.size = w;
                c.adjust = true;
            }
            if let Some((_, size)) = lo.sizes.iter().rev().find(|(n, _)| n == c.name) {
                c.size = *size;
                c.adjust = false;
            }
            (i, c)
        })
        .collect()
}

fn cell_len(row: &[String], i: usize) -> usize {
    row.get(i).map_or(0, |c| c.chars().count())
}

/// `format_str`: cut to the column (unless it adjusts), padded to it.
fn cell(c: &Column, text: &str) -> String {
    let w = c.size;
    let t: String = if c.adjust {
        text.to_string()
    } else {
        text.chars().take(w).collect()
    };
    if c.left {
        format!("{t:<w$}")
    } else {
        format!("{t:>w$}")
    }
}

/// The header (unless `no_header`) and one line a row, without trailing blanks.
fn text_lines(chosen: &[(usize, Column)], rows: &[&Vec<String>], no_header: bool) -> Vec<String> {
    let line = |cells: Vec<String>| cells.join(" ").trim_end().to_string();
    let mut lines = Vec::new();
    if !no_header {
        lines.push(line(chosen.iter().map(|(_, c)| cell(c, c.name)).collect()));
    }
    for row in rows {
        let cells = chosen
            .iter()
            .map(|(i, c)| cell(c, row.get(*i).map_or("", String::as_str)))
            .collect();
        lines.push(line(cells));
    }
    lines
}

/// `--csv`: the column names then each row, as Ruby's `CSV.generate_line`.
fn csv_lines(chosen: &[(usize, Column)], rows: &[&Vec<String>], lo: &ListOpts) -> Vec<String> {
    let del = lo.csv_del.as_str();
    let mut lines = Vec::new();
    if !lo.no_header {
        let names: Vec<String> = chosen.iter().map(|(_, c)| csv_field(c.name, del)).collect();
        lines.push(names.join(del));
    }
    for row in rows {
        let cells: Vec<String> = chosen
            .iter()
            .map(|(i, _)| csv_field(row.get(*i).map_or("", String::as_str), del))
            .collect();
        lines.push(cells.join(del));
    }
    lines
}

/// One CSV field: quoted (quotes doubled) when empty or holding the separator, a quote or a
/// line break.
pub(crate) fn csv_field(value: &str, del: &str) -> String {
    let quotable = value.is_empty()
        || value.contains(['"', '\r', '\n'])
        || (!del.is_empty() && value.contains(del));
    if quotable {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// `CLIHelper::FILTER_OPS`, in the order the filter's pattern tries them: as in OpenNebula,
/// `A<=5` reads as `A` `<` `=5`, since `<` is tried first.
const FILTER_OPS: [&str; 7] = ["=", "!=", "<", "<=", ">", ">=", "~"];

/// One `-f` expression: the column's index, the operator and the value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stem {
    index: usize,
    op: &'static str,
    right: String,
}

/// `/^(.*?)(=|!=|<|<=|>|>=|~)(.*?)$/`: the first operator from the left.
fn split_expression(expr: &str) -> Option<(&str, &'static str, &str)> {
    expr.char_indices().find_map(|(i, _)| {
        FILTER_OPS
            .iter()
            .find(|op| expr[i..].starts_with(**op))
            .map(|op| (&expr[..i], *op, &expr[i + op.len()..]))
    })
}

pub(crate) fn parse_filter(expr: &str, columns: &[Column]) -> Result<Stem, String> {
    let (left, op, right) =
        split_expression(expr).ok_or_else(|| format!("Expression '{expr}' incorrect"))?;
    let wanted = left.to_uppercase();
    let index = columns
        .iter()
        .position(|c| c.name == wanted)
        .ok_or_else(|| format!("Column '{left}' not found"))?;
    Ok(Stem {
        index,
        op,
        right: right.to_string(),
    })
}

/// The cell against the value, as Ruby's String operators (`~` is `include?`).
fn holds(stem: &Stem, row: &[String]) -> bool {
    let cell = row.get(stem.index).map_or("", String::as_str);
    let right = stem.right.as_str();
    match stem.op {
        "=" => cell == right,
        "!=" => cell != right,
        "<" => cell < right,
        "<=" => cell <= right,
        ">" => cell > right,
        ">=" => cell >= right,
        _ => cell.contains(right),
    }
}

/// `filter_data!`: the rows every filter (with `--operator OR`, any) lets through.
fn filter_rows<'a>(table: &'a Table, lo: &ListOpts) -> Result<Vec<&'a Vec<String>>, String> {
    let stems = lo
        .filters
        .iter()
        .map(|f| parse_filter(f, &table.columns))
        .collect::<Result<Vec<_>, _>>()?;
    let passes = |row: &Vec<String>| {
        if stems.is_empty() {
            true
        } else if lo.any {
            stems.iter().any(|s| holds(s, row))
        } else {
            stems.iter().all(|s| holds(s, row))
        }
    };
    Ok(table.rows.iter().filter(|r| passes(r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            columns: vec![
                col("ID", 3, false, true),
                col("NAME", 6, true, false),
                col("STAT", 4, true, false),
            ],
            rows: vec![
                vec!["0".into(), "web".into(), "runn".into()],
                vec!["1".into(), "database-1".into(), "pend".into()],
                vec!["12".into(), "web,2".into(), "".into()],
            ],
        }
    }

    fn opts(f: impl FnOnce(&mut ListOpts)) -> ListOpts {
        let mut lo = ListOpts {
            csv_del: ",".into(),
            ..ListOpts::default()
        };
        f(&mut lo);
        lo
    }

    #[test]
    fn the_table_cuts_and_pads_as_showtable() {
        assert_eq!(
            render(&sample(), &opts(|_| ())).unwrap(),
            [
                " ID NAME   STAT",
                "  0 web    runn",
                "  1 databa pend",
                " 12 web,2"
            ]
        );
        let no_header = render(&sample(), &opts(|o| o.no_header = true)).unwrap();
        assert_eq!(no_header.len(), 3);
        assert_eq!(no_header[0], "  0 web    runn");
    }

    #[test]
    fn columns_are_chosen_in_the_order_given() {
        let lo = opts(|o| o.columns = Some(vec!["STAT".into(), "ID".into()]));
        assert_eq!(
            render(&sample(), &lo).unwrap(),
            ["STAT  ID", "runn   0", "pend   1", "      12"]
        );
        let lo = opts(|o| o.columns = Some(vec!["ID".into(), "IP".into()]));
        assert_eq!(render(&sample(), &lo), Err("Column IP not defined.".into()));
    }

    #[test]
    fn sizes_and_adjust_change_the_columns() {
        let lo = opts(|o| {
            o.adjust = vec!["NAME".into()];
            o.sizes = vec![("ID".into(), 1)];
        });
        assert_eq!(
            render(&sample(), &lo).unwrap(),
            [
                "I NAME       STAT",
                "0 web        runn",
                "1 database-1 pend",
                "1 web,2"
            ]
        );
    }

    #[test]
    fn csv_quotes_as_ruby_csv() {
        assert_eq!(csv_field("web", ","), "web");
        assert_eq!(csv_field("", ","), "\"\"");
        assert_eq!(csv_field("a,b", ","), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"", ","), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines", ","), "\"two\nlines\"");
        assert_eq!(csv_field("a,b", ";"), "a,b");
        assert_eq!(csv_field("a;b", ";"), "\"a;b\"");
        let lo = opts(|o| o.csv = true);
        assert_eq!(
            render(&sample(), &lo).unwrap(),
            [
                "ID,NAME,STAT",
                "0,web,runn",
                "1,database-1,pend",
                "12,\"web,2\",\"\""
            ]
        );
        let lo = opts(|o| {
            o.csv = true;
            o.no_header = true;
            o.csv_del = ";".into();
            o.columns = Some(vec!["NAME".into()]);
        });
        assert_eq!(
            render(&sample(), &lo).unwrap(),
            ["web", "database-1", "web,2"]
        );
    }

    #[test]
    fn filter_expressions_are_read_as_opennebulas_pattern() {
        assert_eq!(split_expression("NAME=web"), Some(("NAME", "=", "web")));
        assert_eq!(split_expression("NAME!=web"), Some(("NAME", "!=", "web")));
        assert_eq!(split_expression("NAME=a=b"), Some(("NAME", "=", "a=b")));
        assert_eq!(split_expression("ID<=5"), Some(("ID", "<", "=5")));
        assert_eq!(split_expression("NAME~we"), Some(("NAME", "~", "we")));
        assert_eq!(split_expression("NAME"), None);
        let columns = sample().columns;
        assert_eq!(
            parse_filter("name=x", &columns),
            Ok(Stem {
                index: 1,
                op: "=",
                right: "x".into()
            })
        );
        assert_eq!(
            parse_filter("ip=1", &columns),
            Err("Column 'ip' not found".into())
        );
        assert_eq!(
            parse_filter("bad", &columns),
            Err("Expression 'bad' incorrect".into())
        );
    }

    #[test]
    fn filters_keep_the_matching_rows() {
        let names = |lo: &ListOpts| -> Vec<String> {
            let t = sample();
            filter_rows(&t, lo)
                .unwrap()
                .iter()
                .map(|r| r[1].clone())
                .collect()
        };
        let f = |fs: &[&str]| opts(|o| o.filters = fs.iter().map(|s| s.to_string()).collect());
        assert_eq!(names(&f(&["NAME=web"])), ["web"]);
        assert_eq!(names(&f(&["NAME!=web"])), ["database-1", "web,2"]);
        assert_eq!(names(&f(&["NAME~web"])), ["web", "web,2"]);
        assert_eq!(names(&f(&["ID>0"])), ["database-1", "web,2"]);
        // Strings, compared as Ruby's: "12" < "2".
        assert_eq!(names(&f(&["ID<2"])), ["web", "database-1", "web,2"]);
        assert_eq!(names(&f(&["NAME~web", "STAT=runn"])), ["web"]);
        let mut or = f(&["NAME=web", "STAT=pend"]);
        or.any = true;
        assert_eq!(names(&or), ["web", "database-1"]);
    }
}
