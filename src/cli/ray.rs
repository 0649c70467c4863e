//! `apply PLAN --ray URL --shards N` and `synup jobs`: arguments and rendering;
//! the driver and the Ray client are [`synup::ray`].

use synup::ray::{RayClient, RayError, RayEvent, Submission};

use super::exit;

/// Runs the plan's shards as Ray jobs and reports them as one apply.
pub(super) fn run_sharded(
    sub: &Submission<'_>,
    report_out: Option<&str>,
    progress: bool,
    json: bool,
) -> i32 {
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(sub.shards as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("shards {pos}/{len} done {wide_bar} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let observer = |event: RayEvent<'_>| match event {
        RayEvent::Submitted { shard, id } => {
            crate::console::note(&format!("shard {shard}: submitted as {id}"));
        }
        RayEvent::Following => {
            crate::console::note("every shard already has a job; following them");
        }
        RayEvent::WorkersRead { roots, cwd } => crate::console::note(&format!(
            "the workers read {roots} at the same path(s) as here, from {cwd}; a worker that cannot fails its shard with that message"
        )),
        // The bar shows the same; without one, each change is a line.
        RayEvent::Status { shard, id, status } => {
            if bar.is_none() {
                crate::console::note(&format!("shard {shard} ({id}): {status}"));
            }
        }
        RayEvent::Poll {
            done,
            running,
            units,
            ..
        } => {
            if let Some(b) = &bar {
                b.set_position(done as u64);
                b.set_message(format!("{running} running, {units} units done"));
            }
        }
        RayEvent::Followed => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
        }
        RayEvent::ShardFailed {
            shard,
            id,
            status,
            log_tail,
        } => crate::console::error(&format!(
            "shard {shard} ({id}) {}{}",
            status.to_lowercase(),
            if log_tail.is_empty() {
                String::new()
            } else {
                format!(":\n{log_tail}")
            }
        )),
    };
    let sharded = match synup::ray::drive(sub, &observer) {
        Ok(s) => s,
        Err(e) => {
            crate::console::error(&e.to_string());
            return exit::ERROR;
        }
    };
    let total = &sharded.report;
    crate::console::out(&if json {
        total.to_json()
    } else {
        total.render_text()
    });
    if let Some(path) = report_out
        && let Err(e) = super::write_report(path, &total.to_json())
    {
        crate::console::error(&e);
        return exit::ERROR;
    }
    if !sharded.failed_shards.is_empty() {
        crate::console::error(&format!(
            "shard(s) {} did not finish; run the same command again to re-submit only those (their journals make them resume)",
            sharded
                .failed_shards
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return exit::ERROR;
    }
    if total.units.failed > 0 {
        exit::UNITS_FAILED
    } else {
        exit::OK
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct JobsArgs {
    /// A job (submission id) to show; all synup jobs when left out.
    id: Option<String>,
    /// Print the job's logs.
    #[arg(long, requires = "id")]
    logs: bool,
    /// Stop the job.
    #[arg(long, requires = "id")]
    stop: bool,
    /// The Ray dashboard (default: `RAY_ADDRESS`, else the one the last
    /// `apply --ray` here used).
    #[arg(long, value_name = "URL", env = "RAY_ADDRESS")]
    ray: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: super::TextOrJson,
}

/// `synup jobs [ID] [--logs] [--stop]`.
pub(super) fn jobs(args: JobsArgs) -> i32 {
    let Some(dashboard) = args.ray.clone().or_else(synup::ray::last_dashboard) else {
        crate::console::error(
            "no Ray dashboard known here: pass --ray http://HOST:8265 (or run `synup apply PLAN --ray …` first)",
        );
        return exit::ERROR;
    };
    let json = args.format == super::TextOrJson::Json;
    let shown = (|| -> Result<String, RayError> {
        let ray = RayClient::new(&dashboard)?;
        Ok(match &args.id {
            Some(id) if args.stop && json => synup::json::to_pretty_versioned(&serde_json::json!({
                "format_version": 1,
                "id": id,
                "stop_requested": ray.stop(id)?,
            })),
            Some(id) if args.logs && json => synup::json::to_pretty_versioned(&serde_json::json!({
                "format_version": 1,
                "id": id,
                "logs": ray.logs(id)?,
            })),
            Some(id) if json => synup::json::to_pretty_versioned(&serde_json::json!({
                "format_version": 1,
                "job": synup::ray::client::redact(ray.job(id)?),
            })),
            None if json => {
                let jobs: Vec<_> = ray
                    .synup_jobs()?
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "plan_file": r.plan_file,
                            "shard": r.shard,
                            "status": r.status,
                            "id": r.id,
                        })
                    })
                    .collect();
                synup::json::to_pretty_versioned(&serde_json::json!({
                    "format_version": 1,
                    "dashboard": dashboard,
                    "jobs": jobs,
                }))
            }
            Some(id) if args.stop => format!(
                "{id}: {}\n",
                if ray.stop(id)? {
                    "stop requested"
                } else {
                    "not running"
                }
            ),
            Some(id) if args.logs => ray.logs(id)?,
            Some(id) => format!(
                "{}\n",
                serde_json::to_string_pretty(&synup::ray::client::redact(ray.job(id)?))
                    .unwrap_or_default()
            ),
            None => {
                let rows = ray.synup_jobs()?;
                if rows.is_empty() {
                    format!("no synup jobs on {dashboard}\n")
                } else {
                    rows.iter()
                        .map(|r| {
                            format!(
                                "{}  shard {:<7} {:<10} {}\n",
                                r.plan_file, r.shard, r.status, r.id
                            )
                        })
                        .collect()
                }
            }
        })
    })();
    match shown {
        Ok(text) => {
            crate::console::out(&text);
            exit::OK
        }
        Err(e) => {
            crate::console::error(&e.to_string());
            exit::ERROR
        }
    }
}
