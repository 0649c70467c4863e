use std::path::Path;

use synup::apply::job::Job;
use synup::apply::shard::Shard;
use synup::apply::{self, ApplySettings};

use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A recipe, or a plan saved with `synup plan -o`.
    target: Option<String>,
    /// Apply without asking (required when not on a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Write the JSON end report to this file (`-`: stdout, instead of the text report).
    #[arg(long, value_name = "FILE")]
    pub(super) report: Option<String>,
    #[command(flatten)]
    memory: super::MemoryArg,
    /// Apply only shard K of N of a saved plan (1-based): its units to create,
    /// cut into N contiguous, balanced slices. Each shard journals on its own.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Run the plan as `--shards` Ray jobs through the Ray Jobs API at this
    /// dashboard URL (e.g. http://HOST:8265; default with `--shards`: `RAY_ADDRESS`).
    #[arg(
        long,
        value_name = "URL",
        requires = "shards",
        conflicts_with = "shard"
    )]
    ray: Option<String>,
    /// How many shards (Ray jobs) to split the plan into.
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    shards: Option<u32>,
    /// A synup binary installed on the Ray workers (default: this binary,
    /// shipped in the job's working_dir).
    #[arg(long, value_name = "PATH", requires = "shards")]
    ray_binary: Option<String>,
    /// `json`: the end report on stdout (what `--report` writes), errors as JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: super::TextOrJson,
}

/// Why there is nothing to apply, without claiming that every unit is in
/// the target when some are conflicts or invalid.
fn nothing_to_apply(s: &synup::plan::model::Summary) -> String {
    if s.conflict == 0 && s.invalid == 0 {
        return "Nothing to apply: every unit is already in the target.".to_owned();
    }
    let mut why = vec![format!("{} unit(s) already in the target", s.unchanged)];
    if s.conflict > 0 {
        why.push(format!(
            "{} conflict(s) (a unit with that key differs; never overwritten)",
            s.conflict
        ));
    }
    if s.invalid > 0 {
        why.push(format!("{} invalid", s.invalid));
    }
    format!("Nothing to apply: {}.", why.join(", "))
}

