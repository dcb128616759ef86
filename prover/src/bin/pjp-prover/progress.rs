//! Live progress: an indicatif bar on a terminal, plain periodic log lines
//! otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use pjp_prover::pipeline::Live;
use pjp_prover::store::Tally;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Bar,
    Lines,
    None,
}

impl Mode {
    /// `auto` is a bar when stdout is a terminal, log lines otherwise.
    pub(crate) fn from_flag(flag: &str) -> Self {
        match flag {
            "bar" => Self::Bar,
            "lines" => Self::Lines,
            "none" => Self::None,
            _ if std::io::stdout().is_terminal() => Self::Bar,
            _ => Self::Lines,
        }
    }
}

/// Tells the progress task to draw its last frame and stop.
pub(crate) type Stop = tokio::sync::watch::Receiver<bool>;

/// Shows progress until `stop` flips; returns when it has drawn the last frame.
/// `total` is the number of jobs when known (the embedded queue); a fleet
/// worker shows a count without a bar.
pub(crate) async fn show(
    mode: Mode,
    total: Option<u64>,
    live: Live,
    tally: &Tally,
    mut stop: Stop,
) {
    if mode == Mode::None {
        return;
    }
    let started = Instant::now();
    let bar = (mode == Mode::Bar).then(|| {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{elapsed_precise} [{bar:32}] {pos}/{len} jobs · {per_sec} · ETA {eta} · {msg}"
        } else {
            "{elapsed_precise} {spinner} {pos} jobs · {per_sec} · {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let tick = if bar.is_some() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    loop {
        let done = *stop.borrow();
        let counts = tally.counts();
        let finished = counts.succeeded + counts.failed;
        let busy: Vec<String> = live
            .stages
            .iter()
            .map(|(name, workers, progress)| {
                format!("{name} busy {}/{workers}", progress.snapshot().busy_workers)
            })
            .collect();
        let busy = busy.join(", ");
        match &bar {
            Some(bar) => {
                bar.set_position(finished);
                bar.set_message(format!("{} failed · {busy}", counts.failed));
            }
            None => {
                let secs = started.elapsed().as_secs_f64();
                let rate = if secs > 0.0 {
                    finished as f64 / secs
                } else {
                    0.0
                };
                let of = total.map_or_else(String::new, |n| format!("/{n}"));
                eprintln!(
                    "progress: {finished}{of} jobs ({} failed), {rate:.1} jobs/s, {busy}",
                    counts.failed
                );
            }
        }
        if done {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
