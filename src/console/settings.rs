//! What every command was told about its output: colour, quiet, and whether
//! errors are JSON. Set once from the global flags before a command runs.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set (`CLICOLOR_FORCE` forces it on).
    #[default]
    Auto,
    Always,
    Never,
}

/// Which stream a decision is about: colour depends on whether that one is a terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Default)]
struct Settings {
    color: ColorWhen,
    quiet: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
/// Set by a command once it knows it was asked for `--format json`.
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

/// Records the global flags; the first call wins (there is one per process).
pub(crate) fn init(color: ColorWhen, quiet: bool) {
    let _ = SETTINGS.set(Settings { color, quiet });
}

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

/// `-q`: no progress, no notes that are not warnings or errors.
pub(crate) fn quiet() -> bool {
    settings().quiet
}

/// Whether to colour what goes to `stream`, by `--color` and the
/// conventions (no-color.org, `CLICOLOR_FORCE`) when it is `auto`.
pub(crate) fn color(stream: Stream) -> bool {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    resolve(
        settings().color,
        env("NO_COLOR").is_some(),
        env("CLICOLOR_FORCE").is_some_and(|v| v != "0"),
        match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        },
    )
}

/// The decision itself, without the environment: an explicit flag wins,
/// then `NO_COLOR`, then `CLICOLOR_FORCE`, then whether it is a terminal.
fn resolve(when: ColorWhen, no_color: bool, force: bool, terminal: bool) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto if no_color => false,
        ColorWhen::Auto => force || terminal,
    }
}

/// From now on errors are written as JSON on stdout (`--format json`).
pub(crate) fn set_json_errors() {
    JSON_ERRORS.store(true, Ordering::Relaxed);
}

pub(crate) fn json_errors() -> bool {
    JSON_ERRORS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::{ColorWhen, resolve};

    #[test]
    fn a_flag_beats_the_environment_and_no_color_beats_force() {
        assert!(resolve(ColorWhen::Always, true, false, false));
        assert!(!resolve(ColorWhen::Never, false, true, true));
        assert!(!resolve(ColorWhen::Auto, true, true, true));
        assert!(resolve(ColorWhen::Auto, false, true, false));
        assert!(resolve(ColorWhen::Auto, false, false, true));
        assert!(!resolve(ColorWhen::Auto, false, false, false));
    }
}
