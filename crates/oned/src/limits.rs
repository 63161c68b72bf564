//! What one client may take of a server: connections, requests in flight, request size, and
//! time. OpenNebula's own `oned.conf` names are read where they mean the same thing (`MAX_CONN`,
//! `MAX_CONN_BACKLOG`, `KEEPALIVE_TIMEOUT`, `KEEPALIVE_MAX_CONN`, `TIMEOUT`, `MESSAGE_SIZE`);
//! the per-address limits are OneHA's. The defaults differ from OpenNebula's where an
//! asynchronous server can afford more (OpenNebula's `MAX_CONN = 15` is a thread count), or
//! where OpenNebula's would let one request exhaust the server (`MESSAGE_SIZE = 1 GiB`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use template::Template;

use crate::config::ConfigError;

/// `MAX_LEASES_PER_ANSWER` of this process. Networks are printed by plain functions of their
/// row (the pools' `Family::xml`), which see no configuration: [`Limits::publish`] sets it.
static LEASES_PER_ANSWER: AtomicUsize = AtomicUsize::new(defaults::MAX_LEASES_PER_ANSWER as usize);

/// Leases one network lists in an answer, at most.
pub fn leases_per_answer() -> usize {
    LEASES_PER_ANSWER.load(Ordering::Relaxed)
}

/// Largest `MESSAGE_SIZE` honoured: a value copied from OpenNebula's oned.conf (1 GiB) would let
/// one request take the server's memory and the zone's replication.
pub const MESSAGE_SIZE_CEILING: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `MAX_CONN`: client connections held at once, all addresses together.
    pub max_conn: usize,
    /// `MAX_CONN_PER_ADDRESS`: connections held at once from one IP address.
    pub max_conn_per_address: usize,
    /// `MAX_CONN_BACKLOG`: the listen backlog.
    pub max_conn_backlog: u32,
    /// `MAX_REQUESTS`: `/RPC2` calls being processed at once, all addresses together.
    pub max_requests: usize,
    /// `MAX_REQUESTS_PER_ADDRESS`: `/RPC2` calls being processed at once from one IP address.
    pub max_requests_per_address: usize,
    /// `KEEPALIVE_TIMEOUT`: how long a connection may stay idle between calls.
    pub keepalive_timeout: Duration,
    /// `KEEPALIVE_MAX_CONN`: calls served on one connection before it is closed.
    pub keepalive_max_conn: u64,
    /// `TIMEOUT`: how long a client may take to send a call's headers, and its body.
    pub timeout: Duration,
    /// `MESSAGE_SIZE`: the largest `/RPC2` request body, in bytes.
    pub message_size: usize,
    /// `MAX_LEASES_PER_CALL`: addresses one call may take at once (`one.vn.reserve`'s SIZE). A
    /// small request could otherwise make every server write millions of lease rows in one
    /// transaction, stalling the zone's writes while it applies.
    pub max_leases_per_call: u64,
    /// `MAX_LEASES_PER_ANSWER`: leases one network lists in an answer (`one.vn.info`'s LEASES,
    /// the pools' ALLOCATED). Reservations of MAX_LEASES_PER_CALL each could otherwise fill a /8
    /// and make every answer about that network hundreds of megabytes.
    pub max_leases_per_answer: u64,
}

pub mod defaults {
    pub const MAX_CONN: usize = 1000;
    pub const MAX_CONN_PER_ADDRESS: usize = 200;
    pub const MAX_CONN_BACKLOG: u32 = 1024;
    pub const MAX_REQUESTS: usize = 512;
    pub const MAX_REQUESTS_PER_ADDRESS: usize = 128;
    pub const KEEPALIVE_TIMEOUT_S: u64 = 15;
    pub const KEEPALIVE_MAX_CONN: u64 = 1000;
    pub const TIMEOUT_S: u64 = 15;
    pub const MESSAGE_SIZE: usize = 8 << 20;
    /// A /16 of IPv4 addresses.
    pub const MAX_LEASES_PER_CALL: u64 = 1 << 16;
    /// One largest reservation, listed whole: about 7 MB of XML.
    pub const MAX_LEASES_PER_ANSWER: u64 = 1 << 16;
}

