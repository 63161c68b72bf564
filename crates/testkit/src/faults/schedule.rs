//! The fault schedule: a list of steps drawn from a seed, so the same seed replays the same
//! kinds of faults, targets (by role) and timings.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Whom a fault hits, resolved when the step runs (the leader then, a follower by rank...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Leader,
    /// The n-th follower (modulo their number).
    Follower(usize),
    /// The n-th member (modulo their number), whatever its role.
    Any(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, restart after the hold.
    Kill(Target),
    /// SIGTERM (an orderly stop: a leader hands over), restart after the hold.
    Stop(Target),
    /// SIGSTOP, SIGCONT after the hold.
    Pause(Target),
    /// Cut every link between the target and the other servers.
    Isolate(Target),
    /// Cut the zone in two: the target and the n-th other server on one side (a minority in a
    /// zone of 5, or the majority keeps quorum with 3 after isolating one).
    Split(Target, usize),
    /// `onezone server-del` of a follower, then `server-add` of a fresh server in its place.
    Replace(usize),
    /// No fault: the zone should just work.
    Calm,
    /// Power cut of one server: SIGKILL, its disk forgets what was not synced, restart after
    /// the hold.
    PowerCut(Target),
    /// Power cut of a minority at once (1 of 3, 2 of 5), starting with the n-th member.
    PowerCutMinority(usize),
    /// Power cut of every server at once: only what each fsynced survives.
    PowerCutAll,
    /// `onedb backup` on a server, and the power cut while it may still run (after the hold).
    PowerCutDuringBackup(Target),
    /// `onedb restore` of a leader's backup on the n-th follower, cut while it may still run.
    PowerCutDuringRestore(usize),
    /// Power cut of the leader, then of every server as soon as one asks for votes in a new
    /// term: the votes just granted must survive.
    PowerCutDuringElection,
}

impl Fault {
    /// A power cut of one or more servers (a trial of the power-cut campaign).
    pub fn is_power_cut(&self) -> bool {
        matches!(
            self,
            Fault::PowerCut(_)
                | Fault::PowerCutMinority(_)
                | Fault::PowerCutAll
                | Fault::PowerCutDuringBackup(_)
                | Fault::PowerCutDuringRestore(_)
                | Fault::PowerCutDuringElection
        )
    }
}

/// One step: the fault, how long it lasts, and the calm after it.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub rest: Duration,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} for {} ms, then {} ms calm",
            self.fault,
            self.hold.as_millis(),
            self.rest.as_millis()
        )
    }
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

fn target(rng: &mut StdRng) -> Target {
    match rng.gen_range(0..10) {
        0..=5 => Target::Leader,
        6..=7 => Target::Follower(rng.gen_range(0..8)),
        _ => Target::Any(rng.gen_range(0..8)),
    }
}

/// Steps filling about `duration`, drawn from `seed`.
pub fn schedule(seed: u64, duration: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    while total < duration {
        let fault = match rng.gen_range(0..100) {
            0..=17 => Fault::Kill(target(&mut rng)),
            18..=24 => Fault::Stop(target(&mut rng)),
            25..=44 => Fault::Pause(target(&mut rng)),
            45..=69 => Fault::Isolate(target(&mut rng)),
            70..=81 => Fault::Split(target(&mut rng), rng.gen_range(0..8)),
            82..=93 => Fault::Replace(rng.gen_range(0..8)),
            _ => Fault::Calm,
        };
        let step = Step {
            fault,
            hold: ms(&mut rng, 300, 4000),
            rest: ms(&mut rng, 200, 2500),
        };
        total += step.hold + step.rest;
        steps.push(step);
    }
    steps
}

/// Crash-safety steps: only SIGKILLs, short and frequent, so they land at random moments of
/// appending, applying, purging and taking or installing snapshots (with a short log window).
pub fn crash_schedule(seed: u64, duration: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    while total < duration {
        let step = Step {
            fault: Fault::Kill(target(&mut rng)),
            hold: ms(&mut rng, 50, 1500),
            rest: ms(&mut rng, 100, 1000),
        };
        total += step.hold + step.rest;
        steps.push(step);
    }
    steps
}

/// Power-cut steps (issue 18): cuts of one server, a minority and every server, during
/// backups and restores, and replacements (membership changes) among them; holds and rests
/// short enough that cuts land while servers append, apply, purge, snapshot, vote and join.
pub fn power_schedule(seed: u64, duration: Duration) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    while total < duration {
        let fault = match rng.gen_range(0..100) {
            0..=24 => Fault::PowerCut(target(&mut rng)),
            25..=39 => Fault::PowerCutMinority(rng.gen_range(0..8)),
            40..=57 => Fault::PowerCutAll,
            58..=69 => Fault::PowerCutDuringElection,
            70..=79 => Fault::PowerCutDuringBackup(target(&mut rng)),
            80..=91 => Fault::PowerCutDuringRestore(rng.gen_range(0..8)),
            _ => Fault::Replace(rng.gen_range(0..8)),
        };
        // Holds past the election timeout (1 s in tests) let the others elect a new leader.
        let step = Step {
            fault,
            hold: ms(&mut rng, 20, 3000),
            rest: ms(&mut rng, 50, 1000),
        };
        total += step.hold + step.rest;
        steps.push(step);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = schedule(42, Duration::from_secs(120));
        let b = schedule(42, Duration::from_secs(120));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(
            format!("{a:?}"),
            format!("{:?}", schedule(43, Duration::from_secs(120)))
        );
    }

    #[test]
    fn a_schedule_covers_every_kind_of_fault() {
        let steps = schedule(7, Duration::from_secs(600));
        let has = |f: fn(&Fault) -> bool| steps.iter().any(|s| f(&s.fault));
        assert!(has(|f| matches!(f, Fault::Kill(Target::Leader))));
        assert!(has(|f| matches!(f, Fault::Stop(Target::Leader))));
        assert!(has(|f| matches!(f, Fault::Pause(_))));
        assert!(has(|f| matches!(f, Fault::Isolate(_))));
        assert!(has(|f| matches!(f, Fault::Split(..))));
        assert!(has(|f| matches!(f, Fault::Replace(_))));
    }

    #[test]
    fn a_power_schedule_cuts_one_a_minority_and_every_server_during_backups_and_restores() {
        let steps = power_schedule(5, Duration::from_secs(120));
        let has = |f: fn(&Fault) -> bool| steps.iter().any(|s| f(&s.fault));
        assert!(has(|f| matches!(f, Fault::PowerCut(Target::Leader))));
        assert!(has(|f| matches!(f, Fault::PowerCutMinority(_))));
        assert!(has(|f| matches!(f, Fault::PowerCutAll)));
        assert!(has(|f| matches!(f, Fault::PowerCutDuringBackup(_))));
        assert!(has(|f| matches!(f, Fault::PowerCutDuringRestore(_))));
        assert!(has(|f| matches!(f, Fault::PowerCutDuringElection)));
        assert!(has(|f| matches!(f, Fault::Replace(_))));
    }
}
