//! The driver of `apply PLAN --ray URL --shards N`: the plan's shards as Ray
//! jobs, through the Ray Jobs REST API (the engine the Synapse platform
//! already runs).
//!
//! Each job runs `synup apply PLAN --shard K/N` on a worker. The binary and the
//! plan travel in the job's `runtime_env.working_dir` (a zip uploaded to the
//! cluster, as Ray's own client does), unless `--ray-binary` names one
//! installed on the workers. Workers must see the same source paths as the
//! submitter: the job changes into the submitter's folder, and says so when
//! it cannot. Credentials go as the official CLI passes them, in `env_vars`.
//! Which job runs which shard is kept under `.synup/ray/`, so that running
//! the command again re-submits only the shards that did not finish, and
//! their journals make them resume.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::client::{RayClient, RayError};
use crate::apply::ApplyReport;
use crate::apply::shard::Shard;
use crate::plan::Plan;

/// What the driver tells its observer while it works.
#[derive(Debug, Clone, Copy)]
pub enum RayEvent<'a> {
    Submitted {
        shard: Shard,
        id: &'a str,
    },
    /// Every shard already had a live or finished job: nothing was submitted.
    Following,
    /// Which roots the workers must see, and the folder they change into.
    WorkersRead {
        roots: &'a str,
        cwd: &'a str,
    },
    /// A job's status changed.
    Status {
        shard: Shard,
        id: &'a str,
        status: &'a str,
    },
    /// After each poll: shards done, running, and units their journals record.
    Poll {
        done: u32,
        total: u32,
        running: u32,
        units: u64,
    },
    /// Every job has ended.
    Followed,
    ShardFailed {
        shard: Shard,
        id: &'a str,
        status: &'a str,
        log_tail: &'a str,
    },
}

/// What a sharded run came to: the merged report and the shards that did
/// not succeed.
pub struct Sharded {
    pub report: ApplyReport,
    pub failed_shards: Vec<u32>,
}

/// What to submit.
pub struct Submission<'a> {
    pub dashboard: &'a str,
    pub shards: u32,
    /// The plan file as given on the command line.
    pub plan_path: &'a str,
    pub plan: &'a Plan,
    pub binary: Option<&'a str>,
    /// The `${VAR}` names the recipe reads (workers load it too).
    pub recipe_vars: Vec<String>,
    pub state_dir: &'a Path,
    /// The unsharded journal; shard K's is beside it (`….shard-K-of-N.jsonl`).
    pub journal: PathBuf,
}

/// The jobs of one plan, kept under `.synup/ray/`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    format_version: u32,
    dashboard: String,
    plan_hash: String,
    shards: u32,
    /// Shard index (1-based) → its latest submission.
    jobs: BTreeMap<u32, String>,
}

fn terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "STOPPED")
}

/// A zip of this synup binary (or none) and the plan, as the job's working_dir.
fn package(plan_path: &str, ship_binary: bool) -> Result<Vec<u8>, RayError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .unix_permissions(0o755);
    let mut add = |name: &str, path: &Path| -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(&bytes).map_err(|e| e.to_string())
    };
    add("plan.json", Path::new(plan_path)).map_err(RayError::Submit)?;
    if ship_binary {
        let exe = std::env::current_exe()
            .map_err(|e| RayError::Submit(format!("this synup's path: {e}")))?;
        add("synup", &exe).map_err(RayError::Submit)?;
    }
    zip.finish()
        .map(|c| c.into_inner())
        .map_err(|e| RayError::Submit(e.to_string()))
}

/// `sh -c` text quoting.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The environment a shard needs: Synapse credentials as the official CLI
/// passes them, `SYNAPSE_*`/`RAY_*`, and the variables the recipe reads.
fn env_vars(recipe_vars: &[String]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SYNAPSE_") || k.starts_with("RAY_"))
        .filter(|(k, _)| k != "RAY_ADDRESS")
        .collect();
    if let Ok(c) = crate::target::synapse::config::resolve(None, None) {
        out.insert("SYNAPSE_HOST".into(), c.host);
        out.insert("SYNAPSE_ACCESS_TOKEN".into(), c.token.expose().to_owned());
    }
    for v in recipe_vars {
        if let Ok(value) = std::env::var(v) {
            out.insert(v.clone(), value);
        }
    }
    out.insert("CI".into(), "1".into());
    out.insert("NO_COLOR".into(), "1".into());
    out
}

/// Where shard K's report lands (workers share the submitter's folders).
fn report_path(state_dir: &Path, plan_hash: &str, shard: Shard) -> PathBuf {
    state_dir
        .join("ray")
        .join(short(plan_hash))
        .join(format!("{}.json", shard.file_suffix()))
}

