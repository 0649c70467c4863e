//! Logs through `tracing`: `-v` is debug and `-vv` trace for synup (with
//! other crates' warnings, then their debug), `SYNUP_LOG` takes a filter
//! instead (`SYNUP_LOG=synup::apply=trace,reqwest=debug`), `--log-file`
//! sends them to a file. Every line is masked like all other output: a
//! token in a URL or an error never reaches the log.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use super::settings::{self, Stream};

/// Where log lines go.
#[derive(Clone)]
enum Sink {
    Stderr,
    File(Arc<Mutex<std::fs::File>>),
}

/// One event's line, written masked when the formatter drops it.
struct Line {
    sink: Sink,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let colors = matches!(self.sink, Sink::Stderr) && settings::color(Stream::Stderr);
        let shown = super::for_terminal(&text, colors);
        // A log that cannot be written is not worth failing the command for.
        let _ = match &self.sink {
            Sink::Stderr => std::io::stderr().lock().write_all(shown.as_bytes()),
            Sink::File(f) => f
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(shown.as_bytes()),
        };
    }
}

struct Lines(Sink);

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line {
            sink: self.0.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// The filter for `-v` counted `verbose` times, or `None`: nothing is logged.
/// A log file alone logs at debug (it is read after the fact).
fn default_filter(verbose: u8, to_file: bool) -> Option<&'static str> {
    match (verbose, to_file) {
        (0, false) => None,
        (0 | 1, _) => Some("synup=debug,warn"),
        _ => Some("synup=trace,debug"),
    }
}

/// Installs the subscriber for this process. The error is for people
/// (a bad `SYNUP_LOG`, a log file that cannot be opened).
pub(crate) fn init(verbose: u8, file: Option<&Path>) -> Result<(), String> {
    let filter = match std::env::var("SYNUP_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| format!("SYNUP_LOG={spec:?} is not a log filter: {e}"))?,
        _ => match default_filter(verbose, file.is_some()) {
            Some(spec) => EnvFilter::new(spec),
            None => return Ok(()),
        },
    };
    let sink = match file {
        None => Sink::Stderr,
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let f = options
                .open(path)
                .map_err(|e| format!("--log-file {}: {e}", path.display()))?;
            Sink::File(Arc::new(Mutex::new(f)))
        }
    };
    let ansi = matches!(sink, Sink::Stderr) && settings::color(Stream::Stderr);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(Lines(sink));
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::default_filter;

    #[test]
    fn verbosity_picks_the_level_and_a_file_alone_logs_debug() {
        assert_eq!(default_filter(0, false), None);
        assert_eq!(default_filter(0, true), Some("synup=debug,warn"));
        assert_eq!(default_filter(1, false), Some("synup=debug,warn"));
        assert_eq!(default_filter(2, false), Some("synup=trace,debug"));
        assert_eq!(default_filter(5, true), Some("synup=trace,debug"));
    }
}
