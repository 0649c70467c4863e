//! `apply PLAN --ray URL --shards N`: the plan's shards as Ray jobs, through
//! the Ray Jobs REST API (the engine the Synapse platform already runs), and
//! `synup jobs`, which shows or stops them.
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
use synup::apply::ApplyReport;
use synup::apply::shard::Shard;
use synup::plan::Plan;

use super::exit;

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
struct State {
    format_version: u32,
    dashboard: String,
    plan_hash: String,
    shards: u32,
    /// Shard index (1-based) → its latest submission.
    jobs: BTreeMap<u32, String>,
}

/// A small client for the Ray Jobs REST API.
struct Ray {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Ray {
    fn new(dashboard: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: dashboard.trim_end_matches('/').to_owned(),
            http,
            rt,
        })
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let mut req = self.http.request(method.clone(), &url).timeout(timeout);
            if let Some(b) = body {
                req = req.body(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("{method} {url}: {}", e.without_url()))?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Ok((status, text))
        })
    }

    fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, String> {
        let (status, text) = self.send(
            method.clone(),
            path,
            body.map(|b| reqwest::Body::from(b.to_string())),
            Duration::from_secs(60),
        )?;
        if !(200..300).contains(&status) {
            let detail: String = text.chars().take(400).collect();
            return Err(format!(
                "{method} {}{path}: HTTP {status}: {detail}",
                self.base
            ));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Json::String(text)))
    }

    fn job(&self, id: &str) -> Result<Json, String> {
        self.json(reqwest::Method::GET, &format!("/api/jobs/{id}"), None)
    }

    fn logs(&self, id: &str) -> Result<String, String> {
        let j = self.json(reqwest::Method::GET, &format!("/api/jobs/{id}/logs"), None)?;
        Ok(j.get("logs")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    fn stop(&self, id: &str) -> Result<bool, String> {
        let j = self.json(reqwest::Method::POST, &format!("/api/jobs/{id}/stop"), None)?;
        Ok(j.get("stopped").and_then(Json::as_bool).unwrap_or(false))
    }

    /// Uploads `zip` as a working_dir package unless the cluster has it;
    /// returns its URI.
    fn upload_package(&self, zip: Vec<u8>) -> Result<String, String> {
        use sha1::Digest;
        let name = format!("_ray_pkg_{}.zip", hex::encode(sha1::Sha1::digest(&zip)));
        let path = format!("/api/packages/gcs/{name}");
        let (status, _) = self.send(reqwest::Method::GET, &path, None, Duration::from_secs(30))?;
        if status != 200 {
            let (status, text) = self.send(
                reqwest::Method::PUT,
                &path,
                Some(reqwest::Body::from(zip)),
                Duration::from_secs(600),
            )?;
            if status != 200 {
                return Err(format!("uploading the job package: HTTP {status}: {text}"));
            }
        }
        Ok(format!("gcs://{name}"))
    }
}

fn terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "STOPPED")
}