/// Counts a client sets that OpenNebula leaves unbounded. Each is far above what an OpenNebula
/// deployment uses, and below what would let one request of MESSAGE_SIZE multiply into
/// hundreds of thousands of rows, leases or parsed vectors on every server.
pub mod fixed {
    /// Address ranges of one network (`one.vn.allocate`, `one.vn.add_ar`, reservations).
    pub const MAX_RANGES_PER_NETWORK: usize = 1024;
    /// NIC and NIC_ALIAS of one VM: without it one `one.vm.allocate` could take 400,000
    /// leases, past MAX_LEASES_PER_CALL.
    pub const MAX_NICS_PER_VM: usize = 1024;
    /// DISKs of one VM.
    pub const MAX_DISKS_PER_VM: usize = 1024;
}

/// Refuses a VM template with more NICs or DISKs than [`fixed`] allows; the message names
/// the limit.
pub fn vm_vectors(t: &Template) -> Result<(), String> {
    let nics = t.get_all("NIC").count() + t.get_all("NIC_ALIAS").count();
    if nics > fixed::MAX_NICS_PER_VM {
        return Err(format!(
            "A VM has at most {} NIC and NIC_ALIAS attributes, the template has {nics}",
            fixed::MAX_NICS_PER_VM
        ));
    }
    let disks = t.get_all("DISK").count();
    if disks > fixed::MAX_DISKS_PER_VM {
        return Err(format!(
            "A VM has at most {} DISK attributes, the template has {disks}",
            fixed::MAX_DISKS_PER_VM
        ));
    }
    Ok(())
}

/// Refuses a network of more than [`fixed::MAX_RANGES_PER_NETWORK`] address ranges.
pub fn ranges(n: usize) -> Result<(), String> {
    if n > fixed::MAX_RANGES_PER_NETWORK {
        return Err(format!(
            "A virtual network has at most {} address ranges",
            fixed::MAX_RANGES_PER_NETWORK
        ));
    }
    Ok(())
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_conn: defaults::MAX_CONN,
            max_conn_per_address: defaults::MAX_CONN_PER_ADDRESS,
            max_conn_backlog: defaults::MAX_CONN_BACKLOG,
            max_requests: defaults::MAX_REQUESTS,
            max_requests_per_address: defaults::MAX_REQUESTS_PER_ADDRESS,
            keepalive_timeout: Duration::from_secs(defaults::KEEPALIVE_TIMEOUT_S),
            keepalive_max_conn: defaults::KEEPALIVE_MAX_CONN,
            timeout: Duration::from_secs(defaults::TIMEOUT_S),
            message_size: defaults::MESSAGE_SIZE,
            max_leases_per_call: defaults::MAX_LEASES_PER_CALL,
            max_leases_per_answer: defaults::MAX_LEASES_PER_ANSWER,
        }
    }
}

impl Limits {
    /// Reads the limits from `oned.conf`'s top-level attributes; absent ones keep their default.
    pub fn from_template(t: &Template, file: &str) -> Result<Limits, ConfigError> {
        let positive = |name: &str| -> Result<Option<u64>, ConfigError> {
            let Some(a) = t.get(name) else {
                return Ok(None);
            };
            let raw = a.value.as_single().unwrap_or("").trim();
            match raw.parse::<u64>() {
                Ok(v) if v > 0 => Ok(Some(v)),
                _ => Err(ConfigError {
                    file: file.to_string(),
                    message: format!(
                        "line {}: attribute {name}: expected a positive integer, got \"{raw}\"",
                        a.line
                    ),
                }),
            }
        };
        let d = Limits::default();
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let message_size = match positive("MESSAGE_SIZE")? {
            None => d.message_size,
            Some(v) if size(v) > MESSAGE_SIZE_CEILING => {
                tracing::warn!(
                    configured = v,
                    used = MESSAGE_SIZE_CEILING,
                    "MESSAGE_SIZE is above what OneHA accepts in one request; using the ceiling"
                );
                MESSAGE_SIZE_CEILING
            }
            Some(v) => size(v),
        };
        Ok(Limits {
            max_conn: positive("MAX_CONN")?.map_or(d.max_conn, size),
            max_conn_per_address: positive("MAX_CONN_PER_ADDRESS")?
                .map_or(d.max_conn_per_address, size),
            max_conn_backlog: positive("MAX_CONN_BACKLOG")?
                .map_or(d.max_conn_backlog, |v| u32::try_from(v).unwrap_or(u32::MAX)),
            max_requests: positive("MAX_REQUESTS")?.map_or(d.max_requests, size),
            max_requests_per_address: positive("MAX_REQUESTS_PER_ADDRESS")?
                .map_or(d.max_requests_per_address, size),
            keepalive_timeout: positive("KEEPALIVE_TIMEOUT")?
                .map_or(d.keepalive_timeout, Duration::from_secs),
            keepalive_max_conn: positive("KEEPALIVE_MAX_CONN")?.unwrap_or(d.keepalive_max_conn),
            timeout: positive("TIMEOUT")?.map_or(d.timeout, Duration::from_secs),
            message_size,
            max_leases_per_call: positive("MAX_LEASES_PER_CALL")?.unwrap_or(d.max_leases_per_call),
            max_leases_per_answer: positive("MAX_LEASES_PER_ANSWER")?
                .unwrap_or(d.max_leases_per_answer),
        })
    }