/// `--ray`, or with `--shards` alone the dashboard `RAY_ADDRESS` names (as
/// Ray's own CLI reads it); `Err` when `--shards` has no dashboard.
fn ray_dashboard(args: &Args) -> Result<Option<String>, String> {
    match (&args.ray, args.shards) {
        (Some(url), _) => Ok(Some(url.clone())),
        (None, None) => Ok(None),
        (None, Some(_)) => match std::env::var("RAY_ADDRESS") {
            Ok(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(Some(url)),
            Ok(url) if !url.trim().is_empty() => Err(format!(
                "RAY_ADDRESS={url} is not a dashboard URL: `--shards` submits through the Ray Jobs API, e.g. http://HOST:8265"
            )),
            _ => Err(
                "--shards needs a Ray dashboard: pass --ray http://HOST:8265 or set RAY_ADDRESS"
                    .to_owned(),
            ),
        },
    }
}

pub(super) fn run(args: Args) -> i32 {
    let Some(arg) = super::require_recipe(args.target.clone(), "apply") else {
        return exit::ERROR;
    };
    let ray = match ray_dashboard(&args) {
        Ok(ray) => ray,
        Err(e) => {
            crate::console::error(&e);
            return exit::ERROR;
        }
    };
    let json =
        args.format == super::TextOrJson::Json || super::report_to_stdout(args.report.as_deref());
    let shard = match args.shard.as_deref().map(str::parse::<Shard>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            crate::console::error(&format!("--shard {e}"));
            return exit::ERROR;
        }
    };
    if let Some(path) = args.report.as_deref().filter(|p| *p != "-")
        && let Err(e) = synup::fs_write::check_writable(Path::new(path))
    {
        crate::console::error(&format!(
            "--report: {e}; nothing was applied. Create its folder or choose a writable path, then run apply again."
        ));
        return exit::ERROR;
    }
    let saved = match apply::saved::read(&arg) {
        Ok(saved) => saved,
        Err(e) => {
            crate::console::error(&e.to_string());
            return exit::ERROR;
        }
    };
    if saved.is_none() && (shard.is_some() || ray.is_some()) {
        crate::console::error(&format!(
            "{arg} is a recipe; shards come from a saved plan: `synup plan {arg} -o PLAN`, then `synup apply PLAN {}`",
            if shard.is_some() {
                "--shard K/N"
            } else {
                "--ray URL --shards N"
            }
        ));
        return exit::ERROR;
    }
    let recipe_path = match &saved {
        Some(p) => p.recipe.path.clone(),
        None => arg.clone(),
    };
    let Some(prepared) = super::prepare_recipe(&recipe_path) else {
        return exit::ERROR;
    };
    let (loaded, resolved) = (&prepared.loaded, &prepared.resolved);
    // A shard of a saved plan re-plans only its own slice's units.
    let only_units = match Job::units_to_verify(saved.as_ref(), shard) {
        Ok(keys) => keys,
        Err(e) => {
            crate::console::error(&e.to_string());
            return exit::ERROR;
        }
    };
    let options = synup::plan::PlanOptions {
        only_units,
        ..args.memory.options()
    };
    let Some(fresh) = super::plan_recipe(&prepared, crate::console::progress_wanted(), options)
    else {
        return exit::ERROR;
    };
    let journal = apply::journal::path_for(
        &loaded.state_dir(),
        &resolved.name,
        &resolved.data_collection,
    );
    let job = match Job::new(&arg, saved, fresh, shard, journal) {
        Ok(job) => job,
        Err(e) => {
            crate::console::error(&e.to_string());
            return exit::ERROR;
        }
    };
    if let Some(text) = &job.shown {
        // Under `--format json` stdout is the report alone.
        if json {
            crate::console::note(text.trim_end());
        } else {
            crate::console::out(text);
        }
    }
    if let Some(invalid) = job.refused_for_invalid(resolved.invalid_units) {
        crate::console::note(&format!(
            "{invalid} unit(s) are invalid and `validation.invalid_units` is `fail`: nothing was applied. Fix them, or set `invalid_units: skip`."
        ));
        return exit::INVALID_UNITS;
    }
    let plan = &job.plan;
    if let (Some(url), Some(n)) = (&ray, args.shards) {
        return super::ray::run_sharded(
            &synup::ray::Submission {
                dashboard: url,
                shards: n,
                plan_path: &arg,
                plan,
                binary: args.ray_binary.as_deref(),
                recipe_vars: loaded.vars.keys().cloned().collect(),
                state_dir: &loaded.state_dir(),
                journal: job.journal.clone(),
            },
            args.report.as_deref(),
            crate::console::progress_wanted(),
            json,
        );
    }
    let to_create = job.creates();
    if to_create == 0 {
        crate::console::note(&nothing_to_apply(&plan.summary));
        let empty = synup::apply::ApplyReport::nothing_to_apply(plan, shard);
        if json {
            crate::console::out(&empty.to_json());
        }
        if let Some(path) = &args.report
            && let Err(e) = super::write_report(path, &empty.to_json())
        {
            crate::console::error(&e);
            return exit::ERROR;
        }
        return exit::OK;
    }
    let on_terminal = super::init::on_terminal();
    if !args.yes {
        if !on_terminal {
            crate::console::error(
                "refusing to apply without --yes: there is no terminal to ask on",
            );
            return exit::ERROR;
        }
        if !crate::console::confirm(&format!(
            "Apply {to_create} unit(s) to {} collection \"{}\"?",
            plan.target.backend, plan.target.data_collection
        )) {
            crate::console::note("Nothing was applied.");
            return exit::OK;
        }
    }

    let settings = ApplySettings {
        memory: args.memory.budget,
        ..ApplySettings::of(&loaded.recipe)
    };
    let observer = crate::console::progress::ApplyProgress::new(crate::console::progress_wanted());
    let target = match apply::target::open(loaded, resolved, prepared.session.as_ref(), job.journal)
    {
        Ok(t) => t,
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    let result = target.apply(plan, &settings, &observer);
    observer.finish();
    let report = match result {
        Ok(mut r) => {
            r.shard = shard.map(|s| s.to_string());
            r
        }
        Err(e) => {
            crate::console::report(e);
            return exit::ERROR;
        }
    };
    if json {
        crate::console::out(&report.to_json());
        if !crate::console::settings::quiet() {
            crate::console::note(report.render_text().trim_end());
        }
    } else {
        crate::console::out(&report.render_text());
    }
    if let Some(path) = &args.report
        && let Err(e) = super::write_report(path, &report.to_json())
    {
        crate::console::error(&e);
        return exit::ERROR;
    }
    if report.units.failed > 0 {
        exit::UNITS_FAILED
    } else {
        exit::OK
    }
}