/// A zip of this synup binary (or none) and the plan, as the job's working_dir.
fn package(plan_path: &str, ship_binary: bool) -> Result<Vec<u8>, String> {
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
    add("plan.json", Path::new(plan_path))?;
    if ship_binary {
        let exe = std::env::current_exe().map_err(|e| format!("this synup's path: {e}"))?;
        add("synup", &exe)?;
    }
    zip.finish()
        .map(|c| c.into_inner())
        .map_err(|e| e.to_string())
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
    if let Ok(c) = synup::target::synapse::config::resolve(None, None) {
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

fn save_state(path: &Path, state: &State) -> Result<(), String> {
    synup::fs_write::write(
        path,
        synup::fs_write::Access::Shared,
        &serde_json::to_vec_pretty(state).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())
}

pub fn run_sharded(sub: &Submission<'_>, report_out: Option<&str>, progress: bool) -> i32 {
    match drive(sub, report_out, progress) {
        Ok(code) => code,
        Err(e) => {
            crate::console::error(&e);
            exit::ERROR
        }
    }
}

fn drive(sub: &Submission<'_>, report_out: Option<&str>, progress: bool) -> Result<i32, String> {
    if sub.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let started = std::time::Instant::now();
    let ray = Ray::new(sub.dashboard)?;
    let plan_hash = &sub.plan.plan_hash;
    let reports_dir = sub.state_dir.join("ray").join(short(plan_hash));
    std::fs::create_dir_all(&reports_dir).map_err(|e| format!("{}: {e}", reports_dir.display()))?;
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
    let cwd = std::env::current_dir().map_err(|e| format!("the current folder: {e}"))?;
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
            crate::console::note(&format!("shard {s}: submitted as {id}"));
            state.jobs.insert(s.index, id);
            save_state(&state_file, &state)?;
        }
    } else {
        crate::console::note("every shard already has a job; following them");
    }
    let roots: std::collections::BTreeSet<&str> = sub
        .plan
        .inputs
        .listings
        .iter()
        .map(|l| l.root.as_str())
        .collect();
    crate::console::note(&format!(
        "the workers read {} at the same path(s) as here, from {cwd}; a worker that cannot fails its shard with that message",
        roots.into_iter().collect::<Vec<_>>().join(", ")
    ));
    let mut journals: Vec<JournalTail> = shards
        .iter()
        .map(|s| JournalTail::new(s.journal_path(&sub.journal)))
        .collect();

    // Follow every job to its end, with one combined view.
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(sub.shards as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("shards {pos}/{len} done {wide_bar} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
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
                if bar.is_none() {
                    crate::console::note(&format!("shard {s} ({id}): {status}"));
                }
                statuses.insert(s.index, status);
            }
        }
        let done = statuses.values().filter(|s| terminal(s)).count();
        if let Some(b) = &bar {
            b.set_position(done as u64);
            let running = statuses.values().filter(|s| *s == "RUNNING").count();
            let units: u64 = journals.iter_mut().map(JournalTail::units).sum();
            b.set_message(format!("{running} running, {units} units done"));
        }
        if done == shards.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    // One report from the shards'.
    let mut total = ApplyReport {
        format_version: synup::apply::report::FORMAT_VERSION,
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
                crate::console::error(&format!(
                    "shard {s} ({id}) {}{}",
                    status.to_lowercase(),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(":\n{tail}")
                    }
                ));
                failed_shards.push(s.index);
                total.failures.push(synup::apply::report::Failure {
                    kind: "shard".into(),
                    key: Some(s.to_string()),
                    path: None,
                    reason: format!("job {id} {}", status.to_lowercase()),
                });
            }
        }
    }
    total.units.planned = sub
        .plan
        .units
        .iter()
        .filter(|u| u.action == synup::plan::Action::Create)
        .count() as u64;
    // Throughput over the whole run, submission included.
    total.close(started.elapsed(), !failed_shards.is_empty());
    crate::console::out(&total.render_text());
    if let Some(path) = report_out {
        super::write_report(path, &total.to_json())?;
    }
    if !failed_shards.is_empty() {
        crate::console::error(&format!(
            "shard(s) {} did not finish; run the same command again to re-submit only those (their journals make them resume)",
            failed_shards
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(exit::ERROR);
    }
    Ok(if total.units.failed > 0 {
        exit::UNITS_FAILED
    } else {
        exit::OK
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

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// A job (submission id) to show; all synup jobs when left out.
    id: Option<String>,
    /// Print the job's logs.
    #[arg(long, requires = "id")]
    logs: bool,
    /// Stop the job.
    #[arg(long, requires = "id")]
    stop: bool,
    /// The Ray dashboard (default: the one the last `apply --ray` here used).
    #[arg(long, value_name = "URL")]
    ray: Option<String>,
}

/// `synup jobs [ID] [--logs] [--stop]`.
pub fn jobs(args: JobsArgs) -> i32 {
    let dashboard = match args.ray.clone().or_else(last_dashboard) {
        Some(d) => d,
        None => {
            crate::console::error(
                "no Ray dashboard known here: pass --ray http://HOST:8265 (or run `synup apply PLAN --ray …` first)",
            );
            return exit::ERROR;
        }
    };
    let result = (|| -> Result<(), String> {
        let ray = Ray::new(&dashboard)?;
        match &args.id {
            Some(id) if args.stop => {
                let stopped = ray.stop(id)?;
                crate::console::out(&format!(
                    "{id}: {}\n",
                    if stopped {
                        "stop requested"
                    } else {
                        "not running"
                    }
                ));
            }
            Some(id) if args.logs => crate::console::out(&ray.logs(id)?),
            Some(id) => {
                let j = ray.job(id)?;
                crate::console::out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&redact(j)).unwrap_or_default()
                ));
            }
            None => {
                let all = ray.json(reqwest::Method::GET, "/api/jobs/", None)?;
                let mut rows: Vec<(String, String, String, String)> = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|j| {
                        let meta = j.get("metadata")?;
                        let shard = meta.get("synup_shard")?.as_str()?.to_owned();
                        Some((
                            meta.get("synup_plan_file")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            shard,
                            j.get("submission_id")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            j.get("status")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        ))
                    })
                    .collect();
                rows.sort();
                let mut out = String::new();
                for (plan, shard, id, status) in rows {
                    out.push_str(&format!("{plan}  shard {shard:<7} {status:<10} {id}\n"));
                }
                if out.is_empty() {
                    out = format!("no synup jobs on {dashboard}\n");
                }
                crate::console::out(&out);
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            crate::console::error(&e);
            exit::ERROR
        }
    }
}

/// A job as Ray describes it, without the environment (it holds the token).
fn redact(mut j: Json) -> Json {
    if let Some(env) = j
        .pointer_mut("/runtime_env/env_vars")
        .and_then(Json::as_object_mut)
    {
        for v in env.values_mut() {
            *v = Json::String("***".into());
        }
    }
    j
}

fn last_dashboard() -> Option<String> {
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
