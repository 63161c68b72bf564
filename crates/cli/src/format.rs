//! Text output of `onezone show` and `onezone list`, laid out like the
//! OpenNebula Ruby CLI (`OneZoneHelper`): fixed-width cells truncated to their
//! width, joined by one space, trailing spaces stripped.

use std::fmt::Write;

use crate::zone::{RaftStatus, ZoneInfo};

/// Cell alignment.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// One table line: each cell truncated/padded to its width.
fn row(cells: &[(&str, usize, Align)]) -> String {
    let line: Vec<String> = cells
        .iter()
        .map(|&(text, width, align)| {
            let cut: String = text.chars().take(width).collect();
            match align {
                Align::Left => format!("{cut:<width$}"),
                Align::Right => format!("{cut:>width$}"),
            }
        })
        .collect();
    line.join(" ").trim_end().to_string()
}

/// Escapes a template value for `KEY="value"` output.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `onezone show` text. `raft[i]` is the status of `zone.servers[i]`, `None`
/// when that server could not be asked (printed as `error`).
pub fn format_zone_show(zone: &ZoneInfo, raft: &[Option<RaftStatus>]) -> String {
    use Align::{Left as L, Right as R};
    let mut out = String::new();
    let _ = writeln!(out, "ZONE {} INFORMATION", zone.id);
    let _ = writeln!(out, "{}", format!("{:<18}: {}", "ID", zone.id).trim_end());
    let _ = writeln!(
        out,
        "{}",
        format!("{:<18}: {}", "NAME", zone.name).trim_end()
    );
    out.push('\n');

    if !zone.servers.is_empty() {
        out.push_str("\nZONE SERVERS\n");
        let _ = writeln!(
            out,
            "{}",
            row(&[("ID", 2, R), ("NAME", 15, L), ("ENDPOINT", 63, L)])
        );
        for s in &zone.servers {
            let id = s.id.to_string();
            let _ = writeln!(
                out,
                "{}",
                row(&[(&id, 2, R), (&s.name, 15, L), (&s.endpoint, 63, L)])
            );
        }

        out.push_str("\nHA & FEDERATION SYNC STATUS\n");
        let widths = [2, 15, 10, 10, 10, 10, 5, 10];
        let header = [
            "ID",
            "NAME",
            "STATE",
            "TERM",
            "INDEX",
            "COMMIT",
            "VOTE",
            "FED_INDEX",
        ];
        let line = |cells: [&str; 8]| {
            let spec: Vec<(&str, usize, Align)> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| (*c, w, if i == 0 { R } else { L }))
                .collect();
            row(&spec)
        };
        let _ = writeln!(out, "{}", line(header));
        for (i, s) in zone.servers.iter().enumerate() {
            let id = s.id.to_string();
            let text = match raft.get(i).copied().flatten() {
                Some(r) => line([
                    &id,
                    &s.name,
                    r.state_name(),
                    &r.term.to_string(),
                    &r.log_index.to_string(),
                    &r.commit.to_string(),
                    &r.votedfor.to_string(),
                    &r.fedlog_index.to_string(),
                ]),
                None => line([&id, &s.name, "error", "-", "-", "-", "-", ""]),
            };
            let _ = writeln!(out, "{text}");
        }
    }

    out.push_str("\nZONE TEMPLATE\n");
    for (key, value) in &zone.template {
        let _ = writeln!(out, "{key}=\"{}\"", quote(value));
    }
    out
}

