//! Checks histories recorded by the fault-injection suite.
//!
//! * [`check_register`]: linearizability of one register (one attribute of one
//!   object) whose operations may have unknown outcomes.
//! * [`check_set`]: a grow-only set of uniquely named objects against the
//!   final contents.
//! * [`check_monotonic_set_reads`] and [`check_register_values_seen`]: reads
//!   served by followers, which may be stale but must not invent values or go
//!   backwards.
//!
//! Times are monotonic nanoseconds taken by the client just before sending a
//! request (invoke) and just after receiving its answer (complete). Operation
//! `a` precedes `b` only when `a.complete < b.invoke`; equal times count as
//! overlapping.

use std::fmt;

mod register;
mod set;
#[cfg(test)]
mod tests;

pub use register::{check_register, RegEvent, RegOp, Stats};
pub use set::{check_monotonic_set_reads, check_register_values_seen, check_set, SetAdd, SetStats};

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server acknowledged the operation.
    Ok,
    /// The server definitely did not apply the operation.
    Failed,
    /// Timeout or lost answer: the operation may take effect at any time after
    /// its invoke, or never.
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        })
    }
}

/// A reason why a history is not acceptable.
#[derive(Debug, Clone)]
pub struct Violation {
    /// What is wrong, in one line.
    pub what: String,
    /// Human-readable descriptions of the operations involved.
    pub ops: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        for op in &self.ops {
            write!(f, "\n  {op}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}
