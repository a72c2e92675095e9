//! The bot's live progress line and final summary.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    pub riders_sent: u64,
    pub riders_accepted: u64,
    pub drivers_sent: u64,
    pub drivers_accepted: u64,
    pub riders_matched: u64,
    pub fares_received: u64,
    pub ratings_sent: u64,
    pub ratings_stored: u64,
    /// Times the communication socket was reopened after it dropped.
    pub reconnects: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
}

/// What the bot found wrong.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Checks {
    /// Fares that were not exactly 2 × the trip distance the bot asked for.
    pub fare_mismatches: u64,
    pub riders_matched_twice: u64,
    pub drivers_twice_in_a_tick: u64,
    /// The bot's drivers post once, so a driver matched twice in a run was assigned twice.
    pub drivers_matched_twice: u64,
    /// Rider/driver posts not answered 2xx.
    pub request_errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Names this run used are `rider-<run_id>-<n>`, `driver-<run_id>-<n>`, cars `BOT-<run_id>-<n>`.
    pub run_id: String,
    #[serde(flatten)]
    pub counts: Progress,
    /// Riders matched ÷ riders accepted, in percent.
    pub matched_pct: f64,
    #[serde(flatten)]
    pub checks: Checks,
    /// Time from posting a rider to receiving its fare.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub first_error: Option<String>,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    pub(crate) fn new(
        run_id: String,
        counts: Progress,
        latencies_ms: &[f64],
        checks: Checks,
        first_error: Option<String>,
    ) -> Self {
        let mut sorted = latencies_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let matched_pct = if counts.riders_accepted == 0 {
            0.0
        } else {
            100.0 * counts.riders_matched as f64 / counts.riders_accepted as f64
        };
        Self {
            run_id,
            counts,
            matched_pct,
            checks,
            latency_p50_ms: percentile(&sorted, 50.0),
            latency_p99_ms: percentile(&sorted, 99.0),
            first_error,
        }
    }

    /// No invariant of the course protocol was broken.
    pub fn invariants_hold(&self) -> bool {
        self.checks.fare_mismatches == 0
            && self.checks.riders_matched_twice == 0
            && self.checks.drivers_twice_in_a_tick == 0
            && self.checks.drivers_matched_twice == 0
    }
}

pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"))
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "bot summary after {:.1} s (run {})",
            c.elapsed.as_secs_f64(),
            self.run_id
        )?;
        writeln!(
            f,
            "  riders sent      {:>8}  accepted {}",
            c.riders_sent, c.riders_accepted
        )?;
        writeln!(
            f,
            "  drivers sent     {:>8}  accepted {}",
            c.drivers_sent, c.drivers_accepted
        )?;
        writeln!(
            f,
            "  riders matched   {:>8}  ({:.1} %)",
            c.riders_matched, self.matched_pct
        )?;
        writeln!(
            f,
            "  fares received   {:>8}  wrong {}",
            c.fares_received, self.checks.fare_mismatches
        )?;
        writeln!(
            f,
            "  ratings stored   {:>8}  of {} sent",
            c.ratings_stored, c.ratings_sent
        )?;
        writeln!(
            f,
            "  rider → fare     p50 {}  p99 {}",
            ms(self.latency_p50_ms),
            ms(self.latency_p99_ms)
        )?;
        writeln!(
            f,
            "  invariants       {} (rider matched twice: {}, driver twice in a tick: {}, driver matched twice: {})",
            if self.invariants_hold() {
                "hold"
            } else {
                "BROKEN"
            },
            self.checks.riders_matched_twice,
            self.checks.drivers_twice_in_a_tick,
            self.checks.drivers_matched_twice
        )?;
        if c.reconnects > 0 {
            writeln!(f, "  socket reopened  {:>8} times", c.reconnects)?;
        }
        if self.checks.request_errors > 0 {
            writeln!(f, "  request errors   {:>8}", self.checks.request_errors)?;
        }
        if let Some(e) = &self.first_error {
            writeln!(f, "  first problem    {e}")?;
        }
        Ok(())
    }
}

pub(crate) fn print_progress(p: &Progress) {
    let line = format!(
        "[{:>5.1}s] riders {} drivers {} matched {} fares {} ratings {}/{}",
        p.elapsed.as_secs_f64(),
        p.riders_accepted,
        p.drivers_accepted,
        p.riders_matched,
        p.fares_received,
        p.ratings_stored,
        p.ratings_sent
    );
    print_line(&line);
}

/// One progress line on stderr: rewritten in place on a terminal, one line each otherwise.
pub(crate) fn print_line(line: &str) {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{line}\x1b[K");
    } else {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.flush();
}

pub(crate) fn finish_progress(printed: bool) {
    let mut err = std::io::stderr();
    if printed && err.is_terminal() {
        let _ = writeln!(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }
}
