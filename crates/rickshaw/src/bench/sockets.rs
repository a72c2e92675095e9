//! `rickshaw bench sockets`: live `/v1/ws` sessions on one instance.
//!
//! The system runs embedded in this process (SQLite in a temporary directory, the in-process
//! bus), exactly as `rickshaw up` runs it. The sessions are opened by `--clients` child processes
//! (`rickshaw bench sockets-client`, each with its own file limit), on loopback, with access
//! tokens minted with the instance's own signing key: one account per session, half riders, half
//! drivers. Then:
//!
//! 1. **Memory**: the process's resident size before and after the sessions, per session.
//! 2. **Pushes**: trip notices published on the bus at `--rate` pushes a second for
//!    `--duration`, each for `--fanout` accounts (a rider and a driver), as the trip service
//!    publishes them; the clients time each from the notice's `at` to its arrival.
//! 3. **Reconnect storm**: `--reconnect` sessions drop at once and reconnect with
//!    `last_event_id`; the time until every one has its `hello` and its replay.
//!
//! The clients and the server share this machine's cores, as the issue's measurement asks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use domain::trip::TripStatus;
use domain::{AccountId, LatLng, Package, Role};
use futures_util::{SinkExt, StreamExt};
use identity::{IdentityConfig, SigningKey, TokenIssuer};
use platform::bus::{Envelope, InProcessBus, SharedBus};
use platform::clock;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use trip::{Money, NoticeKind, TripNotice, TripView};

use super::{Format, parse_count};

/// A client session's read buffer: the server's notices are small.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

#[derive(Args)]
pub struct SocketsArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Sessions to open (each process may hold 20,000 files here: the server's limit).
    #[arg(long, value_parser = parse_count, default_value = "19k")]
    pub sessions: usize,
    /// Client processes the sessions are spread over.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Pushes a second offered (notices × fan-out).
    #[arg(long, value_parser = parse_count, default_value = "150k")]
    pub rate: usize,
    /// Accounts each notice is for.
    #[arg(long, default_value_t = 2)]
    pub fanout: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Sessions that drop and reconnect at once.
    #[arg(long, value_parser = parse_count, default_value = "10k")]
    pub reconnect: usize,
}

impl SocketsArgs {
    pub fn check(&self) -> Result<(), String> {
        if self.sessions == 0 || self.clients == 0 || self.clients > 64 {
            return Err("--sessions must be at least 1 and --clients 1 to 64".into());
        }
        if self.fanout == 0 || self.fanout > self.sessions {
            return Err("--fanout must be 1 to --sessions".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than zero".into());
        }
        if self.reconnect > self.sessions {
            return Err("--reconnect cannot exceed --sessions".into());
        }
        Ok(())
    }
}

/// The hidden `rickshaw bench sockets-client`: opens the sessions it is given on stdin and
/// answers the parent's commands (see [`Command`]) with JSON lines on stdout.
#[derive(Args)]
pub struct ClientArgs {
    /// `ws://host:port/v1/ws`
    #[arg(long)]
    pub url: String,
}

#[derive(Debug, Default, Serialize)]
pub struct SocketsReport {
    pub sessions_asked: usize,
    pub sessions_open: u64,
    pub connect_failures: u64,
    pub connect_secs: f64,
    pub rss_before_mib: f64,
    pub rss_with_sessions_mib: f64,
    pub kib_per_session: f64,
    pub pushes_offered_per_sec: usize,
    pub notices_published: u64,
    /// Publishes the bus refused because the consumer's queue was full (retried).
    pub publish_refusals: u64,
    pub pushes_expected: u64,
    pub pushes_received: u64,
    pub push_secs: f64,
    pub pushes_per_sec: f64,
    pub delivery_p50_ms: Option<u64>,
    pub delivery_p99_ms: Option<u64>,
    pub delivery_max_ms: Option<u64>,
    /// CPU time used during the pushes, a push received: by this process (the server, and the
    /// publisher standing in for the trip service), and by the client processes.
    pub server_cpu_us_per_push: Option<f64>,
    pub clients_cpu_us_per_push: Option<f64>,
    /// The pushes a second the machine's cores could carry at those costs, server and clients on
    /// the same cores as here.
    pub push_ceiling_per_sec: Option<f64>,
    pub reconnect_asked: usize,
    pub reconnected: u64,
    pub reconnect_failures: u64,
    pub reconnect_secs: f64,
}

/// What the parent tells a client, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
enum Command {
    /// Open a session with each token.
    Open {
        tokens: Vec<String>,
    },
    /// Send the delivery times seen so far.
    Report,
    /// Drop the first `count` sessions and reopen them with `last_event_id` (see [`open`]).
    Reconnect {
        count: usize,
    },
    Exit,
}

/// What a client answers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Answer {
    open: u64,
    failed: u64,
    /// Delivery time in whole milliseconds → pushes.
    latency_ms: BTreeMap<u64, u64>,
}

