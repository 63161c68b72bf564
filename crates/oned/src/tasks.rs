//! The supervisor of oned's long-lived background tasks (membership, retention, hooks, the dummy
//! drivers...): each is started here under a name, its failures are logged with that name and
//! counted, and an orderly shutdown stops them all and waits for them.
//!
//! A task is a future the supervisor runs in its own tokio task, so a panic is caught and
//! reported like an error. Cancellation is the supervisor's: at shutdown it drops the task's
//! future at its next `.await` (a hook still running is killed, a Raft call in flight is
//! abandoned, never half applied), so no task has to poll a token in its loop.
//!
//! - [`Restart::WithBackoff`]: a loop meant to run until shutdown. An error, a panic or a return
//!   is logged at error (warn for a return), counted, and the loop is started again after a
//!   delay that doubles up to [`MAX_BACKOFF`].
//! - [`Restart::Never`]: a one-shot. Its end is logged at info, an error or a panic at error
//!   (and counted); it is not started again.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The first delay before a failed loop starts again.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay before a failed loop starts again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the supervisor does when a task ends before shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// A loop: start it again after a growing delay.
    WithBackoff,
    /// A one-shot: report how it ended.
    Never,
}

/// What happened to one task so far; read for metrics and by tests.
#[derive(Debug, Default)]
pub struct TaskCounters {
    /// Times the task was started (1 + restarts).
    pub starts: AtomicU64,
    /// Times it ended with an error.
    pub failures: AtomicU64,
    /// Times it panicked.
    pub panics: AtomicU64,
    /// Times a loop returned although nothing asked it to stop.
    pub early_exits: AtomicU64,
    /// Errors the task survived (it logged them at warn and carried on, see [`TaskCtx::warn`]).
    pub warnings: AtomicU64,
}

/// A copy of [`TaskCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub starts: u64,
    pub failures: u64,
    pub panics: u64,
    pub early_exits: u64,
    pub warnings: u64,
}

impl TaskCounters {
    pub fn stats(&self) -> TaskStats {
        TaskStats {
            starts: self.starts.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
            early_exits: self.early_exits.load(Ordering::Relaxed),
            warnings: self.warnings.load(Ordering::Relaxed),
        }
    }
}

/// How often one task logs the same kind of error it carries on after: a database that is gone
/// for a minute would otherwise write every task's failed read ten times a second, and push
/// what says why out of sight.
const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// Kinds of error one task remembers when it last logged; past this, the oldest is forgotten.
const REPEATS_KEPT: usize = 32;

/// Given to every run of a task: its name and counters, for the errors it survives.
#[derive(Debug, Clone)]
pub struct TaskCtx {
    name: &'static str,
    counters: Arc<TaskCounters>,
    repeats: Arc<Mutex<Vec<Repeat>>>,
}

/// When one kind of error (its `what`) was last logged, and how many were not since.
#[derive(Debug)]
struct Repeat {
    what: String,
    logged: Instant,
    unlogged: u64,
}

impl TaskCtx {
    /// An error the task carries on after (it retries at its next period): counted, and logged
    /// at warn with the task's name, the same `what` at most once per `REPEAT_EVERY` (with the
    /// number left out since).
    pub fn warn(&self, what: &str, error: &dyn Display) {
        self.counters.warnings.fetch_add(1, Ordering::Relaxed);
        let Some(unlogged) = self.due(what) else {
            return;
        };
        if unlogged == 0 {
            warn!(task = self.name, error = %error, "{what}");
        } else {
            warn!(task = self.name, error = %error, unlogged, "{what} (again)");
        }
    }

    /// `Some(n)` when `what` is to be logged now, `n` being how many went unlogged before.
    fn due(&self, what: &str) -> Option<u64> {
        let Ok(mut repeats) = self.repeats.lock() else {
            return Some(0);
        };
        let now = Instant::now();
        match repeats.iter_mut().find(|r| r.what == what) {
            Some(r) if now.duration_since(r.logged) < REPEAT_EVERY => {
                r.unlogged += 1;
                None
            }
            Some(r) => {
                r.logged = now;
                Some(std::mem::take(&mut r.unlogged))
            }
            None => {
                if repeats.len() >= REPEATS_KEPT {
                    repeats.remove(0);
                }
                repeats.push(Repeat {
                    what: what.to_string(),
                    logged: now,
                    unlogged: 0,
                });
                Some(0)
            }
        }
    }
}

struct Entry {
    name: &'static str,
    counters: Arc<TaskCounters>,
    handle: JoinHandle<()>,
}

/// Starts, watches and stops the background tasks of one server.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<Entry>>,
}

