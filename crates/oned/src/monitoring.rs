//! The leader's monitoring records: every `PROBES_PERIOD/MONITOR_VM` seconds a record of each
//! RUNNING VM, every `PROBES_PERIOD/MONITOR_HOST` seconds one of each MONITORED host, with the
//! figures OpenNebula's dummy probes report, and the purge of the records older than
//! `VM_MONITORING_EXPIRATION_TIME` / `HOST_MONITORING_EXPIRATION_TIME` (0 records nothing,
//! as monitord). Each period is one replicated write of a few statements whatever the number of
//! VMs: the figures are computed by the statements (`sqlstore::objects::monitoring`).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use consensus::WriteError;
use sqlstore::objects::monitoring as rows;
use sqlstore::SqlTxn;
use template::Template;
use tracing::debug;

use crate::cluster::{Cluster, LeaderTicks};
use crate::config::ConfigError;
use crate::tasks::TaskCtx;

/// How monitoring records are taken and kept (oned.conf; OpenNebula's monitord.conf keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub vm_period: Duration,
    pub host_period: Duration,
    /// Zero: VM records are not kept.
    pub vm_expiration: Duration,
    /// Zero: host records are not kept.
    pub host_expiration: Duration,
}

impl Default for Settings {
    /// monitord's defaults.
    fn default() -> Settings {
        Settings {
            vm_period: Duration::from_secs(90),
            host_period: Duration::from_secs(120),
            vm_expiration: Duration::from_secs(43200),
            host_expiration: Duration::from_secs(43200),
        }
    }
}

/// The longest period or expiration accepted: ten years, so `now - expiration` never wraps.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

impl Settings {
    pub fn from_template(t: &Template, file: &str) -> Result<Settings, ConfigError> {
        let err = |line: usize, attr: &str, raw: &str, what: &str| ConfigError {
            file: file.to_string(),
            message: format!("line {line}: attribute {attr}: expected {what}, got \"{raw}\""),
        };
        let seconds = |line: usize, attr: &str, raw: &str, min: u64| match raw.trim().parse::<u64>()
        {
            Ok(v) if v >= min && v <= MAX_SECONDS => Ok(Duration::from_secs(v)),
            _ => Err(err(
                line,
                attr,
                raw,
                &format!("{min} to {MAX_SECONDS} seconds"),
            )),
        };
        let mut s = Settings::default();
        for (key, field) in [
            ("VM_MONITORING_EXPIRATION_TIME", &mut s.vm_expiration),
            ("HOST_MONITORING_EXPIRATION_TIME", &mut s.host_expiration),
        ] {
            if let Some(a) = t.get(key) {
                *field = seconds(a.line, key, a.value.as_single().unwrap_or(""), 0)?;
            }
        }
        if let Some(a) = t.get("PROBES_PERIOD") {
            let template::Value::Vector(pairs) = &a.value else {
                return Err(err(a.line, "PROBES_PERIOD", "", "a vector value [ ... ]"));
            };
            for (key, field) in [
                ("MONITOR_VM", &mut s.vm_period),
                ("MONITOR_HOST", &mut s.host_period),
            ] {
                if let Some(raw) = template::vector_get(pairs, key) {
                    *field = seconds(a.line, &format!("PROBES_PERIOD/{key}"), raw, 1)?;
                }
            }
        }
        Ok(s)
    }
}

/// How often the task looks whether a period is over.
const TICK: Duration = Duration::from_millis(500);

/// The monitoring task, on the leader (or solo). A failed write is logged and tried again at
/// the next tick; a new leader starts its periods afresh.
pub async fn run(ctx: TaskCtx, cluster: Cluster, settings: Settings) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(TICK, cluster.clone());
    let (mut vms_due, mut hosts_due) = (Instant::now(), Instant::now());
    loop {
        ticks.next().await;
        let at = Instant::now();
        let now = crate::api::vm::now();
        let mut stmts = Vec::new();
        let vms = at >= vms_due && !settings.vm_expiration.is_zero();
        let hosts = at >= hosts_due && !settings.host_expiration.is_zero();
        if vms {
            stmts.push(rows::record_vms(now));
            stmts.push(rows::expire_vms(
                now - settings.vm_expiration.as_secs() as i64,
            ));
        }
        if hosts {
            stmts.push(rows::record_hosts(now));
            stmts.push(rows::expire_hosts(
                now - settings.host_expiration.as_secs() as i64,
            ));
        }
        if stmts.is_empty() {
            continue;
        }
        match cluster.write(SqlTxn { stmts }).await {
            Ok(_) => {
                if vms {
                    vms_due = at + settings.vm_period;
                }
                if hosts {
                    hosts_due = at + settings.host_period;
                }
            }
            Err(e @ WriteError::NotLeader) => {
                debug!(error = %e, "monitoring write refused: not the leader any more")
            }
            Err(e) => ctx.warn("monitoring write failed; retried at the next tick", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let t = Template::parse(text).expect("template");
        Settings::from_template(&t, "oned.conf")
    }

    #[test]
    fn defaults_are_monitords() {
        assert_eq!(parse("").expect("parses"), Settings::default());
    }

    #[test]
    fn the_shipped_oned_conf_has_monitords_defaults() {
        let shipped = parse(include_str!("../../../share/etc/oned.conf")).expect("parses");
        assert_eq!(shipped, Settings::default());
    }

    #[test]
    fn periods_and_expirations_are_read_and_checked() {
        let s = parse(
            "PROBES_PERIOD = [ MONITOR_VM = 2, MONITOR_HOST = 3 ]\n\
             VM_MONITORING_EXPIRATION_TIME = 0\nHOST_MONITORING_EXPIRATION_TIME = 60",
        )
        .expect("parses");
        assert_eq!(s.vm_period, Duration::from_secs(2));
        assert_eq!(s.host_period, Duration::from_secs(3));
        assert!(s.vm_expiration.is_zero());
        assert_eq!(s.host_expiration, Duration::from_secs(60));
        let e = parse("PROBES_PERIOD = [ MONITOR_VM = 0 ]").expect_err("refused");
        assert!(
            e.message.contains("PROBES_PERIOD/MONITOR_VM"),
            "{}",
            e.message
        );
        let e = parse("VM_MONITORING_EXPIRATION_TIME = soon").expect_err("refused");
        assert!(
            e.message.contains("VM_MONITORING_EXPIRATION_TIME"),
            "{}",
            e.message
        );
    }
}
