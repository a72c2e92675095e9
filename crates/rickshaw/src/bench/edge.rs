//! `rickshaw bench edge`: the course mix at the edge — `POST /rider` and `POST /driver`
//! alternating over `--connections` keep-alive connections, as the issue's `wrk` run sent it.
//!
//! The instance runs as a child process (`rickshaw up`, this binary, SQLite in a temporary
//! directory) unless `--target` names one; the load comes from this process, on loopback.
//!
//! 1. **Saturation**: every connection sends its next request as soon as the last is answered,
//!    for `--saturate`: the most requests a second the instance serves (2xx; a 503 refusal is
//!    answered fast and is not counted as served).
//! 2. **Open loop**: requests are due at `--load` × that rate (or `--rate`), evenly spaced, for
//!    `--duration`. Each is timed from when it was due, not from when a connection was free to
//!    send it, so a stall shows up in full in the percentiles (no coordinated omission).
//!
//! Every rider posted waits in the matcher's pool and the matcher ticks throughout (every 1 s by
//! default), pairing the riders and drivers of the last second: the slowest requests and the
//! count over 100 ms show whether a tick holds requests up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use super::Format;
use super::instance::Instance;

#[derive(Args)]
pub struct EdgeArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// A running instance (`http://host:port`); unset: start `rickshaw up` for the run.
    #[arg(long)]
    pub target: Option<String>,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long to measure the saturating rate.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub saturate: Duration,
    /// The open-loop rate as a fraction of the saturating rate.
    #[arg(long, default_value_t = 0.5)]
    pub load: f64,
    /// The open-loop rate in requests a second (instead of `--load`).
    #[arg(long)]
    pub rate: Option<u64>,
    /// How long the open-loop phase runs.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Distinct rider and driver names the requests cycle through (a name posted again
    /// replaces its waiting request or refreshes its report).
    #[arg(long, default_value_t = 100_000)]
    pub names: u64,
    /// Side of the square the positions are drawn from (course units).
    #[arg(long, default_value_t = 1_000.0)]
    pub side: f64,
}

impl EdgeArgs {
    pub fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections > 4_096 {
            return Err("--connections must be 1 to 4096".into());
        }
        if self.saturate.is_zero() && self.rate.is_none() {
            return Err("--saturate must be longer than zero unless --rate is given".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than zero".into());
        }
        if !(self.load > 0.0 && self.load <= 1.0) {
            return Err("--load must be above 0 and at most 1".into());
        }
        if self.rate == Some(0) || self.names == 0 {
            return Err("--rate and --names must be at least 1".into());
        }
        if !(self.side.is_finite() && self.side > 0.0 && self.side <= 1e6) {
            return Err("--side must be above 0 and at most 1e6".into());
        }
        Ok(())
    }
}

/// One phase's figures.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    /// Requests a second asked for (open loop); `None`: as fast as answered.
    pub offered_per_sec: Option<f64>,
    pub requests: u64,
    pub answered_per_sec: f64,
    /// 2xx answers a second: the rate the instance serves (a 503 is a refusal, not service).
    pub served_per_sec: f64,
    /// Answers that were not 2xx, by status, and requests that got no answer.
    pub not_2xx: BTreeMap<u16, u64>,
    pub failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub over_50ms: u64,
    pub over_100ms: u64,
}

impl Phase {
    pub fn not_2xx_total(&self) -> u64 {
        self.not_2xx.values().sum()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct EdgeReport {
    pub connections: usize,
    pub saturation: Option<Phase>,
    pub open_loop: Phase,
    /// The matcher's ticks during the open-loop phase (from the instance's `/metrics`).
    pub ticks: Option<u64>,
    pub tick_mean_ms: Option<f64>,
    pub riders_matched: Option<u64>,
}

/// The `n`-th request of the mix: even numbers post a rider, odd ones a driver.
fn request(
    client: &reqwest::Client,
    url: &str,
    n: u64,
    names: u64,
    side: f64,
) -> reqwest::RequestBuilder {
    // A few rounds of xorshift on the request's number: positions spread over the square,
    // the same on every run.
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * side
    };
    let who = (n / 2) % names;
    if n.is_multiple_of(2) {
        let body = serde_json::json!({
            "name": format!("rider-{who}"),
            "x": next(), "y": next(),
            "destination": {"x": next(), "y": next()},
        });
        client.post(format!("{url}/rider")).json(&body)
    } else {
        let body = serde_json::json!({
            "name": format!("driver-{who}"),
            "car": format!("BENCH-{who}"),
            "x": next(), "y": next(),
        });
        client.post(format!("{url}/driver")).json(&body)
    }
}

#[derive(Default)]
struct Tally {
    micros: Vec<u32>,
    not_2xx: BTreeMap<u16, u64>,
    failed: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        for (status, n) in other.not_2xx {
            *self.not_2xx.entry(status).or_default() += n;
        }
        self.failed += other.failed;
    }

