//! `onehost flush`: OpenNebula's `Host#flush` with `onehost.yaml`'s default action
//! (`resched`): each host is disabled, then every VM whose last history record is on it is
//! flagged for the scheduler to move. OpenNebula's client asks for every such VM and ignores
//! the refusals of those that cannot be flagged (a STOPPED or UNDEPLOYED VM keeps its last
//! record); here only the VMs that can be are asked, so any refusal is a real one, reported.

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::perform;
use crate::objects::{err_text, Opts};
use crate::xml::Element;

pub(crate) fn execute(_: &Opts, client: &Client, hosts: &[i32]) -> Result<(), String> {
    perform(hosts, |hid| {
        client
            .call(
                wire::method::HOST_STATUS,
                vec![Value::Int(hid), Value::Int(1)],
            )
            .map_err(err_text)?;
        let pool = client
            .call_xml(
                wire::method::VMPOOL_INFO,
                vec![
                    Value::Int(-2),
                    Value::Int(-1),
                    Value::Int(-1),
                    Value::Int(-1),
                ],
            )
            .map_err(err_text)?;
        let pool = Element::parse(&pool).map_err(|e| e.to_string())?;
        let on_host: Vec<i32> = pool
            .children_named("VM")
            .filter(|vm| last_host(vm) == Some(i64::from(hid)) && movable(vm))
            .filter_map(|vm| vm.int_of("ID").ok())
            .map(|vid| vid as i32)
            .collect();
        perform(&on_host, |vid| {
            client
                .call(
                    wire::method::VM_ACTION,
                    vec![Value::String("resched".into()), Value::Int(vid)],
                )
                .map(drop)
                .map_err(err_text)
        })
    })
}

/// `HISTORY_RECORDS/HISTORY[last()]/HID`.
fn last_host(vm: &Element) -> Option<i64> {
    vm.child("HISTORY_RECORDS")?
        .children_named("HISTORY")
        .last()?
        .int_of("HID")
        .ok()
}

/// POWEROFF, or ACTIVE in RUNNING or UNKNOWN: where `resched` is accepted.
fn movable(vm: &Element) -> bool {
    use wire::{LcmState, VmState};
    let state = vm.int_of("STATE").ok().and_then(VmState::from_i64);
    let lcm = vm.int_of("LCM_STATE").ok().and_then(LcmState::from_i64);
    match (state, lcm) {
        (Some(VmState::Poweroff), _) => true,
        (Some(VmState::Active), Some(lcm)) => matches!(lcm, LcmState::Running | LcmState::Unknown),
        _ => false,
    }
}
