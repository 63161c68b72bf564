//! The `dummy` drivers, run by the leader only: a host in INIT becomes MONITORED with a fixed
//! capacity; a new image becomes READY, a new virtual network READY, a marketplace app being
//! imported READY (or in ERROR if its image went away). The result enters the log like any write, so every
//! server shows the same state, and after a failover the new leader carries on.

use std::convert::Infallible;
use std::time::Duration;

use consensus::WriteError;
use sqlstore::objects::{host, market};
use sqlstore::{ReadPool, SqlTxn};
use tracing::debug;

use crate::api::master_client::MasterClient;
use crate::cluster::{Cluster, LeaderTicks};
use crate::tasks::TaskCtx;

/// What the dummy driver reports: 8 CPUs (OpenNebula counts 100 per CPU) and 16 GiB (in KiB).
pub const DUMMY_CPU: i64 = 800;
pub const DUMMY_MEM: i64 = 16 * 1024 * 1024;
const PERIOD: Duration = Duration::from_millis(500);
/// Hosts given their first monitoring in one write: a bound on the write's size.
const HOSTS_PER_PERIOD: i64 = 256;

/// What OpenNebula 7.0's dummy probe (`im_mad/remotes/dummy-probes.d/host/system`) reports and
/// the host keeps in its TEMPLATE. The rest goes to HOST_SHARE: the NUMA topology and PCI devices,
/// and the system datastore's figures ([`DUMMY_DISK_MB`]), which `HostShareDatastore` takes out
/// of the template.
const PROBE: &[(&str, &str)] = &[
    ("ARCH", "x86_64"),
    ("HYPERVISOR", "dummy"),
    ("MODELNAME", "Dummy(R) Core @ 3.2GHz"),
    ("CPUSPEED", "3200"),
    ("TOTALMEMORY", "16777216"),
    ("TOTALCPU", "800"),
    (
        "KVM_CPU_MODELS",
        "486 pentium pentium2 pentium3 pentiumpro coreduo n270 core2duo qemu32 kvm32 \
         cpu64-rhel5 cpu64-rhel6 kvm64 Conroe Penryn Nehalem Nehalem-IBRS Westmere Westmere-IBRS \
         SandyBridge SandyBridge-IBRS IvyBridge IvyBridge-IBRS SapphireRapids \
         SapphireRapids-noTSX Opteron_G1",
    ),
    (
        "KVM_CPU_FEATURES",
        "vme,ds,acpi,ss,ht,tm,pbe,dtes64,monitor,ds_cpl,vmx,smx,est,tm2,xtpr,pdcm,osxsave,f16c,\
         rdrand,arat,tsc_adjust,clflushopt,clwb,intel-pt,sha-ni,umip,pku,ospke,waitpkg,gfni,vaes,\
         vpclmulqdq,rdpid,movdiri,movdir64b,pks,fsrm,md-clear,serialize,arch-lbr,stibp,\
         arch-capabilities,core-capability,ssbd,avx-vnni,xsaveopt,xsavec,xgetbv1,xsaves,pdpe1gb,\
         abm,invtsc,rdctl-no,ibrs-all,skip-l1dfl-vmentry,mds-no,pschange-mc-no",
    ),
];

/// The NUMA topology of the dummy probe (`topology(2, 8, [2048, 1048576], 4, TOTALMEMORY)`),
/// which OpenNebula keeps in HOST_SHARE/NUMA_NODES, not in the template.
pub mod numa {
    pub const NODES: i64 = 2;
    /// Cores per node.
    pub const CORES: i64 = 8;
    /// Hardware threads per core.
    pub const THREADS: i64 = 4;
    /// Huge page sizes, KiB, each with [`PAGES`] pages per node.
    pub const HUGEPAGE_SIZES: [i64; 2] = [2048, 1048576];
    pub const PAGES: i64 = 1024;
}

