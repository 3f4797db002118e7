//! What became of each line of a source file, kept as runs of consecutive lines with one outcome: an
//! export whose rows all convert is one run however long it is, so the reconciliation of a long run does
//! not grow with its rows.

use std::collections::BTreeMap;

/// What became of one line (or element) of a source file; a line with several records keeps the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum LineOutcome {
    /// Its record builds nothing.
    WithoutOutput,
    /// Its record converted.
    Converted,
    /// Its record was rejected.
    Rejected,
}

/// The outcome of each line told so far: runs `start → (end, outcome)`, lines `start..end`, apart and
/// never two touching runs with one outcome.
#[derive(Debug, Clone, Default)]
pub(super) struct LineOutcomes {
    runs: BTreeMap<u64, (u64, LineOutcome)>,
}

impl LineOutcomes {
    /// `line` had `outcome` (a line told twice keeps the worse of the two).
    pub(super) fn record(&mut self, line: u64, outcome: LineOutcome) {
        let end = line.saturating_add(1);
        if let Some((start, (run_end, was))) = self.run_holding(line) {
            if was >= outcome {
                return;
            }
            // Split the run around the line.
            self.runs.remove(&start);
            if start < line {
                self.runs.insert(start, (line, was));
            }
            if end < run_end {
                self.runs.insert(end, (run_end, was));
            }
        }
        self.insert_merged(line, end, outcome);
    }

    /// Whether `line` was told.
    pub(super) fn contains(&self, line: u64) -> bool {
        self.run_holding(line).is_some()
    }

    /// How many lines had each outcome: (without output, converted, rejected).
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        let mut counts = (0, 0, 0);
        for (&start, &(end, outcome)) in &self.runs {
            let lines = end - start;
            match outcome {
                LineOutcome::WithoutOutput => counts.0 += lines,
                LineOutcome::Converted => counts.1 += lines,
                LineOutcome::Rejected => counts.2 += lines,
            }
        }
        counts
    }

    fn run_holding(&self, line: u64) -> Option<(u64, (u64, LineOutcome))> {
        let (&start, &run) = self.runs.range(..=line).next_back()?;
        (line < run.0).then_some((start, run))
    }

    /// Add the run `start..end`, joined to a touching run before or after it with the same outcome.
    fn insert_merged(&mut self, mut start: u64, mut end: u64, outcome: LineOutcome) {
        if let Some((&before, &(before_end, was))) = self.runs.range(..start).next_back()
            && before_end == start
            && was == outcome
        {
            self.runs.remove(&before);
            start = before;
        }
        if let Some(&(after_end, was)) = self.runs.get(&end)
            && was == outcome
        {
            self.runs.remove(&end);
            end = after_end;
        }
        self.runs.insert(start, (end, outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::LineOutcome::{Converted, Rejected, WithoutOutput};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn consecutive_lines_with_one_outcome_are_one_run() {
        let mut lines = LineOutcomes::default();
        for line in 2..100_002 {
            lines.record(line, Converted);
        }
        assert_eq!(lines.runs.len(), 1);
        assert_eq!(lines.counts(), (0, 100_000, 0));
        lines.record(500, Rejected);
        assert_eq!(lines.runs.len(), 3);
        assert_eq!(lines.counts(), (0, 99_999, 1));
        lines.record(500, Converted);
        assert_eq!(
            lines.counts(),
            (0, 99_999, 1),
            "a line keeps its worst outcome"
        );
        assert!(lines.contains(2) && lines.contains(100_001) && !lines.contains(1));
    }

    fn outcome() -> impl Strategy<Value = LineOutcome> {
        prop_oneof![Just(WithoutOutput), Just(Converted), Just(Rejected)]
    }

    proptest! {
        /// The runs say what a map of every line to its worst outcome says.
        #[test]
        fn runs_agree_with_a_line_by_line_map(told in prop::collection::vec((0u64..60, outcome()), 0..200)) {
            let mut lines = LineOutcomes::default();
            let mut each: BTreeMap<u64, LineOutcome> = BTreeMap::new();
            for (line, outcome) in told {
                lines.record(line, outcome);
                let slot = each.entry(line).or_insert(outcome);
                *slot = (*slot).max(outcome);
            }
            for line in 0..61 {
                prop_assert_eq!(lines.contains(line), each.contains_key(&line));
            }
            let count = |o: LineOutcome| each.values().filter(|v| **v == o).count() as u64;
            prop_assert_eq!(lines.counts(), (count(WithoutOutput), count(Converted), count(Rejected)));
            // Runs are apart and never two touching ones with one outcome.
            let runs: Vec<_> = lines.runs.iter().map(|(s, (e, o))| (*s, *e, *o)).collect();
            for pair in runs.windows(2) {
                prop_assert!(pair[0].1 <= pair[1].0);
                prop_assert!(pair[0].1 < pair[1].0 || pair[0].2 != pair[1].2);
            }
        }
    }
}