/// CPU seconds used so far by this process and by the clients together; `None` where the system
/// does not say.
fn cpu_now(children: &[Child]) -> Option<(f64, f64)> {
    let server = bench::cpu::cpu_secs(None)?;
    let mut clients = 0.0;
    for child in children {
        clients += bench::cpu::cpu_secs(Some(child.process.id()?))?;
    }
    Some((server, clients))
}

fn resident_mib() -> f64 {
    bench::memory::rss_bytes().map_or(0.0, |bytes| bytes as f64 / 1_048_576.0)
}

struct Child {
    process: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn send(&mut self, command: &Command) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn answer(&mut self) -> anyhow::Result<Answer> {
        let line = self
            .stdout
            .next_line()
            .await?
            .context("a socket client exited early (see its stderr)")?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// Every child's answer to `command` (sent to all at once).
async fn all(
    children: &mut [Child],
    command: impl Fn(usize) -> Command,
) -> anyhow::Result<Vec<Answer>> {
    for (n, child) in children.iter_mut().enumerate() {
        child.send(&command(n)).await?;
    }
    let mut answers = Vec::with_capacity(children.len());
    for child in children.iter_mut() {
        answers.push(child.answer().await?);
    }
    Ok(answers)
}

fn percentile(histogram: &BTreeMap<u64, u64>, p: f64) -> Option<u64> {
    let total: u64 = histogram.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (ms, count) in histogram {
        seen += count;
        if seen >= rank {
            return Some(*ms);
        }
    }
    histogram.keys().last().copied()
}

/// A notice for `recipients`, as the trip service publishes one.
fn notice(id: i64, recipients: Vec<AccountId>) -> TripNotice {
    let now = clock::now();
    let at = LatLng::new(23.78, 90.41).unwrap_or_else(|_| unreachable!("a valid point"));
    TripNotice {
        id,
        kind: NoticeKind::Offered,
        trip: TripView {
            id: clock::new_id(),
            status: TripStatus::Offered,
            rider_id: recipients[0],
            driver_id: recipients.get(1).copied(),
            package: Package::Car,
            pickup: at,
            dropoff: at,
            route: domain::RouteEstimate {
                distance_m: 4_200,
                duration_s: 900,
            },
            fare: Money::bdt(25_000),
            requested_at: now,
            updated_at: now,
            offer_expires_at: Some(now.plus_millis(15_000)),
            assigned_at: None,
            arrived_at: None,
            cancelled_by: None,
            cancellation_fee: None,
            free_cancel_until: None,
            late_cancel_fee: None,
            version: 2,
        },
        recipients,
        at: now,
    }
}

pub async fn run(args: SocketsArgs, progress: impl Fn(&str)) -> anyhow::Result<SocketsReport> {
    let data_dir =
        std::env::temp_dir().join(format!("rickshaw-bench-sockets-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(data_dir.clone());
    let overrides = json!({
        "listen": "127.0.0.1:0",
        "data_dir": data_dir,
        // Every session comes from 127.0.0.1: no per-address cap, room for all of them.
        "http": {"max_connections": args.sessions + 1_000, "max_connections_per_address": 0},
        // The audit log records every trip notice in its own database; in a deployment it is its
        // own process. Here its writes would be what is measured, so it skips the bench's.
        "audit": {"subjects": ["payment.>", "rating.>", "mail.>", "supply.driver_status.v1"]},
    });
    let config = platform::Config::load(None, overrides, &rickshaw::system::config_sections())?;
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let system = rickshaw::system::System::embedded_on(config.clone(), bus.clone()).await?;
    let addr = system.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(system.run(stop.clone().cancelled_owned()));
    let key = SigningKey::embedded(&config.section::<IdentityConfig>()?, &config.data_dir)?;
    let issuer = TokenIssuer::new(&key, 3_600);
    let accounts: Vec<(AccountId, Role)> = (0..args.sessions)
        .map(|n| {
            (
                clock::new_id(),
                if n % 2 == 0 {
                    Role::Rider
                } else {
                    Role::Driver
                },
            )
        })
        .collect();
    let mut tokens = Vec::with_capacity(accounts.len());
    for (account, role) in &accounts {
        tokens.push(issuer.issue(*account, *role, clock::now())?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = resident_mib();

    // Open the sessions.
    progress(&format!(
        "opening {} sessions from {} client processes…",
        args.sessions, args.clients
    ));
    let exe = std::env::current_exe()?;
    let url = format!("ws://{addr}/v1/ws");
    let mut children = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let mut process = tokio::process::Command::new(&exe)
            .args(["bench", "sockets-client", "--url", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a socket client")?;
        let stdin = process.stdin.take().context("client stdin")?;
        let stdout = BufReader::new(process.stdout.take().context("client stdout")?).lines();
        children.push(Child {
            process,
            stdin,
            stdout,
        });
    }
    let share = args.sessions.div_ceil(args.clients);
    let started = Instant::now();
    let opened = all(&mut children, |n| Command::Open {
        tokens: tokens.iter().skip(n * share).take(share).cloned().collect(),
    })
    .await?;
    let mut report = SocketsReport {
        sessions_asked: args.sessions,
        sessions_open: opened.iter().map(|a| a.open).sum(),
        connect_failures: opened.iter().map(|a| a.failed).sum(),
        connect_secs: started.elapsed().as_secs_f64(),
        rss_before_mib: rss_before,
        pushes_offered_per_sec: args.rate,
        reconnect_asked: args.reconnect,
        ..SocketsReport::default()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_with_sessions_mib = resident_mib();
    if report.sessions_open > 0 {
        report.kib_per_session =
            (report.rss_with_sessions_mib - rss_before) * 1024.0 / report.sessions_open as f64;
    }
    progress(&format!(
        "{} sessions open in {:.1} s ({} failed); {:.1} KiB each; pushing {}/s for {:?}…",
        report.sessions_open,
        report.connect_secs,
        report.connect_failures,
        report.kib_per_session,
        args.rate,
        args.duration
    ));

    // Pushes: every 10 ms, a slice of the second's notices, each for `fanout` accounts in turn.
    let cpu_before = cpu_now(&children);
    let notices_per_sec = (args.rate / args.fanout).max(1);
    let slices = 100_u32;
    let started = Instant::now();
    let mut next_account = 0;
    let mut id = 0_i64;
    let mut refusals = 0_u64;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / slices);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (notices_per_sec as f64 * args.duration.as_secs_f64()) as u64;
    let mut published = 0_u64;
    while published < total {
        ticks.tick().await;
        let due = ((started.elapsed().as_secs_f64() * notices_per_sec as f64) as u64).min(total);
        while published < due {
            let recipients: Vec<AccountId> = (0..args.fanout)
                .map(|k| accounts[(next_account + k) % accounts.len()].0)
                .collect();
            next_account = (next_account + args.fanout) % accounts.len();
            id += 1;
            let event = notice(id, recipients);
            let envelope = Envelope::from_event(&event, clock::new_id(), event.at)?;
            while bus.publish(envelope.clone()).await.is_err() {
                refusals += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            published += 1;
        }
    }
    report.notices_published = published;
    report.publish_refusals = refusals;
    report.pushes_expected = published * args.fanout as u64;
    // The last ones in flight.
    let mut received = 0;
    let mut histogram = BTreeMap::new();
    for _ in 0..50 {
        let answers = all(&mut children, |_| Command::Report).await?;
        histogram = BTreeMap::new();
        for answer in answers {
            for (ms, count) in answer.latency_ms {
                *histogram.entry(ms).or_insert(0) += count;
            }
        }
        received = histogram.values().sum::<u64>();
        if received >= report.pushes_expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.push_secs = started.elapsed().as_secs_f64();
    report.pushes_received = received;
    report.pushes_per_sec = received as f64 / report.push_secs;
    report.delivery_p50_ms = percentile(&histogram, 50.0);
    report.delivery_p99_ms = percentile(&histogram, 99.0);
    report.delivery_max_ms = histogram.keys().last().copied();
    if let (Some((server_before, clients_before)), Some((server, clients))) =
        (cpu_before, cpu_now(&children))
        && received > 0
    {
        let per_push = |secs: f64| secs * 1e6 / received as f64;
        let (server, clients) = (
            per_push(server - server_before),
            per_push(clients - clients_before),
        );
        report.server_cpu_us_per_push = Some(server);
        report.clients_cpu_us_per_push = Some(clients);
        report.push_ceiling_per_sec =
            bench::cpu::ceiling_per_sec(bench::cpu::cores(), (server + clients) / 1e6);
    }
    progress(&format!(
        "{} of {} pushes in {:.1} s, p99 {:?} ms; {} sessions reconnecting at once…",
        report.pushes_received,
        report.pushes_expected,
        report.push_secs,
        report.delivery_p99_ms,
        args.reconnect
    ));

    // The reconnect storm.
    let per_client = args.reconnect.div_ceil(args.clients);
    let mut left = args.reconnect;
    let counts: Vec<usize> = (0..args.clients)
        .map(|_| {
            let count = per_client.min(left);
            left -= count;
            count
        })
        .collect();
    let started = Instant::now();
    let answers = all(&mut children, |n| Command::Reconnect { count: counts[n] }).await?;
    report.reconnect_secs = started.elapsed().as_secs_f64();
    report.reconnected = answers.iter().map(|a| a.open).sum();
    report.reconnect_failures = answers.iter().map(|a| a.failed).sum();

    for child in &mut children {
        let _ = child.send(&Command::Exit).await;
    }
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(10), child.process.wait()).await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    Ok(report)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn table(report: &SocketsReport) -> String {
    let ms = |v: Option<u64>| v.map_or("–".to_owned(), |v| format!("{v} ms"));
    let us = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} µs"));
    format!(
        "sessions     {} of {} open in {:.1} s ({} failed)\n\
         memory       {:.0} MiB → {:.0} MiB: {:.1} KiB a session\n\
         pushes       {} of {} received in {:.1} s: {:.0}/s (offered {}/s; {} publishes refused and retried)\n\
         delivery     p50 {}, p99 {}, max {}\n\
         cpu a push   server {}, clients {}: at most {} pushes/s on this machine's cores\n\
         reconnect    {} of {} sessions back with their replay in {:.2} s ({} failed)",
        report.sessions_open,
        report.sessions_asked,
        report.connect_secs,
        report.connect_failures,
        report.rss_before_mib,
        report.rss_with_sessions_mib,
        report.kib_per_session,
        report.pushes_received,
        report.pushes_expected,
        report.push_secs,
        report.pushes_per_sec,
        report.pushes_offered_per_sec,
        report.publish_refusals,
        ms(report.delivery_p50_ms),
        ms(report.delivery_p99_ms),
        ms(report.delivery_max_ms),
        us(report.server_cpu_us_per_push),
        us(report.clients_cpu_us_per_push),
        report
            .push_ceiling_per_sec
            .map_or("–".to_owned(), |v| format!("{v:.0}")),
        report.reconnected,
        report.reconnect_asked,
        report.reconnect_secs,
        report.reconnect_failures,
    )
}

/// One session of a client and the task reading it.
struct Session {
    token: String,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// Delivery times, milliseconds → count, shared by a client's sessions.
#[derive(Default)]
struct Latencies {
    buckets: std::sync::Mutex<BTreeMap<u64, u64>>,
}

/// Opens `session` and spawns its reader; false if it could not open or no `hello` came. A
/// reconnect sends `last_event_id`: 0, the head of the trip log, which the bench's notices
/// (published on the bus only) are not in, so the server reads each session's replay and finds
/// it empty.
async fn open(
    url: &str,
    session: &mut Session,
    latencies: &Arc<Latencies>,
    reconnect: bool,
) -> bool {
    let target = if reconnect {
        format!("{url}?last_event_id=0")
    } else {
        url.to_owned()
    };
    let Ok(mut request) = target.as_str().into_client_request() else {
        return false;
    };
    let Ok(bearer) = format!("Bearer {}", session.token).parse() else {
        return false;
    };
    request.headers_mut().insert("authorization", bearer);
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(30),
        // tungstenite zeroes its whole read buffer before each read (128 KiB by default): with
        // thousands of sessions a client process spent a third of the machine's CPU in memset.
        tokio_tungstenite::connect_async_with_config(
            request,
            Some(WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER)),
            true,
        ),
    )
    .await
    else {
        return false;
    };
    // The hello, then (after a reconnect) the replay, which ends when the socket is quiet.
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) if text.as_str().contains("\"hello\"") => {}
        _ => return false,
    }
    let latencies = latencies.clone();
    session.reader = Some(tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => {
                    // The top-level `"at":` (the trip's own times are `…_at`), read without
                    // parsing the whole frame: the clients share the cores with the server.
                    let Some(at) = top_level_at(text.as_str()) else {
                        continue;
                    };
                    let ms = clock::now().millis_since(domain::Timestamp::from_millis(at));
                    *latencies
                        .buckets
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(ms)
                        .or_insert(0) += 1;
                }
                Message::Ping(payload) => {
                    let _ = sink.send(Message::Pong(payload)).await;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    }));
    true
}

/// The millisecond timestamp after `"at":` in a notice frame.
fn top_level_at(frame: &str) -> Option<i64> {
    let rest = &frame[frame.find("\"at\":")? + 5..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Opens every session in `sessions` (at most 256 handshakes at once); (opened, failed).
async fn open_all(
    url: &str,
    sessions: Vec<Session>,
    latencies: &Arc<Latencies>,
    reconnect: bool,
) -> (Vec<Session>, u64, u64) {
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, mut session) in sessions.into_iter().enumerate() {
        let (url, latencies, gate) = (url.to_owned(), latencies.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let ok = open(&url, &mut session, &latencies, reconnect).await;
            (n, session, ok)
        });
    }
    let mut done = Vec::new();
    let (mut opened, mut failed) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        if let Ok((n, session, ok)) = joined {
            if ok {
                opened += 1;
            } else {
                failed += 1;
            }
            done.push((n, session));
        }
    }
    done.sort_by_key(|(n, _)| *n);
    (done.into_iter().map(|(_, s)| s).collect(), opened, failed)
}

/// `rickshaw bench sockets-client`.
pub async fn client(args: ClientArgs) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let latencies = Arc::new(Latencies::default());
    let mut sessions: Vec<Session> = Vec::new();
    let mut out = std::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Command>(&line)? {
            Command::Open { tokens } => {
                let fresh = tokens
                    .into_iter()
                    .map(|token| Session {
                        token,
                        reader: None,
                    })
                    .collect();
                let (opened, open, failed) = open_all(&args.url, fresh, &latencies, false).await;
                sessions.extend(opened);
                Answer {
                    open,
                    failed,
                    ..Answer::default()
                }
            }
            Command::Report => Answer {
                latency_ms: latencies
                    .buckets
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
                ..Answer::default()
            },
            Command::Reconnect { count } => {
                let count = count.min(sessions.len());
                let mut dropped: Vec<Session> = sessions.drain(..count).collect();
                for session in &mut dropped {
                    if let Some(reader) = session.reader.take() {
                        reader.abort();
                    }
                }
                let (reopened, open, failed) = open_all(&args.url, dropped, &latencies, true).await;
                sessions.extend(reopened);
                Answer {
                    open,
                    failed,
                    ..Answer::default()
                }
            }
            Command::Exit => break,
        };
        serde_json::to_writer(&mut out, &answer)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    for session in sessions {
        if let Some(reader) = session.reader {
            reader.abort();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_time_is_read_not_the_trips() {
        let frame = r#"{"id":"7","type":"trip.offered","trip":{"requested_at":1,"updated_at":2},"at":1700000000123}"#;
        assert_eq!(top_level_at(frame), Some(1_700_000_000_123));
        assert_eq!(top_level_at(r#"{"trip":{"requested_at":1}}"#), None);
    }

    #[test]
    fn percentiles_come_from_the_merged_histogram() {
        let histogram = BTreeMap::from([(1, 98), (50, 1), (300, 1)]);
        assert_eq!(percentile(&histogram, 50.0), Some(1));
        assert_eq!(percentile(&histogram, 99.0), Some(50));
        assert_eq!(percentile(&histogram, 100.0), Some(300));
        assert_eq!(percentile(&BTreeMap::new(), 99.0), None);
    }
}
