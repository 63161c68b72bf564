//! Runs hooks on the leader, as OpenNebula's hook execution manager (`onehem-server`) does on
//! the leader of an HA zone: every pending execution in `hook_log` (written with the event that
//! caused it) is run once here and its result recorded in place, by a replicated write that
//! only matches a still-pending execution.
//!
//! Across a leader change: an execution the old leader recorded is never run again; one it had
//! not recorded runs on the new leader. A hook's process dies with the server or task that ran
//! it (killed on drop, and `PR_SET_PDEATHSIG` if the server itself dies), and a server that stops
//! leading kills the hooks it runs, so one event's hook never runs on two servers at once. The
//! one window left is a hook that finished but whose record was not yet written when its leader
//! died: it runs again (hooks get their execution id in `$HOOK_EXECUTION` to tell).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use consensus::WriteError;
use sqlstore::objects::hook::{self as rows, Pending};
use sqlstore::{ReadPool, SqlTxn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use crate::api::hook::{call_info_b64, element, object_of};
use crate::api::xml;
use crate::cluster::{Cluster, Role};
use crate::tasks::TaskCtx;

const PERIOD: Duration = Duration::from_millis(200);
/// How often hooks whose events are dropped are reported.
const BACKLOG_CHECK: Duration = Duration::from_secs(60);
/// Hooks running at once (OpenNebula's HEM runs 10).
const CONCURRENCY: usize = 10;
/// Bytes of a hook's output kept per stream.
const MAX_OUTPUT: u64 = 64 * 1024;
/// Where OpenNebula puts hooks on hosts, for `REMOTE = YES`.
const REMOTE_HOOKS: &str = "/var/tmp/one/hooks";

pub struct Runner {
    pub cluster: Cluster,
    pub pool: ReadPool,
    pub remotes: PathBuf,
    pub retention: i64,
}

/// The runner task: every period, on the leader, starts the pending executions not running yet.
pub async fn run(ctx: TaskCtx, runner: std::sync::Arc<Runner>) -> Result<(), Infallible> {
    // Dropped with the task (at shutdown, or a restart after a panic): its hooks are killed.
    let mut running: HashMap<(i64, i64), Running> = HashMap::new();
    let mut ticker = tokio::time::interval(PERIOD);
    let mut checked_backlog = tokio::time::Instant::now();
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        running.retain(|_, h| !h.0.is_finished());
        if !matches!(runner.cluster.role(), Role::Leader | Role::Solo) {
            if !running.is_empty() {
                info!(
                    hooks = running.len(),
                    "no longer the leader: stopping the hooks running here"
                );
            }
            running.clear();
            continue;
        }
        if checked_backlog.elapsed() >= BACKLOG_CHECK {
            checked_backlog = tokio::time::Instant::now();
            runner.report_backlog(&ctx).await;
        }
        if running.len() >= CONCURRENCY {
            continue;
        }
        let mut pending = match runner.pending().await {
            Ok(p) => p,
            Err(e) => {
                ctx.warn("reading pending hook executions failed", &e);
                continue;
            }
        };
        pending.retain(|p| !running.contains_key(&(p.hook, p.exeid)));
        if pending.is_empty() {
            continue;
        }
        // A new leader may not have applied every committed entry yet: an execution its
        // predecessor recorded could still look pending here. The read barrier waits for them.
        if let Err(e) = runner.cluster.confirm_read().await {
            debug!(error = %e, "hook runner: leadership not confirmed; trying next period");
            continue;
        }
        let pending = match runner.pending().await {
            Ok(p) => p,
            Err(e) => {
                ctx.warn("reading pending hook executions failed", &e);
                continue;
            }
        };
        for p in pending {
            let key = (p.hook, p.exeid);
            if running.contains_key(&key) {
                continue;
            }
            if running.len() >= CONCURRENCY {
                break;
            }
            let (r, ctx) = (runner.clone(), ctx.clone());
            running.insert(
                key,
                Running(tokio::spawn(async move { r.execute(&ctx, p).await })),
            );
        }
    }
}

/// One execution's task, aborted when dropped (its hook process is killed on drop).
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What to run for one execution.
struct Plan {
    program: PathBuf,
    args: String,
    stdin: bool,
    timeout: Option<Duration>,
    /// `Some(host)` runs it there over ssh.
    remote: Option<String>,
    retry: bool,
}

