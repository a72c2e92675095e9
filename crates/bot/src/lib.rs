//! The course bot (seed 002's client): every second it posts riders and drivers at random
//! positions, listens on `/communication` for matches, checks each fare, rates the driver, shows
//! a live progress line and ends with a summary. It speaks only the public protocol, so it can
//! be pointed at any Rickshaw (embedded, or a cluster behind nginx).
//!
//! `product` is the product API's bot (`run_product`): whole trips through `/v1`, by riders and
//! drivers with accounts, reporting completed trips per second.

mod product;
mod report;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub use product::{
    ErrorExample, ProductBotConfig, ProductChecks, ProductProgress, ProductSummary, run_product,
};
pub use report::{Checks, Progress, Summary};

#[derive(Clone, Debug)]
pub struct BotConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    pub riders_per_sec: u32,
    pub drivers_per_sec: u32,
    /// `None`: until cancelled.
    pub duration: Option<Duration>,
    /// Coordinates are drawn uniformly from `0..area` on both axes.
    pub area: f64,
    /// Rate the driver of every fare received.
    pub rate: bool,
    /// After sending stops, how long to wait for the last fares and ratings.
    pub drain: Duration,
    /// Print a progress line (to stderr) every `progress_every`.
    pub progress_every: Option<Duration>,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080".to_owned(),
            riders_per_sec: 5,
            drivers_per_sec: 5,
            duration: Some(Duration::from_secs(30)),
            area: 100.0,
            rate: true,
            drain: Duration::from_secs(6),
            progress_every: Some(Duration::from_secs(1)),
        }
    }
}

/// What the bot sent for one rider, to check what comes back.
#[derive(Clone, Copy, Debug)]
struct SentRider {
    position: (f64, f64),
    destination: (f64, f64),
    sent_at: Instant,
}

#[derive(Debug, Default)]
struct Tally {
    riders_sent: u64,
    riders_accepted: u64,
    drivers_sent: u64,
    drivers_accepted: u64,
    fares_received: u64,
    checks: Checks,
    ratings_sent: u64,
    ratings_stored: u64,
    latencies_ms: Vec<f64>,
    riders: HashMap<String, SentRider>,
    matched: HashSet<String>,
    matched_drivers: HashSet<String>,
    reconnects: u64,
    drivers_by_tick: HashMap<u64, HashSet<String>>,
    first_error: Option<String>,
}

type Shared = Arc<Mutex<Tally>>;

fn lock(tally: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Deserialize)]
struct MatchFrame {
    #[serde(rename = "type")]
    kind: String,
    /// Matches and unmatched notices carry their event's id: the socket is reopened with the
    /// last one (`?last_event_id=`), and what the server sends again is recognised by it.
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    tick: u64,
    #[serde(default)]
    rider: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    fare: f64,
}