/// The dummy probe's PCI devices, which OpenNebula takes out of the template into
/// HOST_SHARE/PCI_DEVICES (`HostSharePCI::set_monitorization`).
pub const DUMMY_PCI: [&[(&str, &str)]; 3] = [
    &[
        ("ADDRESS", "0000:02:00:0"),
        ("BUS", "02"),
        ("CLASS", "0302"),
        ("CLASS_NAME", "3D controller"),
        ("DEVICE", "0863"),
        ("DEVICE_NAME", "C79 [GeForce 9400M]"),
        ("DOMAIN", "0000"),
        ("FUNCTION", "0"),
        ("SHORT_ADDRESS", "02:00.0"),
        ("SLOT", "00"),
        ("TYPE", "10de:0863:0302"),
        ("VENDOR", "10de"),
        ("VENDOR_NAME", "NVIDIA Corporation"),
        ("PROFILES", DUMMY_GPU_PROFILES),
        ("NUMA_NODE", "1"),
    ],
    &[
        ("ADDRESS", "0000:00:06:0"),
        ("BUS", "00"),
        ("CLASS", "0c03"),
        ("CLASS_NAME", "USB controller"),
        ("DEVICE", "0aa7"),
        ("DEVICE_NAME", "MCP79 OHCI USB 1.1 Controller"),
        ("DOMAIN", "0000"),
        ("FUNCTION", "0"),
        ("SHORT_ADDRESS", "00:06.0"),
        ("SLOT", "06"),
        ("TYPE", "1b21:0aa7:0c03"),
        ("VENDOR", "1b21"),
        ("VENDOR_NAME", "ASMedia Technology Inc."),
        ("NUMA_NODE", "1"),
    ],
    &[
        ("ADDRESS", "0000:00:06:1"),
        ("BUS", "00"),
        ("CLASS", "0c03"),
        ("CLASS_NAME", "USB controller"),
        ("DEVICE", "0aa9"),
        ("DEVICE_NAME", "MCP79 EHCI USB 2.0 Controller"),
        ("DOMAIN", "0000"),
        ("FUNCTION", "1"),
        ("SHORT_ADDRESS", "00:06.1"),
        ("SLOT", "06"),
        ("TYPE", "1022:0aa9:0c03"),
        ("VENDOR", "1022"),
        ("VENDOR_NAME", "Advanced Micro Devices, Inc."),
        ("NUMA_NODE", "0"),
    ],
];

/// The vGPU profiles the dummy probe's GPU reports.
const DUMMY_GPU_PROFILES: &str =
    "1145 (NVIDIA L40S-1B),1146 (NVIDIA L40S-2B),1147 (NVIDIA L40S-1Q),\
    1148 (NVIDIA L40S-2Q),1149 (NVIDIA L40S-3Q),1150 (NVIDIA L40S-4Q),1151 (NVIDIA L40S-6Q),\
    1152 (NVIDIA L40S-8Q),1153 (NVIDIA L40S-12Q),1154 (NVIDIA L40S-16Q),1155 (NVIDIA L40S-24Q),\
    1156 (NVIDIA L40S-48Q),1157 (NVIDIA L40S-1A),1158 (NVIDIA L40S-2A),1159 (NVIDIA L40S-3A),\
    1160 (NVIDIA L40S-4A),1161 (NVIDIA L40S-6A),1162 (NVIDIA L40S-8A),1163 (NVIDIA L40S-12A),\
    1164 (NVIDIA L40S-16A),1165 (NVIDIA L40S-24A),1166 (NVIDIA L40S-48A)";

/// The probe's `DS_LOCATION_TOTAL_MB`, `DS_LOCATION_FREE_MB` and `DS_LOCATION_USED_MB`: a
/// monitored host's HOST_SHARE/DATASTORES MAX_DISK, FREE_DISK and USED_DISK.
pub const DUMMY_DISK_MB: (i64, i64, i64) = (20480, 20480, 9720);