impl Runner {
    /// Warns (and counts) for every hook whose events are being dropped: too many of them wait.
    async fn report_backlog(&self, ctx: &TaskCtx) {
        match crate::db::read(&self.pool, rows::saturated).await {
            Ok(hooks) => {
                for hook in hooks {
                    let why = format!(
                        "hook {hook} has {} executions waiting; its new events are dropped",
                        rows::MAX_PENDING
                    );
                    ctx.warn("a hook falls behind its events", &why);
                }
            }
            Err(e) => ctx.warn("reading the hooks' backlog failed", &e),
        }
    }

    async fn pending(&self) -> Result<Vec<Pending>, crate::db::ReadError> {
        crate::db::read(&self.pool, |c| rows::pending(c, 64)).await
    }

    async fn execute(&self, ctx: &TaskCtx, p: Pending) {
        let plan = match self.plan(&p).await {
            Ok(Some(plan)) => plan,
            Ok(None) => return,
            Err(e) => {
                ctx.warn("preparing a hook execution failed; retried next period", &e);
                return;
            }
        };
        if plan.remote.as_deref() == Some("") {
            // OpenNebula's HEM: "No remote host specified for a remote hook", nothing logged.
            let txn = SqlTxn {
                stmts: vec![rows::drop_pending(p.hook, p.exeid)],
            };
            if let Err(e) = self.cluster.write(txn).await {
                ctx.warn("dropping a remote hook execution without host failed", &e);
            }
            return;
        }
        let (code, out, err, command) = run_plan(&plan, p.exeid).await;
        if code == 0 {
            telemetry::m::HOOK_SUCCESSES.inc();
        } else {
            telemetry::m::HOOK_FAILURES.inc();
        }
        let (args, command) = (bounded(&plan.args), bounded(&command));
        let now = crate::api::vm::now();
        let body = xml::build(|x| {
            x.elem("HOOK_EXECUTION_RECORD", |x| {
                x.num("HOOK_ID", p.hook)
                    .num("EXECUTION_ID", p.exeid)
                    .num("TIMESTAMP", now)
                    .text("ARGUMENTS", args);
                x.elem("EXECUTION_RESULT", |x| {
                    x.text("COMMAND", command)
                        .text("STDOUT", &encode64(&out))
                        .text("STDERR", &encode64(&err))
                        .num("CODE", code);
                });
                if let Some(h) = plan.remote.as_deref() {
                    x.text("REMOTE_HOST", h);
                }
                if plan.retry {
                    x.text("RETRY", "yes");
                }
            });
        });
        // The hook ran: its record is written until it lands or leadership moves, never by
        // running the hook again.
        let mut wait = Duration::from_millis(200);
        loop {
            let txn = SqlTxn {
                stmts: rows::record(p.hook, p.exeid, now, code, &body, self.retention),
            };
            match self.cluster.write(txn).await {
                Ok(sqlstore::TxnOutcome::Done { .. }) => {
                    info!(hook = p.hook, execution = p.exeid, code, "hook executed");
                    return;
                }
                Ok(sqlstore::TxnOutcome::Failed(e)) => {
                    debug!(hook = p.hook, execution = p.exeid, error = %e.message, "hook execution already recorded or hook deleted");
                    return;
                }
                Err(e @ WriteError::NotLeader) => {
                    debug!(error = %e, "hook result not recorded: not the leader any more");
                    return;
                }
                Err(e) => ctx.warn("recording a hook execution failed; trying again", &e),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// What execution `p` runs, or `None` when its hook is gone.
    async fn plan(&self, p: &Pending) -> Result<Option<Plan>, crate::db::ReadError> {
        let hook = p.hook;
        let text = crate::db::read(&self.pool, move |c| {
            sqlstore::objects::template_text(c, rows::TABLE, "template", hook)
        })
        .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let t = template::Template::parse(&text).unwrap_or_default();
        let get = |a: &str| t.single(a).unwrap_or_default().to_string();
        let remote = get("REMOTE").eq_ignore_ascii_case("YES");
        let kind = element(&p.message, "HOOK_TYPE").unwrap_or_default();
        let (mut api, mut object, mut host) = (String::new(), String::new(), String::new());
        let retry = kind == "RETRY";
        let args = if retry {
            host = element(&p.message, "REMOTE_HOST").unwrap_or_default();
            element(&p.message, "ARGUMENTS").unwrap_or_default()
        } else {
            if kind == "API" {
                api = call_info_b64(&p.message);
            } else {
                let resource = element(&p.message, "HOOK_OBJECT").unwrap_or_default();
                let id = element(&p.message, "RESOURCE_ID")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(-1);
                // The object as the event left it, when the message carries it (as
                // OpenNebula's do); else as it is now.
                let carried = carried_object(&p.message);
                if !carried.is_empty() {
                    object = base64::engine::general_purpose::STANDARD.encode(carried);
                } else if let Some((xml, h)) = object_of(&self.pool, &resource, id).await? {
                    object = base64::engine::general_purpose::STANDARD.encode(xml);
                    host = h;
                }
            }
            get("ARGUMENTS")
                .split_whitespace()
                .map(|a| match a {
                    "$API" => api.as_str(),
                    "$TEMPLATE" => object.as_str(),
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        };
        let command = get("COMMAND");
        let program = if Path::new(&command).is_absolute() {
            PathBuf::from(&command)
        } else if remote {
            Path::new(REMOTE_HOOKS).join(&command)
        } else {
            self.remotes.join("hooks").join(&command)
        };
        Ok(Some(Plan {
            program,
            args,
            stdin: get("ARGUMENTS_STDIN").eq_ignore_ascii_case("yes"),
            timeout: get("TIMEOUT")
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            remote: remote.then_some(host),
            retry,
        }))
    }
}

/// The object XML a state event's message carries after its RESOURCE_ID; empty if none.
fn carried_object(message: &str) -> &str {
    let Some(start) = message.find("</RESOURCE_ID>") else {
        return "";
    };
    let rest = &message[start + "</RESOURCE_ID>".len()..];
    rest.strip_suffix("</HOOK_MESSAGE>").unwrap_or("")
}

/// Runs a plan: (exit code, stdout, stderr, the command as recorded). A hook that cannot
/// start, times out or dies of a signal exits 255, as OpenNebula's HEM records it.
async fn run_plan(plan: &Plan, exeid: i64) -> (i64, Vec<u8>, Vec<u8>, String) {
    let args: Vec<&str> = plan.args.split_whitespace().collect();
    let shown = plan.program.display().to_string();
    let command = if plan.stdin || args.is_empty() {
        shown.clone()
    } else {
        format!("{shown} {}", plan.args)
    };
    let mut cmd = match &plan.remote {
        Some(host) => {
            let mut c = tokio::process::Command::new("ssh");
            c.arg(host).arg(&shown);
            c
        }
        None => tokio::process::Command::new(&plan.program),
    };
    if !plan.stdin {
        cmd.args(&args);
    }
    cmd.env("HOOK_EXECUTION", exeid.to_string())
        .stdin(if plan.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                255,
                Vec::new(),
                format!("{shown}: {e}").into_bytes(),
                command,
            )
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = plan.args.clone();
        tokio::spawn(async move {
            // A hook that does not read its input is no error of ours.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (o, e, status) = tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait());
        (o, e, status)
    };
    let waited = match plan.timeout {
        Some(t) => tokio::time::timeout(t, work).await.ok(),
        None => Some(work.await),
    };
    match waited {
        Some((out, err, Ok(status))) => (status.code().map_or(255, i64::from), out, err, command),
        Some((out, _, Err(e))) => (255, out, e.to_string().into_bytes(), command),
        None => (
            255,
            Vec::new(),
            format!("Timeout executing {shown}").into_bytes(),
            command,
        ),
    }
}

/// Bytes of a hook's arguments (and so of its command line) kept in its record: `$API` of a
/// call with a large template could otherwise make a record too large to replicate, and an
/// execution that cannot be recorded would run again and again.
const MAX_RECORDED_ARGS: usize = 64 * 1024;

fn bounded(text: &str) -> &str {
    if text.len() <= MAX_RECORDED_ARGS {
        return text;
    }
    let mut end = MAX_RECORDED_ARGS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        // What was read before an error is kept; the exit status tells the outcome.
        let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    buf
}

/// The hook is killed if the thread that started it dies (the whole server, on SIGKILL).
/// The one `unsafe` of the server: `pre_exec` runs between fork and exec, where only
/// async-signal-safe calls are allowed, and `prctl` is one.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Ruby's `Base64.encode64`, which OpenNebula's records hold: a line break every 60 characters
/// and at the end.
fn encode64(bytes: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for chunk in flat.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_encoded_as_ruby_encodes_it() {
        assert_eq!(encode64(b""), "");
        assert_eq!(encode64(b"hi"), "aGk=\n");
        let long = encode64(&[b'a'; 60]);
        assert_eq!(long.lines().map(str::len).collect::<Vec<_>>(), vec![60, 20]);
    }
}
