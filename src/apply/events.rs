//! What an apply run reports while it works. The console (progress bars), the
//! report and tests subscribe; the executor never prints.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyEvent<'a> {
    /// Work ahead: units to create and the files and bytes they may need.
    Started {
        units: u64,
        files: u64,
        bytes: u64,
    },
    /// A file is in the target; `bytes` is 0 when it was already there.
    FileStored {
        bytes: u64,
    },
    FileFailed {
        path: &'a str,
        reason: &'a str,
    },
    UnitCreated {
        key: &'a str,
    },
    /// Already in the target with the same content.
    UnitUnchanged {
        key: &'a str,
    },
    UnitFailed {
        key: &'a str,
        reason: &'a str,
    },
    /// Waiting for another apply that holds the target's lock.
    WaitingForLock {
        path: &'a str,
    },
    Finished,
}

pub trait ApplyObserver: Sync {
    fn on(&self, event: &ApplyEvent<'_>);
}

/// An observer that ignores everything (quiet runs, tests).
pub struct Silent;

impl ApplyObserver for Silent {
    fn on(&self, _event: &ApplyEvent<'_>) {}
}
