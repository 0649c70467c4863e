//! Progress bars for apply (files, bytes, units with rate and ETA), drawn only
//! on a terminal; otherwise the observer does nothing.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use synup::apply::{ApplyEvent, ApplyObserver};

/// A bar or spinner style from `template`, where `{rate}` is a whole count
/// per second (indicatif's `{per_sec}` prints every decimal: `505.4132/s`).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
}

pub(crate) struct ApplyProgress {
    bars: Option<Bars>,
}

struct Bars {
    _multi: MultiProgress,
    bytes: ProgressBar,
    units: ProgressBar,
}

impl ApplyProgress {
    pub(crate) fn new(enabled: bool) -> Self {
        if !enabled {
            return Self { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let bytes = multi.add(ProgressBar::new(0));
        bytes.set_style(style(
            "files {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ));
        let units = multi.add(ProgressBar::new(0));
        units.set_style(style(
            "units {wide_bar} {human_pos}/{human_len} {rate} eta {eta}",
        ));
        Self {
            bars: Some(Bars {
                _multi: multi,
                bytes,
                units,
            }),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bars {
            b.bytes.finish_and_clear();
            b.units.finish_and_clear();
        }
    }
}

impl ApplyObserver for ApplyProgress {
    fn on(&self, event: &ApplyEvent<'_>) {
        match event {
            ApplyEvent::WaitingForLock { path } => {
                // Said even without bars: the user must know why nothing moves.
                super::note(&format!("waiting for another apply on {path} to finish …"));
            }
            _ if self.bars.is_none() => {}
            ApplyEvent::Started { units, bytes, .. } => {
                let b = self.bars.as_ref().expect("checked");
                b.units.set_length(*units);
                b.bytes.set_length(*bytes);
            }
            ApplyEvent::FileStored { bytes } => {
                let b = self.bars.as_ref().expect("checked");
                b.bytes.inc(*bytes);
            }
            ApplyEvent::UnitCreated { .. }
            | ApplyEvent::UnitUnchanged { .. }
            | ApplyEvent::UnitFailed { .. } => {
                let b = self.bars.as_ref().expect("checked");
                b.units.inc(1);
            }
            ApplyEvent::FileFailed { path, reason } => {
                let b = self.bars.as_ref().expect("checked");
                b.units.println(format!("failed: {path}: {reason}"));
            }
            ApplyEvent::Finished => self.finish(),
        }
    }
}

/// One spinner per remote root while it is listed ("listing s3://…: 120,000
/// objects, 9,800/s"), drawn only on a terminal and cleared when planning ends.
#[derive(Clone)]
pub(crate) struct ListingProgress {
    multi: MultiProgress,
    bars: std::sync::Arc<std::sync::Mutex<Vec<(String, ProgressBar)>>>,
}

impl ListingProgress {
    pub(crate) fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            bars: Default::default(),
        }
    }

    /// `n` objects of `root` listed so far.
    pub(crate) fn listed(&self, root: &str, n: u64) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = match bars.iter().find(|(r, _)| r == root) {
            Some((_, bar)) => bar.clone(),
            None => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style(
                    "{spinner} listing {prefix}: {human_pos} objects, {rate} {elapsed}",
                ));
                bar.set_prefix(root.to_owned());
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                bars.push((root.to_owned(), bar.clone()));
                bar
            }
        };
        bar.set_position(n);
    }

    pub(crate) fn finish(&self) {
        for (_, bar) in self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            bar.finish_and_clear();
        }
    }
}

/// The plan's hash pass as a bar of bytes read (files that are not in the
/// checksum cache), drawn once the pass knows how much it will read.
pub(crate) struct HashingBar {
    bar: ProgressBar,
}

impl HashingBar {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        bar.set_style(style(
            "hashing {msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ));
        Self { bar }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl synup::stages::checksum::HashProgress for HashingBar {
    fn start(&self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar
            .set_message(format!("{} files", indicatif::HumanCount(files)));
        self.bar.reset();
        self.bar
            .set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    }

    fn read(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}
