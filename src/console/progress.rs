//! Progress bars for apply (files, bytes, units with rate and ETA), drawn only
//! on a terminal; otherwise the observer does nothing.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use synup::apply::{ApplyEvent, ApplyObserver};

pub struct ApplyProgress {
    bars: Option<Bars>,
}

struct Bars {
    _multi: MultiProgress,
    bytes: ProgressBar,
    units: ProgressBar,
}

impl ApplyProgress {
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Self { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let bytes = multi.add(ProgressBar::new(0));
        bytes.set_style(
            ProgressStyle::with_template(
                "files {prefix:>7} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let units = multi.add(ProgressBar::new(0));
        units.set_style(
            ProgressStyle::with_template("units {wide_bar} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bars: Some(Bars {
                _multi: multi,
                bytes,
                units,
            }),
        }
    }

    pub fn finish(&self) {
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
                eprintln!("waiting for another apply on {path} to finish …");
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