    /// Makes the limits that printing code reads without a configuration at hand
    /// ([`leases_per_answer`]) those of this server.
    pub fn publish(&self) {
        let n = usize::try_from(self.max_leases_per_answer).unwrap_or(usize::MAX);
        LEASES_PER_ANSWER.store(n, Ordering::Relaxed);
    }

    /// The largest replicated change a request may produce: the request's own size, with room
    /// for what a method adds around the client's values (names, XML, ids).
    pub fn max_txn_bytes(&self) -> usize {
        self.message_size + (1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> Result<Limits, ConfigError> {
        let t = Template::parse(text).map_err(|e| ConfigError {
            file: "oned.conf".into(),
            message: e.to_string(),
        })?;
        Limits::from_template(&t, "oned.conf")
    }

    #[test]
    fn opennebula_names_are_read_and_absent_ones_default() {
        let l = limits("MAX_CONN = 50\nTIMEOUT = 3\nMESSAGE_SIZE = 1048576").unwrap();
        assert_eq!(l.max_conn, 50);
        assert_eq!(l.timeout, Duration::from_secs(3));
        assert_eq!(l.message_size, 1 << 20);
        assert_eq!(l.keepalive_timeout, Limits::default().keepalive_timeout);
        assert_eq!(l.max_leases_per_call, defaults::MAX_LEASES_PER_CALL);
        assert_eq!(
            limits("MAX_LEASES_PER_CALL = 8")
                .unwrap()
                .max_leases_per_call,
            8
        );
        assert!(limits("MAX_LEASES_PER_CALL = 0").is_err());
        assert_eq!(
            limits("MAX_LEASES_PER_ANSWER = 3")
                .unwrap()
                .max_leases_per_answer,
            3
        );
        assert_eq!(
            Limits::default().max_leases_per_answer,
            defaults::MAX_LEASES_PER_ANSWER
        );
    }

    #[test]
    fn vm_vectors_and_ranges_are_counted_up_to_their_limit() {
        let many = |name: &str, n: usize| {
            let text: String = (0..n).map(|_| format!("{name} = [ A = 1 ]\n")).collect();
            Template::parse(&text).unwrap()
        };
        assert!(vm_vectors(&many("NIC", fixed::MAX_NICS_PER_VM)).is_ok());
        let e = vm_vectors(&many("nic_alias", fixed::MAX_NICS_PER_VM + 1)).unwrap_err();
        assert!(e.contains("NIC_ALIAS") && e.contains("1025"), "{e}");
        assert!(vm_vectors(&many("DISK", fixed::MAX_DISKS_PER_VM)).is_ok());
        assert!(vm_vectors(&many("DISK", fixed::MAX_DISKS_PER_VM + 1)).is_err());
        assert!(ranges(fixed::MAX_RANGES_PER_NETWORK).is_ok());
        assert!(ranges(fixed::MAX_RANGES_PER_NETWORK + 1).is_err());
    }

    /// Other tests of this process may print networks meanwhile: the value set stays above
    /// any lease count they use.
    #[test]
    fn publish_sets_what_printing_code_reads() {
        let l = limits("MAX_LEASES_PER_ANSWER = 1000000").unwrap();
        l.publish();
        assert_eq!(leases_per_answer(), 1_000_000);
        Limits::default().publish();
        assert_eq!(
            leases_per_answer(),
            defaults::MAX_LEASES_PER_ANSWER as usize
        );
    }

    #[test]
    fn opennebulas_one_gib_message_size_is_capped() {
        let l = limits("MESSAGE_SIZE = 1073741824").unwrap();
        assert_eq!(l.message_size, MESSAGE_SIZE_CEILING);
    }

    #[test]
    fn zero_or_garbage_names_the_attribute() {
        let e = limits("MAX_CONN = 0").unwrap_err().to_string();
        assert!(e.contains("MAX_CONN") && e.contains("line 1"), "{e}");
        let e = limits("TIMEOUT = soon").unwrap_err().to_string();
        assert!(e.contains("TIMEOUT"), "{e}");
    }
}
