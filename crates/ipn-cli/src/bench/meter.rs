//! The progress bar: drawn on stderr when it is a terminal, hidden otherwise.
//! A ticker reads counters ten times a second, so the hot paths only bump
//! atomics and never touch the bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Meter {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Meter {
    /// A bar of `length` whose position and message `read` tells.
    pub fn start(
        show: bool,
        prefix: &'static str,
        length: u64,
        read: impl Fn() -> (u64, String) + Send + 'static,
    ) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(length), target);
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] [{bar:32.cyan/blue}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(prefix);
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                let (position, message) = read();
                shown.set_position(position);
                shown.set_message(message);
            }
        });
        Self { bar, ticker }
    }

    /// Removes the bar, leaving the terminal as it was.
    pub fn finish(self) {
        drop(self);
    }
}

/// Also when a phase is cut short (an error, a deadline): no ticker outlives
/// its bar.
impl Drop for Meter {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