/// Template attributes the probe's figures arrive in, which OpenNebula erases from the template
/// once it has them in HOST_SHARE (`HostShareDatastore::set_monitorization`).
const MOVED_TO_SHARE: [&str; 3] = [
    "DS_LOCATION_TOTAL_MB",
    "DS_LOCATION_FREE_MB",
    "DS_LOCATION_USED_MB",
];

/// The host template after the probe: as OpenNebula's `Template::merge`, every attribute the
/// probe reports replaces those of the same name, so a value an operator set with
/// `one.host.update` before the first monitoring yields to the probe's, and the rest is kept.
/// A template that does not parse is kept as it is, with the probe's attributes added.
fn probe_merged(template: &str, hostname: &str) -> String {
    let Ok(mut t) = template::Template::parse(template) else {
        let mut probe = template::Template::default();
        push_probe(&mut probe, hostname);
        return format!("{template}\n{}", probe.to_text());
    };
    push_probe(&mut t, hostname);
    t.to_text()
}

fn push_probe(t: &mut template::Template, hostname: &str) {
    for name in MOVED_TO_SHARE {
        t.remove(name);
    }
    let probe = PROBE.iter().copied().chain([("HOSTNAME", hostname)]);
    for (name, value) in probe {
        t.remove(name);
        t.push(name, template::Value::Single(value.to_string()));
    }
}

/// The monitor task: every period, on the leader (or solo), finishes what the dummy drivers
/// have pending. A failed read or write is logged, counted and tried again next period.
/// `imports`: where this zone's marketplace apps' imports end.
pub async fn run(
    ctx: TaskCtx,
    cluster: Cluster,
    pool: ReadPool,
    imports: Imports,
) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    loop {
        ticks.next().await;
        // Nothing to monitor is the usual case; skip the write then.
        let zone = imports.zone;
        let pending = crate::db::read(&pool, move |c| {
            let sgs = sqlstore::objects::secgroup::dummy_pending(c)?;
            let cloning = crate::api::vm_cloning::pending(c)?;
            Ok(host::dummy_pending(c, zone)? + i64::from(sgs) + cloning)
        })
        .await;
        match pending {
            Ok(n) if n > 0 => {}
            // Nothing pending.
            Ok(_) => continue,
            Err(e) => {
                ctx.warn("reading what the dummy drivers have pending failed", &e);
                continue;
            }
        }
        let now = crate::api::vm::now();
        // Images first: the host driver's catch-all READY then finds none left to move.
        let images = crate::db::read(&pool, |c| {
            sqlstore::objects::image::driver_pending(c, crate::api::images::DRIVER_BATCH)
        })
        .await;
        let mut stmts = match images {
            Ok(images) => crate::api::images::driver_results(&images, now),
            Err(e) => {
                ctx.warn(
                    "reading the images the datastore driver has work on failed",
                    &e,
                );
                Vec::new()
            }
        };
        let hosts = match crate::db::read(&pool, |c| host::unmonitored(c, HOSTS_PER_PERIOD)).await {
            Ok(hosts) => hosts,
            Err(e) => {
                ctx.warn("reading the hosts waiting for monitoring failed", &e);
                Vec::new()
            }
        };
        let probed: Vec<_> = hosts
            .into_iter()
            .map(|h| {
                let template = probe_merged(&h.template, &h.name);
                (h, template)
            })
            .collect();
        stmts.extend(host::dummy_monitor(&probed, DUMMY_CPU, DUMMY_MEM, now));
        match crate::db::read(&pool, move |c| market::importing(c, zone)).await {
            Ok(apps) => match &imports.master {
                None => stmts.extend(apps.iter().map(crate::api::market::import_result)),
                Some(master) => finish_at_master(&ctx, &pool, master, &apps).await,
            },
            Err(e) => ctx.warn("reading the marketplace apps being imported failed", &e),
        }
        security_groups(&ctx, &cluster, &pool).await;
        let txn = SqlTxn { stmts };
        match cluster.write(txn).await {
            Ok(_) => {}
            // Leadership moved since the check: the new leader carries on.
            Err(e @ WriteError::NotLeader) => {
                debug!(error = %e, "dummy monitoring write refused: not the leader any more")
            }
            Err(e) => ctx.warn("dummy monitoring write failed; retried next period", &e),
        }
        // `ImageManager` tells the VMs of the images it unlocked, which may now move on.
        crate::api::vm_cloning::pass(&ctx, &cluster, &pool).await;
    }
}