fn short(plan_hash: &str) -> String {
    plan_hash
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect()
}

fn state_path(state_dir: &Path, plan_hash: &str, shards: u32) -> PathBuf {
    state_dir
        .join("ray")
        .join(format!("{}.{shards}-shards.json", short(plan_hash)))
}

fn save_state(path: &Path, state: &State) -> Result<(), RayError> {
    crate::fs_write::write(
        path,
        crate::fs_write::Access::Shared,
        &serde_json::to_vec_pretty(state).unwrap_or_default(),
    )
    .map_err(|e| RayError::Submit(format!("{}: {e}", path.display())))
}

/// Submits the shards that have no live or finished job, follows every job
/// to its end (telling `observer`), and merges the shards' reports.
pub fn drive(sub: &Submission<'_>, observer: &dyn Fn(RayEvent<'_>)) -> Result<Sharded, RayError> {
    if sub.shards == 0 {
        return Err(RayError::Submit("--shards must be at least 1".into()));
    }
    let started = std::time::Instant::now();
    let ray = RayClient::new(sub.dashboard)?;
    let plan_hash = &sub.plan.plan_hash;
    let reports_dir = sub.state_dir.join("ray").join(short(plan_hash));
    std::fs::create_dir_all(&reports_dir)
        .map_err(|e| RayError::Submit(format!("{}: {e}", reports_dir.display())))?;
    let state_file = state_path(sub.state_dir, plan_hash, sub.shards);
    let mut state: State = std::fs::read(&state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    state.format_version = 1;
    state.dashboard = sub.dashboard.to_owned();
    state.plan_hash = plan_hash.clone();
    state.shards = sub.shards;

    let shards: Vec<Shard> = (1..=sub.shards)
        .map(|index| Shard {
            index,
            count: sub.shards,
        })
        .collect();
    // Which shards still need a job: none yet, or one that ended without success.
    let mut to_submit = Vec::new();
    for s in &shards {
        let keep = match state.jobs.get(&s.index) {
            Some(id) => match ray.job(id) {
                Ok(j) => {
                    let status = j.get("status").and_then(Json::as_str).unwrap_or_default();
                    let done = status == "SUCCEEDED"
                        && report_path(sub.state_dir, plan_hash, *s).is_file();
                    done || !terminal(status)
                }
                Err(_) => false,
            },
            None => false,
        };
        if !keep {
            to_submit.push(*s);
        }
    }
    let cwd = std::env::current_dir()
        .map_err(|e| RayError::Submit(format!("the current folder: {e}")))?;
    let cwd = cwd.display().to_string();
    if !to_submit.is_empty() {
        let uri = ray.upload_package(package(sub.plan_path, sub.binary.is_none())?)?;
        let env = env_vars(&sub.recipe_vars);
        for s in &to_submit {
            let report = report_path(sub.state_dir, plan_hash, *s);
            let _ = std::fs::remove_file(&report);
            let report = std::path::absolute(&report).unwrap_or(report);
            let bin = match sub.binary {
                Some(b) => sh_quote(b),
                None => "\"$BIN\"".into(),
            };
            let entrypoint = format!(
                "BIN=\"$PWD/synup\"; PLAN=\"$PWD/plan.json\"; [ -f \"$BIN\" ] && chmod +x \"$BIN\"; \
                 cd {dir} 2>/dev/null || {{ echo \"synup shard {s}: this worker cannot reach {cwd}: workers must see the same source paths as the submitter\" >&2; exit 1; }}; \
                 exec {bin} apply \"$PLAN\" --shard {s} --yes --quiet --report {report}",
                dir = sh_quote(&cwd),
                report = sh_quote(&report.display().to_string()),
            );
            let submission_id = format!(
                "synup-{}-{}of{}-{}",
                &short(plan_hash)[..8],
                s.index,
                s.count,
                chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")
            );
            let body = json!({
                "entrypoint": format!("sh -c {}", sh_quote(&entrypoint)),
                "submission_id": submission_id,
                "runtime_env": {"working_dir": uri, "env_vars": env},
                "metadata": {"synup_plan": plan_hash, "synup_shard": s.to_string(), "synup_plan_file": sub.plan_path},
            });
            let answer = ray.json(reqwest::Method::POST, "/api/jobs/", Some(&body))?;
            let id = answer
                .get("submission_id")
                .and_then(Json::as_str)
                .unwrap_or(&submission_id)
                .to_owned();
            observer(RayEvent::Submitted { shard: *s, id: &id });
            state.jobs.insert(s.index, id);
            save_state(&state_file, &state)?;
        }
    } else {
        observer(RayEvent::Following);
    }
    let roots: std::collections::BTreeSet<&str> = sub
        .plan
        .inputs
        .listings
        .iter()
        .map(|l| l.root.as_str())
        .collect();
    observer(RayEvent::WorkersRead {
        roots: &roots.into_iter().collect::<Vec<_>>().join(", "),
        cwd: &cwd,
    });
    let mut journals: Vec<JournalTail> = shards
        .iter()
        .map(|s| JournalTail::new(s.journal_path(&sub.journal)))
        .collect();

    // Follow every job to its end.
    let mut statuses: BTreeMap<u32, String> = BTreeMap::new();
    loop {
        for s in &shards {
            let id = &state.jobs[&s.index];
            let status = ray
                .job(id)
                .ok()
                .and_then(|j| j.get("status").and_then(Json::as_str).map(str::to_owned))
                .unwrap_or_else(|| "UNKNOWN".into());
            if statuses.get(&s.index) != Some(&status) {
                observer(RayEvent::Status {
                    shard: *s,
                    id,
                    status: &status,
                });
                statuses.insert(s.index, status);
            }
        }
        let done = statuses.values().filter(|s| terminal(s)).count();
        observer(RayEvent::Poll {
            done: done as u32,
            total: sub.shards,
            running: statuses.values().filter(|s| *s == "RUNNING").count() as u32,
            units: journals.iter_mut().map(JournalTail::units).sum(),
        });
        if done == shards.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    observer(RayEvent::Followed);

    // One report from the shards'.
    let mut total = ApplyReport {
        format_version: crate::apply::report::FORMAT_VERSION,
        plan_hash: plan_hash.clone(),
        recipe: sub.plan.recipe.path.clone(),
        ..ApplyReport::default()
    };
    let mut failed_shards = Vec::new();
    for s in &shards {
        let status = &statuses[&s.index];
        let report: Option<ApplyReport> = std::fs::read(report_path(sub.state_dir, plan_hash, *s))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match (status.as_str(), report) {
            ("SUCCEEDED", Some(r)) => merge(&mut total, &r),
            (_, r) => {
                if let Some(r) = &r {
                    merge(&mut total, r);
                }
                let id = &state.jobs[&s.index];
                let tail = ray.logs(id).map(|l| last_lines(&l, 5)).unwrap_or_default();
                observer(RayEvent::ShardFailed {
                    shard: *s,
                    id,
                    status,
                    log_tail: &tail,
                });
                failed_shards.push(s.index);
                total.failures.push(crate::apply::report::Failure {
                    kind: "shard".into(),
                    key: Some(s.to_string()),
                    path: None,
                    reason: format!("job {id} {}", status.to_lowercase()),
                });
            }
        }
    }
    total.units.planned = sub.plan.units.count(crate::plan::Action::Create) as u64;
    // Throughput over the whole run, submission included.
    total.close(started.elapsed(), !failed_shards.is_empty());
    Ok(Sharded {
        report: total,
        failed_shards,
    })
}

/// Units a shard's journal records as in the target (the shards share the
/// submitter's folders, so the driver reads them to show progress), read
/// incrementally: each poll reads only what was appended since the last.
struct JournalTail {
    path: PathBuf,
    /// Bytes of whole lines counted so far.
    offset: u64,
    units: u64,
}

impl JournalTail {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            units: 0,
        }
    }

    fn units(&mut self) -> u64 {
        use std::io::{Read, Seek};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return self.units;
        };
        let mut new = Vec::new();
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_ok() && f.read_to_end(&mut new).is_ok()
        {
            // Only whole lines: a record being written is counted next time.
            let whole = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&new[..whole]);
            self.units += text.matches("\"t\":\"unit\"").count() as u64;
            self.offset += whole as u64;
        }
        self.units
    }
}

fn merge(total: &mut ApplyReport, r: &ApplyReport) {
    total.target = r.target.clone();
    total.units.created += r.units.created;
    total.units.unchanged += r.units.unchanged;
    total.units.failed += r.units.failed;
    total.files.uploaded += r.files.uploaded;
    total.files.already_present += r.files.already_present;
    total.files.failed += r.files.failed;
    total.bytes_uploaded += r.bytes_uploaded;
    total.failures.extend(r.failures.iter().cloned());
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn last_dashboard() -> Option<String> {
    let dir = Path::new(".synup/ray");
    let mut newest: Option<(std::time::SystemTime, String)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(state) = serde_json::from_slice::<State>(&std::fs::read(&path).ok()?) else {
            continue;
        };
        let modified = e.metadata().and_then(|m| m.modified()).ok()?;
        if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
            newest = Some((modified, state.dashboard));
        }
    }
    newest.map(|(_, d)| d)
}
