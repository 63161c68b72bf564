//! Multi-process integration tests of `oned`: real processes from
//! `CARGO_BIN_EXE_oned` on 127.0.0.1, bootstrapped into a zone exactly as the
//! OpenNebula HA guide says, driven over `/RPC2` and through the `onezone` CLI.
//!
//! Every wait is on a condition with a deadline; on failure the tail of each
//! server's `oned.log` is printed. Set `ONEHA_KEEP_TEST_DIRS=1` to keep the
//! servers' `ONE_LOCATION` directories for inspection.

#![allow(clippy::unwrap_used)] // test code

mod acl_rights;
mod allocate_refusals;
mod api;
mod api_hooks;
mod auth_cache;
mod backends;
mod backups;
mod cli_common;
mod cli_editor;
mod cli_top;
mod clusters;
mod config;
mod dashboard;
mod documents;
mod encrypted_attrs;
mod families;
mod fast_failover;
mod federation;
mod follower_reads;
mod forwarded_writes;
mod ha;
mod hooks;
mod host_reserved;
mod hostile;
mod hosts_lifecycle;
mod image_snapshots;
mod images;
mod infra_refusals;
mod leases;
mod list_order;
mod log_durability;
mod markets;
mod metrics;
mod monitoring;
mod onehook;
mod oneimage;
mod onemarket;
mod onevm_day2;
mod onevm_save;
mod onevnet;
mod ops;
mod owned;
mod owned_cli;
mod owned_edits;
mod peers;
mod placement;
mod pools;
mod quota_usage_reads;
mod quotas;
mod quotas_cluster;
mod quotas_vm;
mod read_gate;
mod reads;
mod refusal_order;
mod sched_requirements;
mod secgroups;
mod secrets;
mod sessions;
mod shutdown;
mod table;
mod template_images;
mod tls;
mod upgrade;
mod user_allocate;
mod users_groups_acl;
mod vdcs;
mod vm_actions;
mod vm_auto_nics;
mod vm_bodies;
mod vm_context;
mod vm_deploy;
mod vm_disks;
mod vm_graphics;
mod vm_import;
mod vm_lifecycle;
mod vm_migrate;
mod vm_nics;
mod vm_op_rights;
mod vm_pool_bodies;
mod vm_refusals;
mod vm_resize;
mod vm_sched;
mod vm_snapshots;
mod vmgroups;
mod vms;
mod vnet_update;
mod vnet_vlans;
mod vntemplates;
mod vrouters;
mod wellformed;
mod zone;
mod zone_state;
