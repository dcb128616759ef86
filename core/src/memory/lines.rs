//! The claim order: one line of ready jobs per kind, each in claim order.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Where a ready job sits: priority first (highest), then batch and depth
/// (proof-first) or nothing (FIFO).
pub(super) type Level = (Reverse<i16>, i64, u16);

/// One kind's ready jobs, in claim order: by level, then by key (the id, that
/// is age, proof-first; the arrival number under FIFO).
#[derive(Debug, Default)]
pub(super) struct Ready {
    pub(super) levels: BTreeMap<Level, VecDeque<(u64, u64)>>,
    pub(super) len: usize,
}

impl Ready {
    pub(super) fn push(&mut self, level: Level, key: u64, id: u64) {
        let level = self.levels.entry(level).or_default();
        // New jobs come in key order (O(1)); a job back from a claim (an
        // older id) usually goes to the front.
        match (level.front(), level.back()) {
            (_, Some(&(back, _))) if back < key => level.push_back((key, id)),
            (Some(&(front, _)), _) if key < front => level.push_front((key, id)),
            (None, None) => level.push_back((key, id)),
            _ => {
                let at = level.partition_point(|&(other, _)| other < key);
                level.insert(at, (key, id));
            }
        }
        self.len += 1;
    }

    /// Takes `id` out of the line, wherever it stands; returns whether it
    /// was there. Linear: only a late save needs it.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        let found = self.levels.iter().find_map(|(level, line)| {
            line.iter()
                .position(|&(_, other)| other == id)
                .map(|at| (*level, at))
        });
        let Some((level, at)) = found else {
            return false;
        };
        if let Some(line) = self.levels.get_mut(&level) {
            line.remove(at);
            if line.is_empty() {
                self.levels.remove(&level);
            }
        }
        self.len -= 1;
        true
    }

    /// The next job's place: its level and key.
    pub(super) fn head(&self) -> Option<(Level, u64)> {
        let (level, line) = self.levels.first_key_value()?;
        line.front().map(|&(key, _)| (*level, key))
    }

    pub(super) fn pop(&mut self) -> Option<u64> {
        let mut entry = self.levels.first_entry()?;
        let id = entry.get_mut().pop_front().map(|(_, id)| id);
        if entry.get().is_empty() {
            entry.remove();
        }
        if id.is_some() {
            self.len -= 1;
        }
        id
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = (Level, u64, u64)> + '_ {
        self.levels
            .iter()
            .flat_map(|(level, line)| line.iter().map(|&(key, id)| (*level, key, id)))
    }
}

/// One kind's jobs: the ready ones, and counts of the rest, so a picker of
/// some kinds knows when there is nothing more for it.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) kind: JobKind,
    pub(super) ready: Ready,
    pub(super) delayed: usize,
    pub(super) waiting: usize,
    pub(super) claimed: usize,
}

/// Every kind's line (one, for a queue without kinds), and the claim order.
#[derive(Debug, Default)]
pub(super) struct Lines {
    pub(super) lines: Vec<Line>,
    pub(super) order: ClaimOrder,
    /// Arrivals so far: the FIFO key.
    pub(super) arrivals: u64,
}

impl Lines {
    /// The line of `kind`, added on first use.
    pub(super) fn line_of(&mut self, kind: JobKind) -> u16 {
        if let Some(at) = self.lines.iter().position(|l| l.kind == kind) {
            return u16::try_from(at).unwrap_or(u16::MAX);
        }
        self.lines.push(Line {
            kind,
            ready: Ready::default(),
            delayed: 0,
            waiting: 0,
            claimed: 0,
        });
        u16::try_from(self.lines.len() - 1).unwrap_or(u16::MAX)
    }

    pub(super) fn line(&mut self, line: u16) -> Option<&mut Line> {
        self.lines.get_mut(usize::from(line))
    }

    pub(super) fn push(&mut self, line: u16, options: &RowOptions, id: u64) {
        let (level, key) = match self.order {
            ClaimOrder::ProofFirst => (
                (Reverse(options.priority), options.batch, options.depth),
                id,
            ),
            ClaimOrder::Fifo => ((Reverse(options.priority), 0, 0), self.arrivals),
        };
        self.arrivals += 1;
        if let Some(line) = self.lines.get_mut(usize::from(line)) {
            line.ready.push(level, key, id);
        }
    }

    /// The next job for a picker of `kinds`: the first of its preferred kinds
    /// that has one, or the front-most of the kinds it takes.
    pub(super) fn pop(&mut self, kinds: &Kinds) -> Option<u64> {
        // A queue without kinds has one line: the hot path.
        if let [line] = self.lines.as_mut_slice() {
            return kinds.admits(&line.kind).then(|| line.ready.pop())?;
        }
        let at = match kinds {
            KindFilter::Only(preferred) => preferred.iter().find_map(|kind| {
                self.lines
                    .iter()
                    .position(|l| l.kind == *kind && l.ready.len > 0)
            })?,
            KindFilter::Every | KindFilter::Except(_) => {
                self.lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| kinds.admits(&l.kind))
                    .filter_map(|(at, l)| l.ready.head().map(|head| (head, at)))
                    .min()?
                    .1
            }
        };
        self.lines.get_mut(at)?.ready.pop()
    }

    pub(super) fn ready_len(&self) -> usize {
        self.lines.iter().map(|l| l.ready.len).sum()
    }

    /// Every ready id, in the order a picker of every kind takes them.
    pub(super) fn ids(&self) -> Vec<u64> {
        let mut all: Vec<(Level, u64, u64)> =
            self.lines.iter().flat_map(|l| l.ready.entries()).collect();
        if self.lines.len() > 1 {
            all.sort_unstable();
        }
        all.into_iter().map(|(_, _, id)| id).collect()
    }
}

/// The kinds a [`QueuePicker`] takes.
pub(super) type Kinds = KindFilter<JobKind>;
