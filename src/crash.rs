//! Deliberate crashes, for the tests that prove a run killed at any point is
//! finished by the next one (`SYNUP_CRASH_AT`). Unset, nothing here runs.

/// Where a run may deliberately die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After this many files were stored in this run.
    AfterFiles(u64),
    /// Before the run's Nth registration (1-based), its batch's files stored
    /// and synced. Counted in the order batches register, which with batches
    /// in flight need not be their order in the plan.
    BeforeCommit(u64),
    /// After the run's Nth registration, before its batch is journaled.
    AfterCommit(u64),
    /// Once a remote listing's journal holds at least this many objects.
    AfterListed(u64),
}

impl CrashPoint {
    /// `files:N`, `before_commit:N`, `after_commit:N` or `listed:N`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, n) = s.split_once(':')?;
        let n = n.parse().ok()?;
        match kind {
            "files" => Some(Self::AfterFiles(n)),
            "before_commit" => Some(Self::BeforeCommit(n)),
            "after_commit" => Some(Self::AfterCommit(n)),
            "listed" => Some(Self::AfterListed(n)),
            _ => None,
        }
    }

    /// The crash point `SYNUP_CRASH_AT` names, if any.
    pub fn from_env() -> Option<Self> {
        std::env::var("SYNUP_CRASH_AT")
            .ok()
            .and_then(|s| Self::parse(&s))
    }
}

/// Dies the way `kill -9` kills: no destructors, no flushing.
pub fn crash_now() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}
