//! The subcommands every owned family's CLI shares, as OpenNebula's `OneHelper` runs them:
//! `update` and `rename` on one object; `delete`, `chgrp`, `chown`, `chmod`, `lock` and
//! `unlock` on a range or list of them (`perform_actions`: each refusal printed, the rest
//! still done). Each CLI names its family's method prefix (`one.vm`, `one.vmgroup`, ...).

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{perform, Resolver};
use crate::market::action_args;
use crate::objects::{err_text, Kind, Opts};

/// Whether `cmd` is one of the shared subcommands [`execute`] runs.
pub(crate) fn handles(cmd: &str) -> bool {
    matches!(
        cmd,
        "update" | "rename" | "delete" | "chgrp" | "chown" | "chmod" | "lock" | "unlock"
    )
}

/// Runs shared subcommand `cmd` of `kind`, whose methods are `<prefix>.<verb>`.
pub(crate) fn execute(
    kind: Kind,
    prefix: &str,
    cmd: &str,
    o: &Opts,
    client: &Client,
) -> Result<(), String> {
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("{prefix}.{verb}"), params)
            .map(drop)
            .map_err(err_text)
    };
    match cmd {
        "update" | "rename" => {
            let oid = Resolver::own(client, kind).arg(o.words.get(1), "id")?;
            let w2 = o.words.get(2);
            let params = if cmd == "update" {
                let append = o.flag(&["-a", "--append"]);
                let info = format!("{prefix}.info");
                let text = crate::editor::update_text(client, &info, oid, w2, append)?;
                vec![
                    Value::Int(oid),
                    Value::String(text),
                    Value::Int(i32::from(append)),
                ]
            } else {
                let name = w2.ok_or("missing the new name")?;
                vec![Value::Int(oid), Value::String(name.clone())]
            };
            call(cmd, params)
        }
        _ => {
            let ids = Resolver::own(client, kind).args(o.words.get(1), "id")?;
            let (verb, mut rest) = action_args(cmd, o, client)?;
            // OpenNebula's Template#chmod and #delete always send `recursive` (`-R`: the
            // images of the template's disks too).
            if kind == Kind::Template && matches!(verb, "chmod" | "delete") {
                rest.push(Value::Bool(o.flag(&["-R", "--recursive"])));
            }
            perform(&ids, |oid| {
                let mut params = vec![Value::Int(oid)];
                params.extend(rest.iter().cloned());
                call(verb, params)
            })
        }
    }
}
