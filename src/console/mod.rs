//! The only code that writes to the terminal: diagnostics, output, prompts, progress.

pub mod progress;

use std::io::{IsTerminal, Write};

/// miette's renderer: colours only on a terminal, stable width for snapshots.
pub fn install_error_hook() {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }));
}

/// Prints a diagnostic (with its source snippet) to stderr.
pub fn report(diagnostic: impl miette::Diagnostic + Send + Sync + 'static) {
    eprintln!("{:?}", miette::Report::new(diagnostic));
}

/// A one-line error without a source snippet.
pub fn error(message: &str) {
    eprintln!("error: {message}");
}

/// Progress output is for people: only on a terminal, never with `--quiet` or in CI.
pub fn progress_wanted(quiet: bool) -> bool {
    !quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal()
}

/// Data for stdout. A closed pipe (`synup plan | head`) is not an error.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Streams data to stdout through a buffer; a closed pipe is not an error.
pub fn out_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    let stdout = std::io::stdout().lock();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout);
    let _ = write(&mut w);
    let _ = w.flush();
}

/// Progress and notes for stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// Asks a yes/no question on the terminal; anything but yes is no.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
