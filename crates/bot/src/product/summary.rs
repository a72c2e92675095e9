//! The product bot's progress line and summary, in the style of the course bot's (`report.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::report::{ms, percentile};

/// What the product bot found wrong.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProductChecks {
    /// Pairs of trips one driver held at overlapping times (assigned → completed / cancelled /
    /// redispatched), reconstructed from every notice the bot's riders and drivers received.
    pub overlapping_assignments: u64,
    /// Trips whose booked or completed fare differed from the quoted fare of the booked package.
    pub fare_mismatches: u64,
    /// Offers of a trip in a package other than the driver's vehicle's.
    pub package_mismatches: u64,
    /// Notices a socket received twice (the same id again, not flagged `resent` by a replay).
    pub duplicate_notices: u64,
    /// A trip offered to a second driver while its offer to the first was open, or a driver
    /// offered a trip while holding an offer of another.
    pub double_offers: u64,
    /// Completed trips whose rider's payments did not show one capture of the fare (within 10 s
    /// of the run's end).
    pub payments_wrong: u64,
    /// Completed trips whose driver's earnings did not show the fare less the commission.
    pub earnings_wrong: u64,
    /// Trips a rider found ended (by reading the trip) whose end notice never arrived on the
    /// socket within 2 s after that. Reported, not an invariant: a very slow push looks the same.
    pub missed_notices: u64,
}

impl ProductChecks {
    pub fn hold(&self) -> bool {
        self.overlapping_assignments == 0
            && self.double_offers == 0
            && self.payments_wrong == 0
            && self.earnings_wrong == 0
            && self.fare_mismatches == 0
            && self.package_mismatches == 0
            && self.duplicate_notices == 0
    }
}

/// The live counts, as the progress line shows them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProductProgress {
    /// Since the riders started booking.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    pub trips_booked: u64,
    pub trips_assigned: u64,
    pub trips_completed: u64,
    /// Booked trips not (yet) given a driver.
    pub searching: u64,
    pub offers_received: u64,
    pub offers_accepted: u64,
    pub offers_declined: u64,
    /// Offers whose notice arrived after they lapsed (relayed late), left unanswered.
    pub offers_lapsed_unseen: u64,
    /// Trip ratings given (riders of their drivers, drivers of their riders).
    pub ratings_given: u64,
    pub no_drivers_found: u64,
    /// `trip.cancelled` notices for trips the bot's riders did not cancel themselves.
    pub cancelled: u64,
    /// Trips the bot's riders cancelled: no end before `trip_timeout`, or the run ended.
    pub abandoned: u64,
    /// Non-2xx HTTP answers, by status.
    pub http_errors: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, timeout, …).
    pub transport_errors: u64,
    /// `{"type":"error"}` frames received on a socket.
    pub ws_error_frames: u64,
    pub ws_reconnects: u64,
    /// `driver.position` frames riders received.
    pub driver_positions_seen: u64,
}

impl ProductProgress {
    pub fn errors(&self) -> u64 {
        self.http_errors.values().sum::<u64>() + self.transport_errors + self.ws_error_frames
    }

    pub fn server_errors(&self) -> u64 {
        self.http_errors
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, n)| n)
            .sum()
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[derive(Clone, Debug, Serialize)]
pub struct ProductSummary {
    /// Emails this run used are `bot-<run_id>-rider-<n>@example.com` (and `-driver-`); plates
    /// `BOT-<run_id>-<n>`.
    pub run_id: String,
    /// Riders and drivers signed up, logged in (drivers: with a vehicle, online) and listening.
    pub riders_ready: u64,
    pub drivers_ready: u64,
    pub setup_failures: u64,
    /// Time to get every rider and driver ready.
    #[serde(serialize_with = "secs")]
    pub setup: Duration,
    #[serde(flatten)]
    pub counts: ProductProgress,
    /// Completed trips ÷ seconds from the first booking to the end of the last trip (`elapsed`).
    pub completed_per_sec: f64,
    pub server_errors: u64,
    #[serde(flatten)]
    pub checks: ProductChecks,
    /// Booking → `trip.driver_assigned`, and booking → `trip.completed`.
    pub assigned_p50_ms: Option<f64>,
    pub assigned_p99_ms: Option<f64>,
    pub completed_p50_ms: Option<f64>,
    pub completed_p99_ms: Option<f64>,
    /// How long a searching trip waited for its next offer (from booking, a withdrawn offer or a
    /// redispatch).
    pub offer_wait_p99_ms: Option<f64>,
    pub offer_wait_max_ms: Option<f64>,
    /// Every kind of failed request (`"409 POST /v1/trips/{id}/accept"`) with its count and the
    /// first answer.
    pub error_examples: BTreeMap<String, ErrorExample>,
}

/// How setting up the riders and drivers went.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    pub riders: u64,
    pub drivers: u64,
    pub failures: u64,
    pub took: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct ErrorExample {
    pub count: u64,
    pub first: String,
}