/// The dummy network driver: the VMs outdated in their security groups take the groups' rules,
/// in a write of their own (a VM changed meanwhile fails only this one; it is retried next
/// period).
async fn security_groups(ctx: &TaskCtx, cluster: &Cluster, pool: &ReadPool) {
    let stmts = match crate::db::read(pool, crate::api::vm_sg_rules::driver_pass).await {
        Ok(stmts) if stmts.is_empty() => return,
        Ok(stmts) => stmts,
        Err(e) => return ctx.warn("reading the VMs outdated in security groups failed", &e),
    };
    match cluster.write(SqlTxn { stmts }).await {
        Ok(_) => {}
        Err(e @ WriteError::NotLeader) => {
            debug!(error = %e, "security group update refused: not the leader any more")
        }
        Err(e) => ctx.warn("security group update failed; retried next period", &e),
    }
}

/// Where a zone's apps' imports end: the zone's own apps (its images are the driver's
/// source), in its log, or on a federation slave at the master, which holds the apps' table.
pub struct Imports {
    pub zone: i64,
    pub master: Option<MasterClient>,
}

/// A slave's finished imports, sent to the master one app at a time
/// (`MarketPlaceAppPool::update` on a slave); they come back with the federated log. A
/// failure is retried next period (the app is still LOCKED); `TaskCtx::warn` keeps the log of
/// a master out of reach to one line per period of its own.
async fn finish_at_master(
    ctx: &TaskCtx,
    pool: &ReadPool,
    master: &MasterClient,
    apps: &[market::Importing],
) {
    for importing in apps {
        let oid = importing.oid;
        let read = crate::db::read(pool, move |c| {
            let rows = &market::APP_ROWS;
            c.prepare_cached(&rows.by_id())?
                .query_row([oid], |r| (rows.read)(c, r))
        })
        .await;
        let mut app = match read {
            Ok(app) => app,
            Err(e) => {
                ctx.warn("reading a marketplace app being imported failed", &e);
                continue;
            }
        };
        crate::api::market::import_outcome(importing).apply_to(&mut app);
        if let Err(why) = crate::api::market_master::update_app(master, &app).await {
            ctx.warn(
                "a finished import did not reach the federation master",
                &why,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_replaces_its_attributes_and_keeps_the_rest() {
        let merged = probe_merged(
            "RACK = \"4\"\nHYPERVISOR = \"kvm\"\nCPUSPEED = 1\nDS_LOCATION_FREE_MB = 5",
            "h1",
        );
        let t = template::Template::parse(&merged).expect("the merged template parses");
        assert_eq!(t.single("DS_LOCATION_FREE_MB"), None);
        assert!(t
            .single("KVM_CPU_FEATURES")
            .is_some_and(|f| f.starts_with("vme,ds,") && f.ends_with(",pschange-mc-no")));
        assert_eq!(t.single("RACK"), Some("4"));
        assert_eq!(t.single("HYPERVISOR"), Some("dummy"));
        assert_eq!(t.single("CPUSPEED"), Some("3200"));
        assert_eq!(t.single("HOSTNAME"), Some("h1"));
        assert_eq!(t.attrs.iter().filter(|a| a.name == "HYPERVISOR").count(), 1);
    }

    #[test]
    fn a_template_that_does_not_parse_is_kept_with_the_probe_added() {
        let merged = probe_merged("A = [", "h1");
        assert!(merged.starts_with("A = ["), "{merged}");
        assert!(merged.contains("HOSTNAME=\"h1\""), "{merged}");
    }
}
