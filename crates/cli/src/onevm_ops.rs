//! `onevm migrate`, `recover`, `updateconf`, `sched-update` and `sched-delete`, with
//! OpenNebula's arguments (`src/cli/onevm`). Each prints nothing on success.

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{perform, Family, Resolver};
use crate::objects::{err_text, file_text, Kind, Opts};

/// Whether `subcommand` is one of these.
pub(crate) fn handles(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "migrate" | "recover" | "updateconf" | "sched-update" | "sched-delete"
    )
}

fn call(client: &Client, method: &str, params: Vec<Value>) -> Result<(), String> {
    client.call(method, params).map(drop).map_err(err_text)
}

/// `recover`'s operation from its flags, as `onevm recover` picks it.
fn recover_op(o: &Opts) -> Result<i32, String> {
    [
        ("--success", 1),
        ("--failure", 0),
        ("--retry", 2),
        ("--delete", 3),
        ("--recreate", 4),
        ("--delete-db", 5),
    ]
    .into_iter()
    .find(|(f, _)| o.flag(&[f]))
    .map(|(_, op)| op)
    .ok_or_else(|| {
        "Need to specify the result of the pending action.\n\
         \t--success recover the VM by succeeding the missing action.\n\
         \t--failure recover the VM by failing the missing action.\n\
         \t--retry recover the VM by retrying the last failed action.\n\
         \t--delete no recover possible, delete the VM.\n\
         \t--recreate no recover possible, delete and recreate the VM.\n\
         \t--delete-db no recover possible, delete the VM from the DB. No action performed on \
         the hypervisor"
            .to_string()
    })
}

/// The VM actions `--schedule` turns into scheduled actions.
pub(crate) fn schedulable(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "terminate"
            | "poweroff"
            | "undeploy"
            | "reboot"
            | "hold"
            | "release"
            | "resume"
            | "stop"
            | "suspend"
    )
}

/// The scheduling options that take a value (OpenNebula's `SCHEDULE_OPTIONS`).
pub(crate) const SCHEDULE_VALUED: &[&str] = &[
    "--schedule",
    "--weekly",
    "--monthly",
    "--yearly",
    "--hourly",
    "--end",
    "--args",
];

/// `OneVMHelper#schedule_actions`: `action` scheduled on each VM instead of done now, with
/// `OpenNebulaHelper.schedule_action_tmpl`'s template. TIME is `+seconds` (from the VM's
/// start), `now`, or seconds since the epoch.
pub(crate) fn schedule(
    o: &Opts,
    client: &Client,
    ids: &[i32],
    action: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let spec = o.value(&["--schedule"]).unwrap_or_default();
    let (time, message) = if spec.starts_with('+') {
        (
            spec.clone(),
            format!("{action} scheduled after {spec}s from start"),
        )
    } else {
        let at = if spec == "now" {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        } else {
            spec.trim()
                .parse::<i64>()
                .map_err(|_| format!("Error parsing time spec: {spec}"))?
        };
        (at.to_string(), format!("{action} scheduled at {at}"))
    };
    let mut periodic = String::new();
    for (flag, repeat) in [
        ("--weekly", 0),
        ("--monthly", 1),
        ("--yearly", 2),
        ("--hourly", 3),
    ] {
        if let Some(days) = o.value(&[flag]) {
            periodic = format!(", REPEAT = {repeat}, DAYS = \"{days}\"");
            break;
        }
    }
    match o.value(&["--end"]).map(|e| e.trim().parse::<i64>()) {
        Some(Ok(n)) if n > 0 => periodic.push_str(&format!(", END_TYPE = 1, END_VALUE = {n}")),
        Some(_) => {}
        None if !periodic.is_empty() => periodic.push_str(", END_TYPE = 0"),
        None => {}
    }
    let args = o
        .value(&["--args"])
        .map(|a| format!("ARGS = \"{a}\", "))
        .unwrap_or_default();
    let tmpl = format!("SCHED_ACTION = [ACTION = {action}, {args}TIME = {time}{periodic}]");
    perform(ids, |id| {
        call(
            client,
            "one.vm.schedadd",
            vec![Value::Int(id), Value::String(tmpl.clone())],
        )?;
        writeln!(out, "VM {id}: {message}").map_err(|e| e.to_string())
    })
}

pub(crate) fn execute(o: &Opts, client: &Client) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let mut vms = Resolver::own(client, Kind::Vm);
    match cmd {
        "migrate" => {
            let ids = vms.args(o.words.get(1), "VM id")?;
            let host = Resolver::other(client, Family::Host).arg(o.words.get(2), "host id")?;
            let ds = match o.words.get(3) {
                Some(_) => Resolver::other(client, Family::Datastore)
                    .arg(o.words.get(3), "datastore id")?,
                None => -1,
            };
            let poweroff = if o.flag(&["--poff-hard"]) {
                2
            } else {
                i32::from(o.flag(&["--poff"]))
            };
            perform(&ids, |id| {
                call(
                    client,
                    "one.vm.migrate",
                    vec![
                        Value::Int(id),
                        Value::Int(host),
                        Value::Bool(o.flag(&["--live"])),
                        Value::Bool(o.flag(&["--enforce", "-e"])),
                        Value::Int(ds),
                        Value::Int(poweroff),
                    ],
                )
            })
        }
        "recover" => {
            let ids = vms.args(o.words.get(1), "VM id")?;
            let op = recover_op(o)?;
            perform(&ids, |id| {
                call(
                    client,
                    "one.vm.recover",
                    vec![Value::Int(id), Value::Int(op)],
                )
            })
        }
        "updateconf" => {
            let vm = vms.arg(o.words.get(1), "VM id")?;
            let text = file_text(o.words.get(2))?;
            call(
                client,
                "one.vm.updateconf",
                vec![
                    Value::Int(vm),
                    Value::String(text),
                    Value::Int(i32::from(o.flag(&["--append", "-a"]))),
                ],
            )
        }
        "sched-update" => {
            let vm = vms.arg(o.words.get(1), "VM id")?;
            let sched = crate::objects::id(o.words.get(2), "scheduled action id")?;
            // As `update_schedule_action`: the file's lines are the action's attributes.
            let lines = file_text(o.words.get(3))?;
            let body: Vec<&str> = lines.lines().filter(|l| !l.trim().is_empty()).collect();
            let text = format!("SCHED_ACTION = [{}]", body.join(","));
            call(
                client,
                "one.vm.schedupdate",
                vec![Value::Int(vm), Value::Int(sched), Value::String(text)],
            )
        }
        "sched-delete" => {
            let vm = vms.arg(o.words.get(1), "VM id")?;
            let sched = crate::objects::id(o.words.get(2), "scheduled action id")?;
            call(
                client,
                "one.vm.scheddelete",
                vec![Value::Int(vm), Value::Int(sched)],
            )
        }
        other => Err(format!("Unknown command '{other}'.")),
    }
}