    fn phase(mut self, seconds: f64, offered: Option<f64>) -> Phase {
        self.micros.sort_unstable();
        let at = |p: f64| {
            if self.micros.is_empty() {
                return 0.0;
            }
            let i = ((self.micros.len() as f64 * p).ceil() as usize).clamp(1, self.micros.len());
            f64::from(self.micros[i - 1]) / 1e3
        };
        let requests = self.micros.len() as u64 + self.failed;
        Phase {
            offered_per_sec: offered,
            requests,
            answered_per_sec: self.micros.len() as f64 / seconds,
            served_per_sec: (self.micros.len() as u64 - self.not_2xx.values().sum::<u64>()) as f64
                / seconds,
            not_2xx: self.not_2xx,
            failed: self.failed,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
            over_50ms: self.micros.iter().filter(|m| **m > 50_000).count() as u64,
            over_100ms: self.micros.iter().filter(|m| **m > 100_000).count() as u64,
        }
    }

    fn record(&mut self, took: Duration, answer: Result<reqwest::Response, reqwest::Error>) {
        match answer {
            Ok(answer) => {
                if !answer.status().is_success() {
                    *self.not_2xx.entry(answer.status().as_u16()).or_default() += 1;
                }
                self.micros
                    .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            }
            Err(_) => self.failed += 1,
        }
    }
}

/// Every connection sends as soon as its last request is answered, for `length`.
async fn saturate(
    args: &EdgeArgs,
    client: &reqwest::Client,
    url: &str,
    counter: &Arc<AtomicU64>,
) -> Phase {
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, url, counter, stop) = (
                client.clone(),
                url.to_owned(),
                counter.clone(),
                stop.clone(),
            );
            let (names, side) = (args.names, args.side);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let answer = request(&client, &url, n, names, side).send().await;
                    tally.record(sent.elapsed(), answer);
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(args.saturate).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for worker in workers {
        if let Ok(tally) = worker.await {
            total.merge(tally);
        }
    }
    total.phase(started.elapsed().as_secs_f64(), None)
}

/// Requests due at `rate` a second for `length`, each timed from when it was due.
async fn open_loop(
    args: &EdgeArgs,
    client: &reqwest::Client,
    url: &str,
    counter: &Arc<AtomicU64>,
    rate: f64,
) -> Phase {
    let (due_tx, due_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let due_rx = Arc::new(Mutex::new(due_rx));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, url, due_rx) = (client.clone(), url.to_owned(), due_rx.clone());
            let (names, side) = (args.names, args.side);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let Some((n, due)) = due_rx.lock().await.recv().await else {
                        break;
                    };
                    let answer = request(&client, &url, n, names, side).send().await;
                    tally.record(due.elapsed(), answer);
                }
                tally
            })
        })
        .collect();
    let started = Instant::now();
    let total = (rate * args.duration.as_secs_f64()).round() as u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut scheduled = 0_u64;
    while scheduled < total {
        // Everything due by now goes out; then sleep to the next one (the timer's millisecond
        // grain sends a few at a time, each still timed from its own due instant).
        let now = Instant::now();
        while scheduled < total {
            let due = started + gap.mul_f64(scheduled as f64);
            if due > now {
                break;
            }
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let _ = due_tx.send((n, due));
            scheduled += 1;
        }
        if scheduled < total {
            tokio::time::sleep_until((started + gap.mul_f64(scheduled as f64)).into()).await;
        }
    }
    drop(due_tx);
    let mut tally = Tally::default();
    for worker in workers {
        if let Ok(t) = worker.await {
            tally.merge(t);
        }
    }
    tally.phase(started.elapsed().as_secs_f64(), Some(rate))
}

/// The tick count, their summed seconds and the matches so far, from the instance's metrics.
async fn tick_figures(client: &reqwest::Client, url: &str) -> Option<(u64, f64, u64)> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((
        value("matching_tick_duration_seconds_count")? as u64,
        value("matching_tick_duration_seconds_sum")?,
        value("matching_matches_total").unwrap_or(0.0) as u64,
    ))
}