impl ProductSummary {
    pub(crate) fn new(
        run_id: String,
        setup: Setup,
        counts: ProductProgress,
        checks: ProductChecks,
        (assigned_ms, completed_ms, offer_waits_ms): (&[f64], &[f64], &[f64]),
        error_examples: BTreeMap<String, ErrorExample>,
    ) -> Self {
        let sorted = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v
        };
        let (assigned, completed) = (sorted(assigned_ms), sorted(completed_ms));
        let offer_waits = sorted(offer_waits_ms);
        let secs = counts.elapsed.as_secs_f64();
        let completed_per_sec = if secs > 0.0 {
            (counts.trips_completed as f64 / secs * 100.0).round() / 100.0
        } else {
            0.0
        };
        Self {
            run_id,
            riders_ready: setup.riders,
            drivers_ready: setup.drivers,
            setup_failures: setup.failures,
            setup: setup.took,
            server_errors: counts.server_errors(),
            completed_per_sec,
            counts,
            checks,
            assigned_p50_ms: percentile(&assigned, 50.0).map(round1),
            assigned_p99_ms: percentile(&assigned, 99.0).map(round1),
            completed_p50_ms: percentile(&completed, 50.0).map(round1),
            completed_p99_ms: percentile(&completed, 99.0).map(round1),
            offer_wait_p99_ms: percentile(&offer_waits, 99.0).map(round1),
            offer_wait_max_ms: offer_waits.last().copied().map(round1),
            error_examples,
        }
    }

    /// No invariant was broken: no driver held two trips or two offers at once, no trip was
    /// offered to two drivers at once, every fare was the quoted one,
    /// every offer matched the driver's package, no notice came twice.
    pub fn invariants_hold(&self) -> bool {
        self.checks.hold()
    }
}

impl std::fmt::Display for ProductSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "product bot summary after {:.1} s of trips (run {}; setup {:.1} s)",
            c.elapsed.as_secs_f64(),
            self.run_id,
            self.setup.as_secs_f64()
        )?;
        writeln!(
            f,
            "  agents ready     {:>8} riders, {} drivers{}",
            self.riders_ready,
            self.drivers_ready,
            if self.setup_failures > 0 {
                format!("  ({} failed to set up)", self.setup_failures)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "  trips booked     {:>8}  assigned {}  still searching {}",
            c.trips_booked, c.trips_assigned, c.searching
        )?;
        writeln!(
            f,
            "  trips completed  {:>8}  ({:.2} per second)",
            c.trips_completed, self.completed_per_sec
        )?;
        writeln!(
            f,
            "  offers           {:>8}  accepted {}  declined {}  arrived lapsed {}",
            c.offers_received, c.offers_accepted, c.offers_declined, c.offers_lapsed_unseen
        )?;
        writeln!(f, "  trips rated      {:>8}  (both sides)", c.ratings_given)?;
        writeln!(
            f,
            "  trips not done   no drivers found {}  cancelled {}  abandoned by the bot {}",
            c.no_drivers_found, c.cancelled, c.abandoned
        )?;
        writeln!(
            f,
            "  book → assigned  p50 {}  p99 {}",
            ms(self.assigned_p50_ms),
            ms(self.assigned_p99_ms)
        )?;
        writeln!(
            f,
            "  book → completed p50 {}  p99 {}",
            ms(self.completed_p50_ms),
            ms(self.completed_p99_ms)
        )?;
        writeln!(
            f,
            "  search → offer   p99 {}  max {}",
            ms(self.offer_wait_p99_ms),
            ms(self.offer_wait_max_ms)
        )?;
        let k = &self.checks;
        writeln!(
            f,
            "  invariants       {} (driver with overlapping trips: {}, overlapping offers: {}, fare ≠ quote: {}, wrong package offered: {}, duplicate notices: {}, not captured once: {}, earnings ≠ fare less commission: {})",
            if self.invariants_hold() {
                "hold"
            } else {
                "BROKEN"
            },
            k.overlapping_assignments,
            k.double_offers,
            k.fare_mismatches,
            k.package_mismatches,
            k.duplicate_notices,
            k.payments_wrong,
            k.earnings_wrong
        )?;
        if k.missed_notices > 0 {
            writeln!(
                f,
                "  missed notices   {:>8}  (trips found ended by reading them, no notice pushed)",
                k.missed_notices
            )?;
        }
        if c.driver_positions_seen > 0 {
            writeln!(f, "  positions pushed {:>8}", c.driver_positions_seen)?;
        }
        if c.ws_reconnects > 0 {
            writeln!(f, "  socket reopened  {:>8} times", c.ws_reconnects)?;
        }
        if c.errors() == 0 {
            writeln!(f, "  errors                  0")?;
        } else {
            let statuses: Vec<String> = c
                .http_errors
                .iter()
                .map(|(status, n)| format!("{status}: {n}"))
                .collect();
            writeln!(
                f,
                "  errors           {:>8}  (HTTP {}; no answer {}; socket error frames {})",
                c.errors(),
                if statuses.is_empty() {
                    "none".to_owned()
                } else {
                    statuses.join(", ")
                },
                c.transport_errors,
                c.ws_error_frames
            )?;
            for (kind, example) in &self.error_examples {
                writeln!(f, "    {kind} × {}: {}", example.count, example.first)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn print_progress(p: &ProductProgress, per_sec_now: f64) {
    let per_sec_avg = if p.elapsed.as_secs_f64() > 0.0 {
        p.trips_completed as f64 / p.elapsed.as_secs_f64()
    } else {
        0.0
    };
    crate::report::print_line(&format!(
        "[{:>5.1}s] booked {} completed {} ({:.1}/s now, {:.1}/s avg) searching {} declined {} errors {}",
        p.elapsed.as_secs_f64(),
        p.trips_booked,
        p.trips_completed,
        per_sec_now,
        per_sec_avg,
        p.searching,
        p.offers_declined,
        p.errors()
    ));
}
