//! Whom this server granted its vote to, and in which term: what OpenNebula's VOTEDFOR shows
//! on a follower. openraft saves the leader's committed vote on every server it replicates to,
//! voter or not, so its saved vote cannot tell a vote granted from a term learned from the
//! leader (OpenNebula's `RaftManager::follower` resets VOTEDFOR to -1 for the latter). Kept in
//! a small file beside the log, so a restart shows the same vote, as OpenNebula's RAFT_STATE.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing::warn;

/// The last vote granted here: (term, candidate).
static GRANTED: Mutex<Option<(u64, u64)>> = Mutex::new(None);
/// Where it is kept, once [`keep_in`] named it.
static FILE: OnceLock<PathBuf> = OnceLock::new();

/// Keeps the granted vote in `path` from now on, and reads the one kept there before.
pub fn keep_in(path: &Path) {
    if FILE.set(path.to_path_buf()).is_err() {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    if let (Some(Ok(term)), Some(Ok(candidate))) = (words.next(), words.next()) {
        if let Ok(mut g) = GRANTED.lock() {
            *g = Some((term, candidate));
        }
    }
}

/// Notes that this server granted its vote to `candidate` in `term`.
pub(crate) fn note(term: u64, candidate: u64) {
    let Ok(mut g) = GRANTED.lock() else {
        return;
    };
    if g.is_some_and(|(t, c)| t > term || (t, c) == (term, candidate)) {
        return;
    }
    *g = Some((term, candidate));
    if let Some(path) = FILE.get() {
        if let Err(e) = write_private(path, &format!("{term} {candidate}\n")) {
            warn!(error = %e, path = %path.display(), "keeping the vote granted failed; raftstatus shows it until a restart");
        }
    }
}

/// The candidate this server granted its vote to in `term`, if it did.
pub fn granted_in(term: u64) -> Option<u64> {
    GRANTED
        .lock()
        .ok()
        .and_then(|g| *g)
        .filter(|(t, _)| *t == term)
        .map(|(_, c)| c)
}

/// Writes `text` to `path`, readable by this user alone (every state file is).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}