/// `onezone list` text. `fed_index[i]` is the FEDLOG_INDEX reported by the
/// endpoint of `zones[i]` (`-` when `None`); the `C` column marks the zones
/// whose ENDPOINT is `cli_endpoint`.
pub fn format_zone_list(
    zones: &[ZoneInfo],
    fed_index: &[Option<i64>],
    cli_endpoint: &str,
) -> String {
    use Align::{Left as L, Right as R};
    let name_w = zones
        .iter()
        .map(|z| z.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(25);
    let ep_w = zones
        .iter()
        .map(|z| z.endpoint().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0)
        .max(45);
    let mut out = String::new();
    let header = [
        ("C", 1, L),
        ("ID", 5, R),
        ("NAME", name_w, L),
        ("ENDPOINT", ep_w, L),
        ("FED_INDEX", 10, L),
        ("STAT", 4, L),
    ];
    let _ = writeln!(out, "{}", row(&header));
    for (i, z) in zones.iter().enumerate() {
        let endpoint = z.endpoint().unwrap_or("");
        let current = if endpoint == cli_endpoint { "*" } else { "" };
        let id = z.id.to_string();
        let fed = fed_index
            .get(i)
            .copied()
            .flatten()
            .map_or("-".to_string(), |f| f.to_string());
        let stat = wire::ZoneState::from_i64(z.state).map_or("-", wire::ZoneState::short_name);
        let cells = [
            (current, 1, L),
            (id.as_str(), 5, R),
            (z.name.as_str(), name_w, L),
            (endpoint, ep_w, L),
            (fed.as_str(), 10, L),
            (stat, 4, L),
        ];
        let _ = writeln!(out, "{}", row(&cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::ZoneServer;

    fn zone(servers: usize) -> ZoneInfo {
        ZoneInfo {
            id: 0,
            name: "OpenNebula".into(),
            state: 0,
            template: vec![("ENDPOINT".into(), "http://localhost:2633/RPC2".into())],
            servers: (0..servers)
                .map(|i| ZoneServer {
                    id: i as i64,
                    name: format!("server-{i}"),
                    endpoint: format!("http://192.168.150.{}:2633/RPC2", i + 1),
                })
                .collect(),
        }
    }

    fn raft(state: i64, term: i64, index: i64, commit: i64) -> Option<RaftStatus> {
        Some(RaftStatus {
            server_id: 0,
            state,
            term,
            votedfor: -1,
            commit,
            log_index: index,
            log_term: term,
            fedlog_index: -1,
        })
    }

    /// The four `onezone show 0` outputs of the HA setup guide, verbatim.
    const GUIDE_SHOW: [&str; 4] = [
        r#"ZONE 0 INFORMATION
ID                : 0
NAME              : OpenNebula


ZONE SERVERS
ID NAME            ENDPOINT
 0 server-0        http://192.168.150.1:2633/RPC2

HA & FEDERATION SYNC STATUS
ID NAME            STATE      TERM       INDEX      COMMIT     VOTE  FED_INDEX
 0 server-0        solo       0          -1         0          -1    -1

ZONE TEMPLATE
ENDPOINT="http://localhost:2633/RPC2"
"#,
        r#"ZONE 0 INFORMATION
ID                : 0
NAME              : OpenNebula


ZONE SERVERS
ID NAME            ENDPOINT
 0 server-0        http://192.168.150.1:2633/RPC2

HA & FEDERATION SYNC STATUS
ID NAME            STATE      TERM       INDEX      COMMIT     VOTE  FED_INDEX
 0 server-0        leader     1          3          3          -1    -1

ZONE TEMPLATE
ENDPOINT="http://localhost:2633/RPC2"
"#,
        r#"ZONE 0 INFORMATION
ID                : 0
NAME              : OpenNebula


ZONE SERVERS
ID NAME            ENDPOINT
 0 server-0        http://192.168.150.1:2633/RPC2
 1 server-1        http://192.168.150.2:2633/RPC2

HA & FEDERATION SYNC STATUS
ID NAME            STATE      TERM       INDEX      COMMIT     VOTE  FED_INDEX
 0 server-0        leader     1          19         19         -1    -1
 1 server-1        error      -          -          -          -

ZONE TEMPLATE
ENDPOINT="http://localhost:2633/RPC2"
"#,
        r#"ZONE 0 INFORMATION
ID                : 0
NAME              : OpenNebula


ZONE SERVERS
ID NAME            ENDPOINT
 0 server-0        http://192.168.150.1:2633/RPC2
 1 server-1        http://192.168.150.2:2633/RPC2

HA & FEDERATION SYNC STATUS
ID NAME            STATE      TERM       INDEX      COMMIT     VOTE  FED_INDEX
 0 server-0        leader     1          21         19         -1    -1
 1 server-1        follower   1          16         16         -1    -1

ZONE TEMPLATE
ENDPOINT="http://localhost:2633/RPC2"
"#,
    ];

    #[test]
    fn show_matches_guide_samples() {
        let cases = [
            (zone(1), vec![raft(0, 0, -1, 0)]),
            (zone(1), vec![raft(3, 1, 3, 3)]),
            (zone(2), vec![raft(3, 1, 19, 19), None]),
            (zone(2), vec![raft(3, 1, 21, 19), raft(2, 1, 16, 16)]),
        ];
        for (n, (z, r)) in cases.iter().enumerate() {
            assert_eq!(format_zone_show(z, r), GUIDE_SHOW[n], "sample {n}");
        }
    }

    /// The samples above are the guide's text (checked when the spec is around).
    #[test]
    fn samples_are_from_the_guide() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/spec/opennebula-ha-setup.rst"
        );
        let Ok(guide) = std::fs::read_to_string(path) else {
            return;
        };
        for sample in GUIDE_SHOW {
            let indented: String = sample
                .lines()
                .map(|l| {
                    if l.is_empty() {
                        "\n".to_string()
                    } else {
                        format!("  {l}\n")
                    }
                })
                .collect();
            assert!(
                guide.contains(&format!("  $ onezone show 0\n{indented}")),
                "{sample}"
            );
        }
        assert!(guide.contains("  C    ID NAME                      ENDPOINT\n  *     0 OpenNebula                http://localhost:2633/RPC2\n"));
    }

    #[test]
    fn show_literal_error_row_and_no_servers() {
        let text = format_zone_show(&zone(2), &[raft(3, 1, 19, 19), None]);
        assert!(
            text.contains("\n 1 server-1        error      -          -          -          -\n")
        );
        let text = format_zone_show(&zone(0), &[]);
        assert_eq!(
            text,
            "ZONE 0 INFORMATION\nID                : 0\nNAME              : OpenNebula\n\n\n\
             ZONE TEMPLATE\nENDPOINT=\"http://localhost:2633/RPC2\"\n"
        );
    }

    #[test]
    fn cells_are_truncated() {
        let mut z = zone(1);
        z.servers[0].name = "a-very-long-server-name".into();
        let text = format_zone_show(&z, &[None]);
        assert!(text.contains("\n 0 a-very-long-ser http://"), "{text}");
    }

    #[test]
    fn list_matches_guide_prefix() {
        let text = format_zone_list(&[zone(1)], &[None], "http://localhost:2633/RPC2");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("C    ID NAME                      ENDPOINT"));
        assert!(
            lines[1].starts_with("*     0 OpenNebula                http://localhost:2633/RPC2")
        );
        assert_eq!(lines[0], "C    ID NAME                      ENDPOINT                                      FED_INDEX  STAT");
        assert_eq!(lines[1], "*     0 OpenNebula                http://localhost:2633/RPC2                    -          on");
        let text = format_zone_list(&[zone(1)], &[Some(12)], "http://other/RPC2");
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("      0 OpenNebula"),
            "{text}"
        );
        assert!(text.contains(" 12         on"), "{text}");
    }
}
