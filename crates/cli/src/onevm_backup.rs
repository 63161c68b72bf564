//! `onevm backup`, `onevm backup-cancel` and `onevm restore`, with OpenNebula's arguments
//! (`src/cli/onevm`): `backup <vm> [-d|--datastore <ds>] [--reset]`, `backup-cancel <vm>`,
//! `restore <vm> <image> [--disk-id <id>] [--increment <id>]`. Each prints nothing on success,
//! but `backup --schedule`, which schedules a `backup` action (ARGS `<ds>,<reset 0|1>`) and says
//! so as the VM actions' `--schedule` does.

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{Family, Resolver};
use crate::objects::{err_text, Kind, Opts};

/// `backup`'s valued options: the datastore, and OpenNebula's `SCHEDULE_OPTIONS`.
const BACKUP_VALUED: &[&str] = &[
    "-d",
    "--datastore",
    "--schedule",
    "--weekly",
    "--monthly",
    "--yearly",
    "--hourly",
    "--end",
    "--args",
];

/// The options of `subcommand` that take a value.
pub(crate) fn valued_flags(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "backup" => BACKUP_VALUED,
        "restore" => &["--disk-id", "--increment"],
        _ => &[],
    }
}

/// Whether `subcommand` is one of these.
pub(crate) fn handles(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "backup" | "backup-cancel" | "restore" | "backupmode"
    )
}

fn number(v: Option<String>, what: &str) -> Result<i32, String> {
    match v {
        None => Ok(-1),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("argument {what} is not a number: {v}")),
    }
}

pub(crate) fn execute(
    o: &Opts,
    client: &Client,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let vm = Resolver::own(client, Kind::Vm).arg(o.words.get(1), "VM id")?;
    let (method, params) = match cmd {
        "backup" => {
            let ds = match o.value(&["-d", "--datastore"]) {
                Some(d) => Resolver::other(client, Family::Datastore).arg(Some(&d), "datastore")?,
                None => -1,
            };
            let reset = o.flag(&["--reset"]);
            if o.value(&["--schedule"]).is_some() {
                let mut flags = o.flags.clone();
                let args = format!("{ds},{}", i32::from(reset));
                flags.push(("--args".into(), Some(args)));
                let o = Opts {
                    words: o.words.clone(),
                    flags,
                };
                return crate::onevm_ops::schedule(&o, client, &[vm], "backup", out);
            }
            let reset = Value::Bool(reset);
            ("one.vm.backup", vec![Value::Int(vm), Value::Int(ds), reset])
        }
        "backup-cancel" => ("one.vm.backupcancel", vec![Value::Int(vm)]),
        "restore" => {
            let image = Resolver::other(client, Family::Image).arg(o.words.get(2), "image")?;
            let inc = number(o.value(&["--increment"]), "--increment")?;
            let disk = number(o.value(&["--disk-id"]), "--disk-id")?;
            (
                "one.vm.restore",
                vec![
                    Value::Int(vm),
                    Value::Int(image),
                    Value::Int(inc),
                    Value::Int(disk),
                ],
            )
        }
        // `OneVMHelper#set_backup_mode`: a whole new BACKUP_CONFIG with only MODE (the other
        // settings go back to their defaults, as OpenNebula's CLI does).
        "backupmode" => {
            let mode = o.words.get(2).ok_or("missing the backup mode")?;
            if !["FULL", "INCREMENT"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(mode))
            {
                return Err(format!(
                    "Invalid backup mode: {mode}\nValid backup modes are: FULL,INCREMENT"
                ));
            }
            let conf = format!("BACKUP_CONFIG = [\"MODE\"=\"{mode}\"]");
            (
                "one.vm.updateconf",
                vec![Value::Int(vm), Value::String(conf), Value::Int(0)],
            )
        }
        other => return Err(format!("Unknown command '{other}'.")),
    };
    client.call(method, params).map(drop).map_err(err_text)
}