pub async fn run(args: EdgeArgs, progress: impl Fn(&str)) -> anyhow::Result<EdgeReport> {
    let (_instance, url) = match &args.target {
        Some(url) => (None, url.trim_end_matches('/').to_owned()),
        None => {
            let instance = Instance::start("edge", &[], &progress).await?;
            let url = instance.url().to_owned();
            (Some(instance), url)
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()?;
    let counter = Arc::new(AtomicU64::new(0));
    let mut report = EdgeReport {
        connections: args.connections,
        ..EdgeReport::default()
    };
    let rate = match args.rate {
        Some(rate) => rate as f64,
        None => {
            progress(&format!(
                "saturating with {} connections for {}",
                args.connections,
                humantime::format_duration(args.saturate)
            ));
            let phase = saturate(&args, &client, &url, &counter).await;
            let rate = phase.served_per_sec * args.load;
            progress(&format!(
                "saturated at {:.0} requests/s served (2xx) of {:.0} answered; open loop at {rate:.0}/s",
                phase.served_per_sec, phase.answered_per_sec
            ));
            report.saturation = Some(phase);
            // Let the pool's held requests expire so the open loop starts from a steady state.
            tokio::time::sleep(Duration::from_secs(6)).await;
            rate
        }
    };
    progress(&format!(
        "open loop at {rate:.0} requests/s for {}",
        humantime::format_duration(args.duration)
    ));
    let before = tick_figures(&client, &url).await;
    report.open_loop = open_loop(&args, &client, &url, &counter, rate).await;
    if let (Some(before), Some(after)) = (before, tick_figures(&client, &url).await) {
        let ticks = after.0.saturating_sub(before.0);
        report.ticks = Some(ticks);
        report.tick_mean_ms = (ticks > 0).then(|| (after.1 - before.1) / ticks as f64 * 1e3);
        report.riders_matched = Some(after.2.saturating_sub(before.2));
    }
    Ok(report)
}

pub fn table(report: &EdgeReport) -> String {
    let row = |name: &str, p: &Phase| {
        format!(
            "{name:<11} {:>10} {:>9} {:>9.0} {:>9.0} {:>7} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>7}",
            p.offered_per_sec
                .map_or_else(|| "max".to_owned(), |r| format!("{r:.0}")),
            p.requests,
            p.answered_per_sec,
            p.served_per_sec,
            p.not_2xx_total(),
            p.failed,
            p.p50_ms,
            p.p90_ms,
            p.p99_ms,
            p.p999_ms,
            p.max_ms,
            p.over_50ms,
            p.over_100ms,
        )
    };
    let mut out = format!(
        "{:<11} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}\n",
        "phase",
        "offered/s",
        "requests",
        "answered/s",
        "served/s",
        "not2xx",
        "failed",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        ">50ms",
        ">100ms"
    );
    if let Some(saturation) = &report.saturation {
        out.push_str(&row("saturation", saturation));
        out.push('\n');
    }
    out.push_str(&row("open loop", &report.open_loop));
    for (name, phase) in [
        ("saturation", report.saturation.as_ref()),
        ("open loop", Some(&report.open_loop)),
    ] {
        if let Some(phase) = phase.filter(|p| p.not_2xx_total() > 0) {
            let statuses: Vec<String> = phase
                .not_2xx
                .iter()
                .map(|(s, n)| format!("{n} × {s}"))
                .collect();
            out.push_str(&format!("\n{name}: not 2xx: {}", statuses.join(", ")));
        }
    }
    if let (Some(ticks), Some(mean), Some(matched)) =
        (report.ticks, report.tick_mean_ms, report.riders_matched)
    {
        out.push_str(&format!(
            "\nduring the open loop: {ticks} matching ticks, {mean:.1} ms each on average, {matched} riders matched ({} connections)",
            report.connections
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_alternates_riders_and_drivers_inside_the_square() {
        let client = reqwest::Client::new();
        for n in 0..40_u64 {
            let request = request(&client, "http://127.0.0.1:1", n, 5, 300.0)
                .build()
                .expect("a request");
            let body: serde_json::Value =
                serde_json::from_slice(request.body().and_then(|b| b.as_bytes()).expect("a body"))
                    .expect("json");
            let (path, prefix) = if n % 2 == 0 {
                ("/rider", "rider-")
            } else {
                ("/driver", "driver-")
            };
            assert_eq!(request.url().path(), path);
            let name = body["name"].as_str().expect("a name");
            assert_eq!(name, format!("{prefix}{}", (n / 2) % 5));
            for key in ["x", "y"] {
                let v = body[key].as_f64().expect("a coordinate");
                assert!((0.0..300.0).contains(&v), "{key} = {v}");
            }
        }
    }

    #[test]
    fn percentiles_and_slow_counts_come_from_every_answer() {
        let mut tally = Tally {
            micros: (1..=1_000).map(|ms| ms * 1_000).collect(),
            ..Tally::default()
        };
        tally.not_2xx.insert(503, 7);
        tally.failed = 3;
        let phase = tally.phase(2.0, Some(500.0));
        assert_eq!(phase.requests, 1_003);
        assert_eq!(phase.answered_per_sec, 500.0);
        assert_eq!(phase.served_per_sec, 496.5);
        assert_eq!(
            (phase.p50_ms, phase.p99_ms, phase.max_ms),
            (500.0, 990.0, 1_000.0)
        );
        assert_eq!((phase.over_50ms, phase.over_100ms), (950, 900));
        assert_eq!((phase.not_2xx_total(), phase.failed), (7, 3));
    }

    #[test]
    fn arguments_that_make_no_run_are_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            edge: EdgeArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("edge").chain(args.iter().copied()))
                .expect("parses")
                .edge
                .check()
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--load", "0"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--saturate", "0s"]).is_err());
        assert!(parse(&["--saturate", "0s", "--rate", "100"]).is_ok());
    }
}
