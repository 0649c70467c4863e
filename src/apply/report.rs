//! The end report of an apply: counts, bytes, throughput and every failure.

use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplyReport {
    pub format_version: u32,
    pub apply_id: String,
    pub plan_hash: String,
    pub recipe: String,
    pub target: ReportTarget,
    /// `succeeded`, `failed` (some units failed) or `aborted` (stopped early).
    pub status: String,
    pub duration_seconds: f64,
    pub units: UnitCounts,
    pub files: FileCounts,
    pub bytes_uploaded: u64,
    pub throughput: Throughput,
    pub failures: Vec<Failure>,
    /// `K/N` when this report is of one shard of a plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportTarget {
    pub backend: String,
    pub data_collection: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnitCounts {
    /// Units the plan said to create.
    pub planned: u64,
    pub created: u64,
    /// Already in the target with the same content (e.g. after a crash).
    pub unchanged: u64,
    pub failed: u64,
    /// Invalid units left out under `invalid_units: skip` (not failures).
    pub skipped_invalid: u64,
    /// Conflicts found while planning (reported, never overwritten).
    pub conflicts_in_plan: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileCounts {
    pub uploaded: u64,
    pub already_present: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Throughput {
    pub files_per_second: f64,
    pub bytes_per_second: f64,
    pub units_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Failure {
    /// `unit` or `file`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
}

impl ApplyReport {
    /// The report of an apply that had nothing to create (a shard's, with `shard`).
    pub fn nothing_to_apply(plan: &crate::plan::Plan, shard: Option<super::shard::Shard>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            plan_hash: plan.plan_hash.clone(),
            recipe: plan.recipe.path.clone(),
            status: "succeeded".into(),
            shard: shard.map(|s| s.to_string()),
            ..Self::default()
        }
    }
    /// A report for a run of `plan`, with the plan's counts filled in.
    pub fn begin(plan: &crate::plan::Plan, target: ReportTarget, apply_id: String) -> Self {
        use crate::plan::Action;
        let count = |a: Action| plan.units.count(a) as u64;
        let mut report = Self {
            format_version: FORMAT_VERSION,
            apply_id,
            plan_hash: plan.plan_hash.clone(),
            recipe: plan.recipe.path.clone(),
            target,
            ..Self::default()
        };
        report.units.planned = count(Action::Create);
        report.units.skipped_invalid = count(Action::Invalid);
        report.units.conflicts_in_plan = count(Action::Conflict);
        report
    }

    /// A file now in the target: `written` bytes, or `None` when the target
    /// already had its content.
    pub fn count_stored(&mut self, observer: &dyn super::ApplyObserver, written: Option<u64>) {
        match written {
            Some(bytes) => {
                self.files.uploaded += 1;
                self.bytes_uploaded += bytes;
            }
            None => self.files.already_present += 1,
        }
        observer.on(&super::ApplyEvent::FileStored {
            bytes: written.unwrap_or(0),
        });
    }

    /// Duration, throughput, sorted failures and the status, at the end of a run.
    pub fn close(&mut self, elapsed: std::time::Duration, aborted: bool) {
        let secs = elapsed.as_secs_f64();
        self.duration_seconds = (secs * 1000.0).round() / 1000.0;
        let per_s = |n: f64| {
            if secs > 0.0 {
                (n / secs * 10.0).round() / 10.0
            } else {
                0.0
            }
        };
        self.throughput.files_per_second =
            per_s((self.files.uploaded + self.files.already_present) as f64);
        self.throughput.bytes_per_second = per_s(self.bytes_uploaded as f64);
        self.throughput.units_per_second = per_s(self.units.created as f64);
        self.failures.sort();
        self.status = match (aborted, self.units.failed) {
            (true, _) => "aborted".into(),
            (false, 0) => "succeeded".into(),
            (false, _) => "failed".into(),
        };
    }

    /// Records a failed unit and tells the observer.
    pub fn fail_unit(&mut self, observer: &dyn super::ApplyObserver, key: &str, reason: &str) {
        self.units.failed += 1;
        observer.on(&super::ApplyEvent::UnitFailed { key, reason });
        self.failures.push(Failure {
            kind: "unit".into(),
            key: Some(key.to_owned()),
            path: None,
            reason: reason.to_owned(),
        });
    }

    /// Records a failed file and tells the observer.
    pub fn fail_file(&mut self, observer: &dyn super::ApplyObserver, path: &str, reason: &str) {
        self.files.failed += 1;
        observer.on(&super::ApplyEvent::FileFailed { path, reason });
        self.failures.push(Failure {
            kind: "file".into(),
            key: None,
            path: Some(path.to_owned()),
            reason: reason.to_owned(),
        });
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Text for people.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let u = &self.units;
        let _ = writeln!(
            out,
            "Apply {}: {} created, {} unchanged, {} failed of {} planned; {} file(s) uploaded ({}), {} already present; {:.1}s ({:.0} files/s, {}/s).",
            self.status,
            u.created,
            u.unchanged,
            u.failed,
            u.planned,
            self.files.uploaded,
            crate::plan::render::human_bytes(self.bytes_uploaded),
            self.files.already_present,
            self.duration_seconds,
            self.throughput.files_per_second,
            crate::plan::render::human_bytes(self.throughput.bytes_per_second as u64),
        );
        if u.skipped_invalid > 0 {
            let _ = writeln!(
                out,
                "{} invalid unit(s) were left out (invalid_units: skip).",
                u.skipped_invalid
            );
        }
        if u.conflicts_in_plan > 0 {
            let _ = writeln!(
                out,
                "{} unit(s) conflict with the target and were not touched.",
                u.conflicts_in_plan
            );
        }
        for f in &self.failures {
            let what = f.key.as_deref().or(f.path.as_deref()).unwrap_or("");
            let _ = writeln!(out, "  failed {} {what}: {}", f.kind, f.reason);
        }
        out
    }
}