/// Runs the bot until its duration ends or `stop` is cancelled, then drains and summarises.
pub async fn run(config: BotConfig, stop: CancellationToken) -> anyhow::Result<Summary> {
    let base = config.target.trim_end_matches('/').to_owned();
    let ws_url = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/communication")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}/communication")
    } else {
        bail!("--target must start with http:// or https://, got {base:?}");
    };
    let (socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .with_context(|| {
            format!("cannot open the communication socket {ws_url}; is Rickshaw running at {base}?")
        })?;
    // Idle connections are dropped well before the server closes them (its header-read
    // deadline, 10 s by default), so a request never races the server's close.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .context("building the HTTP client")?;
    let tally: Shared = Arc::default();
    let started = Instant::now();
    let run_id = format!("{:06x}", rand::random_range(0..0xff_ffff_u32));
    let tasks = tokio_util::task::TaskTracker::new();

    // Listen for matches.
    let listener_stop = CancellationToken::new();
    {
        let tally = tally.clone();
        let http = http.clone();
        let base = base.clone();
        let stop = listener_stop.clone();
        let tasks_inner = tasks.clone();
        let rate = config.rate;
        let ws_url = ws_url.clone();
        tasks.spawn(async move {
            let mut socket = Some(socket);
            let mut seen = SeenEvents::default();
            'sessions: loop {
                // A dropped socket (its communication instance died, say) is reopened at once:
                // behind a load balancer the new session lands on a live instance.
                let current = match socket.take() {
                    Some(current) => current,
                    None => {
                        tokio::select! {
                            () = stop.cancelled() => break 'sessions,
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                        let url = match &seen.last {
                            Some(id) => format!("{ws_url}?last_event_id={id}"),
                            None => ws_url.clone(),
                        };
                        match tokio_tungstenite::connect_async(&url).await {
                            Ok((reopened, _)) => {
                                lock(&tally).reconnects += 1;
                                reopened
                            }
                            Err(_) => continue 'sessions,
                        }
                    }
                };
                let (_sink, mut stream) = current.split();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => break 'sessions,
                        m = stream.next() => m,
                    };
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => continue 'sessions,
                    };
                    let Ok(frame) = serde_json::from_str::<MatchFrame>(text.as_str()) else {
                        continue;
                    };
                    if !seen.first_time(&frame) {
                        continue;
                    }
                    if frame.kind != "match" || !on_match(&tally, &frame) || !rate {
                        continue;
                    }
                    let http = http.clone();
                    let url = format!("{base}/rating");
                    let tally = tally.clone();
                    tasks_inner.spawn(async move {
                        let stars = rand::random_range(1..=5_u8);
                        lock(&tally).ratings_sent += 1;
                        let body = json!({"driver": frame.driver, "rating": stars});
                        if rate_driver(&http, &url, &body).await {
                            lock(&tally).ratings_stored += 1;
                        }
                    });
                }
            }
        });
    }

    // Send riders and drivers every second.
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut next_progress = config.progress_every.map(|every| started + every);
    let mut rider_seq = 0_u64;
    let mut driver_seq = 0_u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        for _ in 0..config.drivers_per_sec {
            driver_seq += 1;
            let body = json!({
                "name": format!("driver-{run_id}-{driver_seq}"),
                "car": format!("BOT-{run_id}-{driver_seq}"),
                "x": rand::random_range(0.0..config.area),
                "y": rand::random_range(0.0..config.area),
            });
            tasks.spawn(post(
                http.clone(),
                format!("{base}/driver"),
                body,
                tally.clone(),
                None,
            ));
        }
        for _ in 0..config.riders_per_sec {
            rider_seq += 1;
            let name = format!("rider-{run_id}-{rider_seq}");
            let sent = SentRider {
                position: (
                    rand::random_range(0.0..config.area),
                    rand::random_range(0.0..config.area),
                ),
                destination: (
                    rand::random_range(0.0..config.area),
                    rand::random_range(0.0..config.area),
                ),
                sent_at: Instant::now(),
            };
            let body = json!({
                "name": name,
                "x": sent.position.0, "y": sent.position.1,
                "destination": {"x": sent.destination.0, "y": sent.destination.1},
            });
            lock(&tally).riders.insert(name.clone(), sent);
            tasks.spawn(post(
                http.clone(),
                format!("{base}/rider"),
                body,
                tally.clone(),
                Some(name),
            ));
        }
        if let (Some(at), Some(every)) = (next_progress, config.progress_every)
            && Instant::now() >= at
        {
            report::print_progress(&snapshot(&tally, started));
            next_progress = Some(at + every);
        }
    }

    // Let the last requests be matched, priced and rated.
    let sending_stopped = Instant::now();
    while sending_stopped.elapsed() < config.drain && !stop.is_cancelled() {
        let settled = {
            let t = lock(&tally);
            t.matched.len() as u64 >= t.riders_accepted && t.ratings_sent == t.ratings_stored
        };
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listener_stop.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    report::finish_progress(config.progress_every.is_some());
    let progress = snapshot(&tally, started);
    let t = lock(&tally);
    Ok(Summary::new(
        run_id,
        progress,
        &t.latencies_ms,
        t.checks.clone(),
        t.first_error.clone(),
    ))
}

