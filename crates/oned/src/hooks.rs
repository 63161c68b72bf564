//! RAFT_LEADER_HOOK and RAFT_FOLLOWER_HOOK, run as OpenNebula runs them: the follower hook when
//! an HA server starts, the leader hook on every election win (before the server takes writes),
//! the follower hook when leadership is lost (a higher term, or a step-down without a majority)
//! and at an orderly shutdown; neither on candidate -> follower.
//!
//! One task runs the hooks, one at a time, in the order of the changes; it never blocks Raft.
//! Leadership is treated as a level, not an edge: after a hook, the task compares the state it
//! acted on with the current one, so changes that came and went while a hook ran coalesce.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Hook;
use crate::leadership::{Leadership, LeadershipGone};

/// A hook still running after this is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Output kept in the log per stream.
const MAX_OUTPUT: u64 = 16 * 1024;

/// A hook ready to run: the program and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCmd {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl HookCmd {
    /// A relative COMMAND is under `<remotes>/hooks/`; ARGUMENTS split on white space.
    pub fn new(name: &'static str, hook: &Hook, remotes: &Path) -> HookCmd {
        let command = Path::new(&hook.command);
        let program = if command.is_absolute() {
            command.to_path_buf()
        } else {
            remotes.join("hooks").join(command)
        };
        HookCmd {
            name,
            program,
            args: hook
                .arguments
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }

    /// Runs the hook to completion (or kills it after `timeout`) and logs what happened.
    /// Returns its exit code, `None` if it could not run or was killed.
    pub async fn run(&self, timeout: Duration) -> Option<i32> {
        let hook = self.name;
        let program = self.program.display().to_string();
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                error!(hook, program, error = %e, "hook could not be started");
                return None;
            }
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let waited = tokio::time::timeout(timeout, async {
            tokio::join!(read_pipe(stdout), read_pipe(stderr), child.wait())
        })
        .await;
        match waited {
            Ok((out, err, Ok(status))) => {
                let code = status.code();
                if status.success() {
                    info!(hook, program, stdout = %out, stderr = %err, "hook successfully executed");
                } else {
                    error!(hook, program, code = ?code, stdout = %out, stderr = %err, "hook execution error");
                }
                code
            }
            Ok((_, _, Err(e))) => {
                error!(hook, program, error = %e, "hook could not be waited for");
                None
            }
            Err(_) => {
                match child.kill().await {
                    Ok(()) => {
                        error!(hook, program, timeout = ?timeout, "hook timed out and was killed")
                    }
                    Err(e) => error!(
                        hook, program, timeout = ?timeout, error = %e,
                        "hook timed out and could not be killed"
                    ),
                }
                None
            }
        }
    }
}

/// What a hook printed on one stream, trimmed and bounded.
async fn read_pipe<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        // What was read before the error is still logged; the exit status tells the outcome.
        if let Err(e) = p.take(MAX_OUTPUT).read_to_end(&mut buf).await {
            warn!(error = %e, "reading a hook's output failed");
        }
    }
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

/// The hooks of one server.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub leader: Option<HookCmd>,
    pub follower: Option<HookCmd>,
}

impl Hooks {
    pub fn new(leader: Option<&Hook>, follower: Option<&Hook>, remotes: &Path) -> Hooks {
        Hooks {
            leader: leader.map(|h| HookCmd::new("RAFT_LEADER_HOOK", h, remotes)),
            follower: follower.map(|h| HookCmd::new("RAFT_FOLLOWER_HOOK", h, remotes)),
        }
    }

    pub async fn run_follower(&self) {
        if let Some(h) = &self.follower {
            h.run(HOOK_TIMEOUT).await;
        }
    }

    async fn run_leader(&self) {
        if let Some(h) = &self.leader {
            h.run(HOOK_TIMEOUT).await;
        }
    }
}

/// The term this server leads in and is ready for writes (its leader hook has run).
pub type LeaderReady = watch::Receiver<Option<u64>>;

/// The hook task's side of [`LeaderReady`]; kept across restarts of the task.
pub type LeaderReadySender = Arc<watch::Sender<Option<u64>>>;

/// The channel the hook task publishes [`LeaderReady`] on: nothing is ready at first.
pub fn leader_ready() -> (LeaderReadySender, LeaderReady) {
    let (tx, rx) = watch::channel(None);
    (Arc::new(tx), rx)
}

/// The hook task of an HA server: runs the follower hook at once (a crash may have left the
/// floating IP here), then reacts to every change of effective leadership. It ends only with an
/// error, when Raft or the step-down watchdog stopped.
pub async fn run(
    hooks: Hooks,
    leadership: Leadership,
    ready: LeaderReadySender,
) -> Result<(), LeadershipGone> {
    // A restarted task knows nothing of what the previous one did: start from follower.
    ready.send_replace(None);
    hooks.run_follower().await;
    let mut changes = leadership.watch();
    let mut acted: Option<u64> = None;
    loop {
        leadership.count_terms_to(leadership.now().0.current_term);
        match (acted, leadership.leading_term()) {
            (a, Some(term)) if a != Some(term) => {
                telemetry::m::BECAME_LEADER.inc();
                info!(
                    term,
                    "leading: running the leader hook before taking writes"
                );
                hooks.run_leader().await;
                acted = Some(term);
                ready.send_replace(Some(term));
                continue;
            }
            (Some(term), None) => {
                telemetry::m::STEP_DOWNS.inc();
                info!(term, "no longer leading: running the follower hook");
                ready.send_replace(None);
                hooks.run_follower().await;
                acted = None;
                continue;
            }
            _ => {}
        }
        changes.changed().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, arguments: &str) -> Hook {
        Hook {
            command: command.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn a_relative_command_runs_from_remotes_hooks_and_arguments_split_on_white_space() {
        let cmd = HookCmd::new(
            "RAFT_LEADER_HOOK",
            &hook("raft/vip.sh", " leader  eth0\t10.0.0.9/24 "),
            Path::new("/var/lib/one/remotes"),
        );
        assert_eq!(
            cmd.program,
            PathBuf::from("/var/lib/one/remotes/hooks/raft/vip.sh")
        );
        assert_eq!(cmd.args, vec!["leader", "eth0", "10.0.0.9/24"]);
        let abs = HookCmd::new("X", &hook("/usr/bin/true", ""), Path::new("/r"));
        assert_eq!(abs.program, PathBuf::from("/usr/bin/true"));
        assert!(abs.args.is_empty());
    }

    #[tokio::test]
    async fn a_hook_reports_its_exit_code_and_a_hung_one_is_killed() {
        let ok = HookCmd::new("X", &hook("/bin/sh", "-c true"), Path::new("/r"));
        assert_eq!(ok.run(Duration::from_secs(10)).await, Some(0));
        let failing = HookCmd::new("X", &hook("/bin/false", ""), Path::new("/r"));
        assert_eq!(failing.run(Duration::from_secs(10)).await, Some(1));
        let missing = HookCmd::new("X", &hook("no/such/hook", ""), Path::new("/nonexistent"));
        assert_eq!(missing.run(Duration::from_secs(10)).await, None);

        let hung = HookCmd::new("X", &hook("/bin/sleep", "30"), Path::new("/r"));
        let started = std::time::Instant::now();
        assert_eq!(hung.run(Duration::from_millis(200)).await, None);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hung hook was not killed: {:?}",
            started.elapsed()
        );
    }
}
