//! What the operator sees while a load runs: a progress bar with records/s and the ETA on
//! a terminal; otherwise (a log, CI) a plain line every few seconds.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    started: Instant,
    last_line: Instant,
}

/// Where the load is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Bytes of the input whose records are all done (applied, failed or refused).
    pub done_bytes: u64,
    /// Records done.
    pub records: u64,
    /// Of those, not applied.
    pub failed: u64,
}

impl Progress {
    /// A bar when stderr is a terminal, else plain lines.
    pub fn new(total_bytes: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_bytes),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{wide_bar}] {percent:>3}%  {msg}  ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            total_bytes,
            started: now,
            last_line: now,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn rate(&self, records: u64) -> f64 {
        records as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub fn update(&mut self, counts: Counts) {
        let rate = self.rate(counts.records);
        let message = format!(
            "{} records, {}/s, {} not applied",
            thousands(counts.records),
            thousands(rate as u64),
            thousands(counts.failed)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(counts.done_bytes.min(self.total_bytes));
                bar.set_message(message);
            }
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                let share = counts.done_bytes as f64 / self.total_bytes.max(1) as f64;
                let eta = if share > 0.0 {
                    let secs = self.started.elapsed().as_secs_f64() * (1.0 - share) / share;
                    format!(", ETA {}", short_duration(Duration::from_secs_f64(secs)))
                } else {
                    String::new()
                };
                eprintln!(
                    "progress: {:.0}% of the file, {message}{eta}",
                    share * 100.0
                );
            }
            None => {}
        }
    }

    /// A line above the bar (or plainly).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short_duration(Duration::from_secs(75)), "1 min 15 s");
    }
}
