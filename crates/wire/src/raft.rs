//! `one.zone.raftstatus`: the `<RAFT>` document a server answers and `onezone` reads, and
//! OpenNebula's Raft state codes (`include/RaftManager.h`, `RaftManager::State`).

use quick_xml::events::Event;
use quick_xml::Reader;

/// A server's Raft state as `<RAFT><STATE>` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum RaftState {
    Solo = 0,
    Candidate = 1,
    Follower = 2,
    Leader = 3,
    /// OneHA only: a server added to the zone that is still catching up, not yet a voter.
    /// OpenNebula has no such state; its `onezone` prints any number above 3 as `error`.
    Learner = 4,
}

impl RaftState {
    pub const ALL: &'static [RaftState] = &[
        RaftState::Solo,
        RaftState::Candidate,
        RaftState::Follower,
        RaftState::Leader,
        RaftState::Learner,
    ];

    pub const fn as_i64(self) -> i64 {
        self as i64
    }

    pub fn from_i64(value: i64) -> Option<RaftState> {
        Self::ALL.iter().copied().find(|s| s.as_i64() == value)
    }

    /// The word `onezone show` prints in its STATE column.
    pub const fn name(self) -> &'static str {
        match self {
            RaftState::Solo => "solo",
            RaftState::Candidate => "candidate",
            RaftState::Follower => "follower",
            RaftState::Leader => "leader",
            RaftState::Learner => "learner",
        }
    }

    /// [`RaftState::name`] of a `<STATE>` number, `error` for a number no state has (as
    /// OpenNebula's `onezone`).
    pub fn name_of(value: i64) -> &'static str {
        Self::from_i64(value).map_or("error", RaftState::name)
    }
}

/// Why a `<RAFT>` document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftStatusError {
    #[error("invalid XML: {0}")]
    Xml(String),
    #[error("invalid XML: the root element is <{0}>, not <RAFT>")]
    NotRaft(String),
    #[error("invalid XML: <RAFT> has no <{0}>")]
    Missing(&'static str),
    #[error("invalid XML: <RAFT>/<{0}> is not an integer: {1:?}")]
    NotAnInteger(&'static str, String),
}

/// One server's `one.zone.raftstatus` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// Id of the answering server (-1 on a solo server).
    pub server_id: i64,
    /// A [`RaftState`] number; kept as a number so an unknown one still reads (as `error`).
    pub state: i64,
    /// Current term.
    pub term: i64,
    /// Server voted for in the current term (-1 if none).
    pub votedfor: i64,
    /// Commit index.
    pub commit: i64,
    /// Index of the last log record.
    pub log_index: i64,
    /// Term of the last log record.
    pub log_term: i64,
    /// Last federation log index (-1 unless federated).
    pub fedlog_index: i64,
}

/// The children of `<RAFT>`, in OpenNebula's order (`RaftManager::to_xml`).
const FIELDS: [&str; 8] = [
    "SERVER_ID",
    "STATE",
    "TERM",
    "VOTEDFOR",
    "COMMIT",
    "LOG_INDEX",
    "LOG_TERM",
    "FEDLOG_INDEX",
];

impl RaftStatus {
    fn values(&self) -> [i64; 8] {
        [
            self.server_id,
            self.state,
            self.term,
            self.votedfor,
            self.commit,
            self.log_index,
            self.log_term,
            self.fedlog_index,
        ]
    }

    fn from_values(v: [i64; 8]) -> RaftStatus {
        let [server_id, state, term, votedfor, commit, log_index, log_term, fedlog_index] = v;
        RaftStatus {
            server_id,
            state,
            term,
            votedfor,
            commit,
            log_index,
            log_term,
            fedlog_index,
        }
    }

    /// The [`RaftState`] of [`RaftStatus::state`], `None` for an unknown number.
    pub fn raft_state(&self) -> Option<RaftState> {
        RaftState::from_i64(self.state)
    }

    /// `solo`, `candidate`, `follower`, `leader`, `learner` or `error`.
    pub fn state_name(&self) -> &'static str {
        RaftState::name_of(self.state)
    }

    /// The `<RAFT>` document, compact, children in OpenNebula's order.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(192);
        out.push_str("<RAFT>");
        for (name, value) in FIELDS.iter().zip(self.values()) {
            out.push_str(&format!("<{name}>{value}</{name}>"));
        }
        out.push_str("</RAFT>");
        out
    }

    /// Reads a `<RAFT>` document; every field is required, in any order (the first of a
    /// repeated one counts), text or CDATA, surrounding blanks ignored.
    pub fn from_xml(xml: &str) -> Result<RaftStatus, RaftStatusError> {
        let texts = children_text(xml)?;
        let mut values = [0i64; 8];
        for (slot, name) in values.iter_mut().zip(FIELDS) {
            let text = texts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or(RaftStatusError::Missing(name))?;
            let text = text.trim();
            *slot = match (text.parse(), name) {
                (Ok(v), _) => v,
                // OpenNebula's "no federated record yet" is UINT64_MAX.
                (Err(_), "FEDLOG_INDEX") if text.parse::<u64>().is_ok() => -1,
                (Err(_), _) => return Err(RaftStatusError::NotAnInteger(name, text.to_string())),
            };
        }
        Ok(RaftStatus::from_values(values))
    }
}