/// Records one match for a rider of this run; returns whether it was one (and so should be rated).
/// The events the listener has had (the latest few thousand), and the last, which it reconnects
/// with.
#[derive(Default)]
struct SeenEvents {
    ids: std::collections::HashSet<(String, String)>,
    order: std::collections::VecDeque<(String, String)>,
    last: Option<String>,
}

impl SeenEvents {
    const MEMORY: usize = 8192;

    /// Whether `frame` is new (and now seen); frames without an event id always are.
    fn first_time(&mut self, frame: &MatchFrame) -> bool {
        let Some(id) = &frame.event_id else {
            return true;
        };
        let key = (id.clone(), frame.kind.clone());
        if !self.ids.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.last = Some(id.clone());
        true
    }
}

fn on_match(tally: &Shared, frame: &MatchFrame) -> bool {
    let mut t = lock(tally);
    let Some(sent) = t.riders.get(&frame.rider).copied() else {
        return false; // another client's rider
    };
    t.fares_received += 1;
    let (dx, dy) = (
        sent.destination.0 - sent.position.0,
        sent.destination.1 - sent.position.1,
    );
    let expected = 2.0 * dx.hypot(dy);
    if frame.fare != expected {
        t.checks.fare_mismatches += 1;
        t.first_error.get_or_insert(format!(
            "fare for {} is {} but 2 × distance is {expected}",
            frame.rider, frame.fare
        ));
    }
    if !t.matched_drivers.insert(frame.driver.clone()) {
        t.checks.drivers_matched_twice += 1;
    }
    if !t.matched.insert(frame.rider.clone()) {
        t.checks.riders_matched_twice += 1;
    }
    if !t
        .drivers_by_tick
        .entry(frame.tick)
        .or_default()
        .insert(frame.driver.clone())
    {
        t.checks.drivers_twice_in_a_tick += 1;
    }
    t.latencies_ms
        .push(sent.sent_at.elapsed().as_secs_f64() * 1000.0);
    true
}

/// Posts a rating; returns whether it was stored. Retried briefly: a 404 for a driver that was just
/// matched (the rating service learns drivers from the bus moments after they report), and a 5xx
/// or a lost connection while an instance fails over. Ratings carry no idempotency key yet, so a
/// retry after a lost reply can store a rating twice.
async fn rate_driver(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> bool {
    for attempt in 1..=5_u64 {
        match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r)
                if r.status() == reqwest::StatusCode::NOT_FOUND || r.status().is_server_error() => {
            }
            Ok(_) => return false,
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    false
}

async fn post(
    http: reqwest::Client,
    url: String,
    body: serde_json::Value,
    tally: Shared,
    rider: Option<String>,
) {
    let result = http.post(&url).json(&body).send().await;
    let mut t = lock(&tally);
    if rider.is_some() {
        t.riders_sent += 1;
    } else {
        t.drivers_sent += 1;
    }
    match result {
        Ok(response) if response.status().is_success() => {
            if rider.is_some() {
                t.riders_accepted += 1;
            } else {
                t.drivers_accepted += 1;
            }
        }
        Ok(response) => {
            t.checks.request_errors += 1;
            let status = response.status();
            t.first_error
                .get_or_insert(format!("POST {url} answered {status}"));
            if let Some(name) = rider {
                t.riders.remove(&name);
            }
        }
        Err(e) => {
            t.checks.request_errors += 1;
            t.first_error
                .get_or_insert(format!("POST {url} failed: {e}"));
            if let Some(name) = rider {
                t.riders.remove(&name);
            }
        }
    }
}

fn snapshot(tally: &Shared, started: Instant) -> Progress {
    let t = lock(tally);
    Progress {
        elapsed: started.elapsed(),
        riders_sent: t.riders_sent,
        riders_accepted: t.riders_accepted,
        drivers_sent: t.drivers_sent,
        drivers_accepted: t.drivers_accepted,
        riders_matched: t.matched.len() as u64,
        fares_received: t.fares_received,
        ratings_sent: t.ratings_sent,
        ratings_stored: t.ratings_stored,
        reconnects: t.reconnects,
    }
}
