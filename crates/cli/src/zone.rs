//! Zone and Raft status documents returned by `one.zone.info`,
//! `one.zonepool.info` and `one.zone.raftstatus` (the latter is `wire`'s, shared with oned).

use crate::xml::{Element, XmlError};
pub use wire::{RaftState, RaftStatus};

/// One server of a zone's `SERVER_POOL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneServer {
    /// Server id inside the zone (`SERVER_POOL/SERVER/ID`).
    pub id: i64,
    /// Server name.
    pub name: String,
    /// XML-RPC endpoint of the server, e.g. `http://192.168.150.1:2633/RPC2`.
    pub endpoint: String,
}

/// A zone as returned by `one.zone.info` (`<ZONE>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Zone id.
    pub id: i64,
    /// Zone name.
    pub name: String,
    /// Zone state: 0 enabled, 1 disabled.
    pub state: i64,
    /// Simple attributes of `<TEMPLATE>` in document order (vector attributes are skipped).
    pub template: Vec<(String, String)>,
    /// Servers of `<SERVER_POOL>` in document order (empty on a solo front-end).
    pub servers: Vec<ZoneServer>,
}

impl ZoneInfo {
    /// Parses a `<ZONE>` document.
    pub fn from_xml(xml: &str) -> Result<ZoneInfo, XmlError> {
        Self::from_element(&Element::parse(xml)?.expect("ZONE")?)
    }

    /// Parses a `<ZONE_POOL>` document (`one.zonepool.info`).
    pub fn pool_from_xml(xml: &str) -> Result<Vec<ZoneInfo>, XmlError> {
        let pool = Element::parse(xml)?.expect("ZONE_POOL")?;
        pool.children_named("ZONE")
            .map(Self::from_element)
            .collect()
    }

    fn from_element(el: &Element) -> Result<ZoneInfo, XmlError> {
        let template = el
            .child("TEMPLATE")
            .map(|t| {
                t.children
                    .iter()
                    .filter(|a| a.children.is_empty())
                    .map(|a| (a.name.clone(), a.text.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let servers = match el.child("SERVER_POOL") {
            Some(pool) => pool
                .children_named("SERVER")
                .map(|s| {
                    Ok(ZoneServer {
                        id: s.int_of("ID")?,
                        name: s.text_of("NAME")?.to_string(),
                        endpoint: s.text_of("ENDPOINT")?.to_string(),
                    })
                })
                .collect::<Result<_, XmlError>>()?,
            None => Vec::new(),
        };
        Ok(ZoneInfo {
            id: el.int_of("ID")?,
            name: el.text_of("NAME")?.to_string(),
            state: el.int_of("STATE")?,
            template,
            servers,
        })
    }

    /// The zone's `TEMPLATE/ENDPOINT`, if set.
    pub fn endpoint(&self) -> Option<&str> {
        self.template
            .iter()
            .find(|(k, _)| k == "ENDPOINT")
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "<ZONE><ID>0</ID><NAME>OpenNebula</NAME><STATE>0</STATE><TEMPLATE>\
        <ENDPOINT><![CDATA[http://localhost:2633/RPC2]]></ENDPOINT></TEMPLATE><SERVER_POOL>\
        <SERVER><ENDPOINT><![CDATA[http://127.0.0.1:2634/RPC2]]></ENDPOINT><ID><![CDATA[0]]></ID>\
        <NAME><![CDATA[server-0]]></NAME></SERVER><SERVER><ENDPOINT>http://h/RPC2?a=1&amp;b=2</ENDPOINT>\
        <ID>1</ID><NAME>s&lt;1&gt;</NAME></SERVER></SERVER_POOL></ZONE>";

    #[test]
    fn zone_with_servers() {
        let z = ZoneInfo::from_xml(ZONE).unwrap();
        assert_eq!((z.id, z.name.as_str(), z.state), (0, "OpenNebula", 0));
        assert_eq!(z.endpoint(), Some("http://localhost:2633/RPC2"));
        assert_eq!(
            z.servers,
            vec![
                ZoneServer {
                    id: 0,
                    name: "server-0".into(),
                    endpoint: "http://127.0.0.1:2634/RPC2".into()
                },
                ZoneServer {
                    id: 1,
                    name: "s<1>".into(),
                    endpoint: "http://h/RPC2?a=1&b=2".into()
                },
            ]
        );
    }

    #[test]
    fn zone_without_servers_and_pool() {
        let xml = "<ZONE_POOL><ZONE><ID>0</ID><NAME>A</NAME><STATE>0</STATE><TEMPLATE>\
            <ENDPOINT>http://x/RPC2</ENDPOINT><V><A>1</A></V></TEMPLATE><SERVER_POOL/></ZONE>\
            <ZONE><ID>100</ID><NAME>B</NAME><STATE>1</STATE><TEMPLATE/><SERVER_POOL></SERVER_POOL></ZONE></ZONE_POOL>";
        let zones = ZoneInfo::pool_from_xml(xml).unwrap();
        assert_eq!(zones.len(), 2);
        assert!(zones[0].servers.is_empty());
        assert_eq!(
            zones[0].template,
            vec![("ENDPOINT".into(), "http://x/RPC2".into())]
        );
        assert_eq!(
            (zones[1].id, zones[1].state, zones[1].endpoint()),
            (100, 1, None)
        );
        assert!(ZoneInfo::pool_from_xml("<ZONE_POOL/>").unwrap().is_empty());
        assert!(ZoneInfo::from_xml("<ZONE_POOL/>").is_err());
        assert!(
            ZoneInfo::from_xml("<ZONE><ID>x</ID><NAME>A</NAME><STATE>0</STATE></ZONE>").is_err()
        );
    }

    #[test]
    fn raft() {
        let r = RaftStatus::from_xml(
            "<RAFT><SERVER_ID>0</SERVER_ID><STATE>3</STATE><TERM>1</TERM><VOTEDFOR>0</VOTEDFOR>\
             <COMMIT>3</COMMIT><LOG_INDEX>3</LOG_INDEX><LOG_TERM>1</LOG_TERM>\
             <FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>",
        )
        .unwrap();
        assert_eq!(
            r,
            RaftStatus {
                server_id: 0,
                state: 3,
                term: 1,
                votedfor: 0,
                commit: 3,
                log_index: 3,
                log_term: 1,
                fedlog_index: -1
            }
        );
        assert_eq!(r.state_name(), "leader");
        assert_eq!(RaftState::name_of(0), "solo");
        assert_eq!(RaftState::name_of(7), "error");
        assert!(RaftStatus::from_xml("<RAFT><SERVER_ID>0</SERVER_ID></RAFT>").is_err());
    }
}
