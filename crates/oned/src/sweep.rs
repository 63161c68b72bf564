//! A leader task's rotating read of the rows it has work on, when there may be too many to read
//! in one period: each period reads up to a limit of rows above the id where the last one
//! stopped, then starts again from the lowest. Rows that stay (a VM no host can take, a VM whose
//! scheduled actions are all done) then delay later rows by a few periods, never for good, as a
//! plain "lowest ids first" read of a fixed size did.

#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    after: i64,
    limit: usize,
}

impl Sweep {
    pub const fn new(limit: usize) -> Sweep {
        Sweep { after: -1, limit }
    }

    /// The next read: rows of ids above this, lowest first...
    pub fn after(&self) -> i64 {
        self.after
    }

    /// ...at most this many.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What the read returned: `read` rows, the last of id `last`. A full read goes on after it
    /// next time; a short one reached the end, so the next starts from the lowest id.
    pub fn advance(&mut self, read: usize, last: Option<i64>) {
        self.after = match last {
            Some(last) if read >= self.limit => last,
            _ => -1,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reads_go_on_where_they_stopped_and_a_short_one_starts_over() {
        let ids: Vec<i64> = (0..7).map(|i| i * 10).collect();
        let mut sweep = Sweep::new(3);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let read: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|&i| i > sweep.after())
                .take(sweep.limit())
                .collect();
            seen.push(read.clone());
            sweep.advance(read.len(), read.last().copied());
        }
        assert_eq!(
            seen,
            [vec![0, 10, 20], vec![30, 40, 50], vec![60], vec![0, 10, 20]]
        );
    }
}