impl Default for Supervisor {
    fn default() -> Supervisor {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor {
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts `make`'s future as the task `name`; `make` is called again for each restart.
    pub fn spawn<F, Fut, E>(&self, name: &'static str, restart: Restart, make: F)
    where
        F: FnMut(TaskCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let counters = Arc::new(TaskCounters::default());
        let ctx = TaskCtx {
            name,
            counters: counters.clone(),
            repeats: Arc::default(),
        };
        let handle = tokio::spawn(supervise(ctx, restart, self.stop.subscribe(), make));
        self.entries().push(Entry {
            name,
            counters,
            handle,
        });
    }

    /// Starts `worker`, a loop that cannot be started again (it owns the receiving end of a
    /// queue): its end before shutdown is a failure, logged and counted like any task's.
    pub fn spawn_worker(
        &self,
        name: &'static str,
        worker: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut once = Some(worker);
        self.spawn(name, Restart::Never, move |_| {
            let worker = once.take();
            async move {
                match worker {
                    Some(w) => w.await,
                    None => return Err("it cannot be started twice"),
                }
                Err("it stopped before shutdown")
            }
        });
    }

    /// Each task's name and counters, in the order they were started.
    pub fn stats(&self) -> Vec<(&'static str, TaskStats)> {
        self.entries()
            .iter()
            .map(|e| (e.name, e.counters.stats()))
            .collect()
    }

    /// Asks every task to stop and waits, until `within` has passed, for them to end; a task
    /// still running then is logged and aborted. Returns the names of those.
    pub async fn shutdown(&self, within: Duration) -> Vec<&'static str> {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + within;
        let entries = std::mem::take(&mut *self.entries());
        let mut late = Vec::new();
        for mut e in entries {
            match tokio::time::timeout_at(deadline, &mut e.handle).await {
                Ok(Ok(())) => {}
                Ok(Err(join)) => error!(task = e.name, error = %join, "task supervisor failed"),
                Err(_) => {
                    warn!(task = e.name, within = ?within, "task did not stop in time: aborted");
                    e.handle.abort();
                    late.push(e.name);
                }
            }
        }
        late
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // The list stays whole even if a holder panicked: every change is one push or take.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Aborts the task it holds when dropped, so a supervisor that is itself aborted takes its
/// task along.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender means the supervisor is gone: stop as well.
    let _gone_or_set = stop.wait_for(|s| *s).await;
}

async fn supervise<F, Fut, E>(
    ctx: TaskCtx,
    restart: Restart,
    mut stop: watch::Receiver<bool>,
    mut make: F,
) where
    F: FnMut(TaskCtx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let name = ctx.name;
    let counters = ctx.counters.clone();
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        counters.starts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut run = AbortOnDrop(tokio::spawn(make(ctx.clone())));
        let ended = tokio::select! {
            ended = &mut run.0 => ended,
            () = stopped(&mut stop) => {
                run.0.abort();
                if let Err(e) = (&mut run.0).await {
                    if e.is_panic() {
                        counters.panics.fetch_add(1, Ordering::Relaxed);
                        error!(task = name, panic = panic_message(e), "task panicked while stopping");
                    }
                }
                info!(task = name, "task stopped");
                return;
            }
        };
        match ended {
            Ok(Ok(())) if restart == Restart::Never => {
                info!(task = name, "task finished");
                return;
            }
            Ok(Ok(())) => {
                counters.early_exits.fetch_add(1, Ordering::Relaxed);
                warn!(task = name, "task ended although nothing asked it to stop");
            }
            Ok(Err(e)) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                error!(task = name, error = %e, "task failed");
            }
            Err(e) if e.is_panic() => {
                counters.panics.fetch_add(1, Ordering::Relaxed);
                error!(task = name, panic = panic_message(e), "task panicked");
            }
            Err(e) => {
                // Only the supervisor aborts a run, and it returned above when it did.
                counters.failures.fetch_add(1, Ordering::Relaxed);
                error!(task = name, error = %e, "task was cancelled");
            }
        }
        if restart == Restart::Never {
            return;
        }
        if started.elapsed() > MAX_BACKOFF {
            // It ran long enough to count as healthy: a new failure starts the delays over.
            backoff = MIN_BACKOFF;
        }
        warn!(task = name, after = ?backoff, "restarting the task");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => {
                info!(task = name, "task stopped");
                return;
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `cond` until it holds or `within` passes.
    async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cond()
    }

    fn stats_of(s: &Supervisor, name: &str) -> TaskStats {
        s.stats()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, st)| st)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_failing_loop_is_counted_and_restarted_and_a_panic_too() {
        let s = Supervisor::new();
        let runs = Arc::new(AtomicU64::new(0));
        let r = runs.clone();
        s.spawn("flaky", Restart::WithBackoff, move |_ctx| {
            let n = r.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0 => Err("first run fails".to_string()),
                    1 => panic!("second run panics"),
                    2 => Ok(()),
                    _ => std::future::pending().await,
                }
            }
        });
        let healthy = eventually(Duration::from_secs(10), || {
            stats_of(&s, "flaky").starts == 4
        })
        .await;
        let st = stats_of(&s, "flaky");
        assert!(healthy, "{st:?}");
        assert_eq!(
            st,
            TaskStats {
                starts: 4,
                failures: 1,
                panics: 1,
                early_exits: 1,
                warnings: 0
            }
        );
        assert!(s.shutdown(Duration::from_secs(5)).await.is_empty());
    }

    #[test]
    fn an_error_that_repeats_is_counted_each_time_and_logged_once_per_period() {
        let ctx = TaskCtx {
            name: "t",
            counters: Arc::default(),
            repeats: Arc::default(),
        };
        assert_eq!(ctx.due("reading failed"), Some(0));
        assert_eq!(ctx.due("reading failed"), None);
        assert_eq!(ctx.due("reading failed"), None);
        // Another kind of error is logged at once.
        assert_eq!(ctx.due("writing failed"), Some(0));
        // A period later, with how many were left out.
        ctx.repeats.lock().unwrap()[0].logged -= REPEAT_EVERY;
        assert_eq!(ctx.due("reading failed"), Some(2));
        assert_eq!(ctx.due("reading failed"), None);
        for n in 0..REPEATS_KEPT {
            ctx.due(&format!("kind {n}"));
        }
        assert_eq!(ctx.repeats.lock().unwrap().len(), REPEATS_KEPT);
        ctx.warn("reading failed", &"gone");
        ctx.warn("reading failed", &"gone");
        assert_eq!(ctx.counters.stats().warnings, 2);
    }

    #[tokio::test]
    async fn a_one_shot_is_not_restarted_and_its_error_is_counted() {
        let s = Supervisor::new();
        s.spawn("once", Restart::Never, |ctx: TaskCtx| async move {
            ctx.warn("a survivable error", &"disk busy");
            Err::<(), _>("gave up")
        });
        let ended = eventually(Duration::from_secs(10), || {
            stats_of(&s, "once").failures == 1
        })
        .await;
        assert!(ended);
        // Long enough for a restart after MIN_BACKOFF, were there one.
        tokio::time::sleep(MIN_BACKOFF * 3).await;
        assert_eq!(
            stats_of(&s, "once"),
            TaskStats {
                starts: 1,
                failures: 1,
                warnings: 1,
                ..TaskStats::default()
            }
        );
        assert!(s.shutdown(Duration::from_secs(5)).await.is_empty());
    }

    /// Sets its flag when dropped: shows a task's future was dropped, not leaked.
    struct DropFlag(Arc<AtomicU64>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_worker_that_ends_before_shutdown_is_a_failure_and_a_running_one_stops() {
        let s = Supervisor::new();
        s.spawn_worker("ends", async {});
        s.spawn_worker("runs", std::future::pending());
        let ended = eventually(Duration::from_secs(10), || {
            stats_of(&s, "ends").failures == 1
        })
        .await;
        assert!(ended, "{:?}", stats_of(&s, "ends"));
        assert_eq!(stats_of(&s, "ends").starts, 1);
        assert_eq!(stats_of(&s, "runs").failures, 0);
        assert!(s.shutdown(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn shutdown_stops_every_task_and_returns_after_they_ended() {
        let s = Supervisor::new();
        let dropped = Arc::new(AtomicU64::new(0));
        for name in ["a", "b", "c"] {
            let d = dropped.clone();
            s.spawn(name, Restart::WithBackoff, move |_ctx| {
                let flag = DropFlag(d.clone());
                async move {
                    let _held = flag;
                    std::future::pending::<Result<(), String>>().await
                }
            });
        }
        let running = eventually(Duration::from_secs(10), || {
            s.stats().iter().all(|(_, st)| st.starts == 1)
        })
        .await;
        assert!(running);
        let started = Instant::now();
        let late = s.shutdown(Duration::from_secs(5)).await;
        assert!(late.is_empty(), "{late:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            3,
            "a task outlived shutdown"
        );
    }

    // Two workers: the stuck task holds one, the supervisor and the test need the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_stuck_in_blocking_code_is_reported_and_shutdown_still_returns() {
        let s = Supervisor::new();
        // Set by the body itself: a task counted as started may not have been polled yet, and
        // one cancelled before its first poll is not stuck (this raced once under a full run).
        let inside = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let entered = inside.clone();
        s.spawn("stuck", Restart::Never, move |_ctx| {
            let entered = entered.clone();
            async move {
                entered.store(true, Ordering::SeqCst);
                // Never reaches an .await: cancellation cannot reach it.
                std::thread::sleep(Duration::from_secs(4));
                Ok::<(), String>(())
            }
        });
        let running = eventually(Duration::from_secs(10), || inside.load(Ordering::SeqCst)).await;
        assert!(running);
        let late = s.shutdown(Duration::from_millis(200)).await;
        assert_eq!(late, vec!["stuck"]);
    }
}