/// (name, text) of each child element of a `<RAFT>` root, in document order.
fn children_text(xml: &str) -> Result<Vec<(String, String)>, RaftStatusError> {
    let xml_err = |e: &dyn std::fmt::Display| RaftStatusError::Xml(e.to_string());
    let mut reader = Reader::from_str(xml);
    let mut children: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    let check_root = |name: &[u8]| {
        if name == b"RAFT" {
            Ok(())
        } else {
            Err(RaftStatusError::NotRaft(
                String::from_utf8_lossy(name).into_owned(),
            ))
        }
    };
    loop {
        match reader.read_event().map_err(|e| xml_err(&e))? {
            Event::Start(start) => {
                if depth == 0 {
                    check_root(start.name().as_ref())?;
                } else if depth == 1 {
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    children.push((name, String::new()));
                }
                depth += 1;
            }
            Event::Empty(start) => {
                if depth == 0 {
                    check_root(start.name().as_ref())?;
                    return Ok(children);
                }
                if depth == 1 {
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    children.push((name, String::new()));
                }
            }
            Event::Text(text) if depth == 2 => {
                let text = text.unescape().map_err(|e| xml_err(&e))?;
                if let Some((_, t)) = children.last_mut() {
                    t.push_str(&text);
                }
            }
            Event::CData(data) if depth == 2 => {
                if let Some((_, t)) = children.last_mut() {
                    t.push_str(&String::from_utf8_lossy(&data.into_inner()));
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| RaftStatusError::Xml("unbalanced end tag".into()))?;
                if depth == 0 {
                    return Ok(children);
                }
            }
            Event::Eof => return Err(RaftStatusError::Xml("unexpected end of document".into())),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `one.zone.raftstatus` answered before this crate existed (oned's `cluster.rs`
    /// format string), for a leader and for a solo server.
    const LEADER: &str = "<RAFT><SERVER_ID>0</SERVER_ID><STATE>3</STATE><TERM>1</TERM>\
        <VOTEDFOR>0</VOTEDFOR><COMMIT>3</COMMIT><LOG_INDEX>3</LOG_INDEX><LOG_TERM>1</LOG_TERM>\
        <FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>";
    const SOLO: &str = "<RAFT><SERVER_ID>-1</SERVER_ID><STATE>0</STATE><TERM>0</TERM>\
        <VOTEDFOR>-1</VOTEDFOR><COMMIT>0</COMMIT><LOG_INDEX>-1</LOG_INDEX><LOG_TERM>-1</LOG_TERM>\
        <FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>";

    #[test]
    fn raftstatus_xml_round_trips_byte_for_byte() {
        let leader = RaftStatus {
            server_id: 0,
            state: RaftState::Leader.as_i64(),
            term: 1,
            votedfor: 0,
            commit: 3,
            log_index: 3,
            log_term: 1,
            fedlog_index: -1,
        };
        assert_eq!(leader.to_xml(), LEADER);
        assert_eq!(RaftStatus::from_xml(LEADER), Ok(leader));
        let solo = RaftStatus::from_xml(SOLO).unwrap();
        assert_eq!(solo.to_xml(), SOLO);
        assert_eq!(solo.raft_state(), Some(RaftState::Solo));
    }

    #[test]
    fn opennebulas_no_federated_record_reads_as_minus_one() {
        let xml = LEADER.replace(
            "<FEDLOG_INDEX>-1</FEDLOG_INDEX>",
            "<FEDLOG_INDEX>18446744073709551615</FEDLOG_INDEX>",
        );
        assert_eq!(RaftStatus::from_xml(&xml).unwrap().fedlog_index, -1);
        let bad = LEADER.replace("<TERM>1</TERM>", "<TERM>18446744073709551615</TERM>");
        assert!(RaftStatus::from_xml(&bad).is_err());
    }

    #[test]
    fn raftstatus_reads_cdata_blanks_and_any_order_and_names_what_is_wrong() {
        let r = RaftStatus::from_xml(
            "<RAFT>\n <STATE><![CDATA[2]]></STATE><SERVER_ID> 4 </SERVER_ID><TERM>7</TERM>\
             <VOTEDFOR>1</VOTEDFOR><COMMIT>9</COMMIT><LOG_INDEX>9</LOG_INDEX><LOG_TERM>7</LOG_TERM>\
             <FEDLOG_INDEX>-1</FEDLOG_INDEX><EXTRA><A/></EXTRA></RAFT>",
        )
        .unwrap();
        assert_eq!((r.server_id, r.state_name(), r.term), (4, "follower", 7));
        assert_eq!(
            RaftStatus::from_xml("<RAFT><SERVER_ID>0</SERVER_ID></RAFT>"),
            Err(RaftStatusError::Missing("STATE"))
        );
        assert!(matches!(
            RaftStatus::from_xml(&LEADER.replace("<TERM>1<", "<TERM>x<")),
            Err(RaftStatusError::NotAnInteger("TERM", _))
        ));
        assert!(matches!(
            RaftStatus::from_xml("<ZONE/>"),
            Err(RaftStatusError::NotRaft(_))
        ));
        assert!(RaftStatus::from_xml("<RAFT><SERVER_ID>0").is_err());
        assert!(RaftStatus::from_xml("").is_err());
    }

    /// `include/RaftManager.h`, `enum State`, and OneHA's learner.
    #[test]
    fn raft_states_are_opennebulas() {
        let table = [
            (0, "solo"),
            (1, "candidate"),
            (2, "follower"),
            (3, "leader"),
            (4, "learner"),
        ];
        for (value, name) in table {
            let state = RaftState::from_i64(value).unwrap();
            assert_eq!((state.as_i64(), state.name()), (value, name));
        }
        assert_eq!(RaftState::ALL.len(), table.len());
        assert_eq!(RaftState::from_i64(5), None);
        assert_eq!(RaftState::name_of(7), "error");
        assert_eq!(RaftState::name_of(-1), "error");
    }
}
