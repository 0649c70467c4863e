use synup::plan::render::{TextOptions, render_text_in};
use synup::recipe::model::InvalidUnits;

use super::exit;

/// `plan --format`: for people, for machines, for a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The recipe (YAML or TOML); default `./synup.yaml`.
    recipe: Option<String>,
    /// Also write the JSON plan to this file (always JSON, whatever --format says).
    #[arg(short = 'o', long = "out", value_name = "PLAN")]
    out: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
    /// Exit 2 when the plan creates units (like terraform's flag).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Text: list every unit with its files (path, size, SHA-1) and meta.
    #[arg(long)]
    detail: bool,
    /// Print stage timings and read counts to stderr.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    memory: super::MemoryArg,
}

pub(super) fn run(args: Args) -> i32 {
    let Some(path) = super::require_recipe(args.recipe, "plan") else {
        return exit::ERROR;
    };
    if let Some(out) = &args.out
        && let Err(e) = synup::fs_write::check_writable(std::path::Path::new(out))
    {
        crate::console::report(e);
        return exit::ERROR;
    }
    let Some(prepared) = super::prepare_recipe(&path) else {
        return exit::ERROR;
    };
    let resolved = &prepared.resolved;
    if crate::console::progress_wanted() {
        crate::console::note(&format!("planning {} …", resolved.name));
    }
    let Some(outcome) = super::plan_recipe(
        &prepared,
        crate::console::progress_wanted(),
        args.memory.options(),
    ) else {
        return exit::ERROR;
    };
    let plan = &outcome.plan;
    if let Some(out) = &args.out
        && let Err(e) = write_plan_file(out, plan)
    {
        crate::console::report(e);
        return exit::ERROR;
    }
    match args.format {
        Format::Json => crate::console::out_with(|w| plan.write_json(w)),
        Format::Text => {
            let opts = TextOptions {
                colors: crate::console::stdout_colored(),
                detail: args.detail,
            };
            let text = render_text_in(plan, opts);
            if opts.colors {
                crate::console::out_colored(&text);
            } else {
                crate::console::out(&text);
            }
        }
        Format::Markdown => crate::console::out(&synup::plan::markdown::render_markdown(plan)),
    }
    if args.stats {
        let s = &outcome.stats;
        let timings: Vec<String> = s
            .stages
            .iter()
            .filter(|r| r.state != synup::plan::engine::StageState::Skipped)
            .map(|r| {
                format!(
                    "{} {:.3}s ({} MiB)",
                    r.id,
                    r.elapsed.as_secs_f64(),
                    r.peak_rss_mib
                )
            })
            .collect();
        crate::console::note(&format!(
            "stats: {} files scanned; folders: {} cached, {} read; sha1: {} cached, {} hashed ({} bytes read); screened: {} cached, {} read; {}",
            s.files_scanned,
            s.folders_cached,
            s.folders_read,
            s.hash.cached,
            s.hash.hashed,
            s.hash.bytes_read,
            s.screened_cached,
            s.screened_read,
            timings.join(", ")
        ));
    }
    let code = exit_code(plan, resolved, args.detailed_exitcode);
    // The process ends here: skip freeing a plan of a million small allocations.
    std::mem::forget(outcome);
    std::mem::forget(prepared);
    code
}

fn exit_code(
    plan: &synup::plan::Plan,
    resolved: &synup::recipe::ResolvedRecipe,
    detailed: bool,
) -> i32 {
    if plan.summary.invalid > 0 && resolved.invalid_units == InvalidUnits::Fail {
        crate::console::note(&format!(
            "{} unit(s) are invalid and `validation.invalid_units` is `fail`: apply would refuse. Fix them, or set `invalid_units: skip` to upload the valid ones.",
            plan.summary.invalid
        ));
        return exit::INVALID_UNITS;
    }
    if detailed && plan.summary.create > 0 {
        return exit::CHANGES;
    }
    exit::OK
}

/// Writes the JSON plan atomically (see [`synup::fs_write`]).
pub(super) fn write_plan_file(
    path: &str,
    plan: &synup::plan::Plan,
) -> Result<(), synup::fs_write::WriteError> {
    synup::fs_write::write_with(
        std::path::Path::new(path),
        synup::fs_write::Access::Shared,
        |w| plan.write_json(w),
    )
}
