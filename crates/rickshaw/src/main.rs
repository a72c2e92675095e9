//! `rickshaw`: the one binary. `rickshaw up` runs the whole system in this process;
//! `rickshaw serve` runs some services against NATS and PostgreSQL; `rickshaw migrate` prepares the
//! database; `rickshaw bot` drives a running system the way seed 002's client does;
//! `rickshaw bench` runs the project's own benchmarks.

mod bench;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use platform::{Config, telemetry};
use rickshaw::{Services, System};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "rickshaw",
    version,
    about = "Rickshaw: a ride-hailing backend",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in this process (SQLite under --data-dir, in-process bus).
    Up(UpArgs),
    /// Run the named services in this process against NATS JetStream and PostgreSQL.
    Serve(ServeArgs),
    /// Apply every service's pending PostgreSQL migrations, then exit.
    Migrate(ConfigArgs),
    /// Drive a running Rickshaw like seed 002's client: riders and drivers every second.
    Bot(BotArgs),
    /// Benchmarks: matching at city scale, position ingest (docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Flags every server command shares; each overrides the config file and environment.
#[derive(Args)]
struct ConfigArgs {
    /// A TOML config file (keys: docs/ARCHITECTURE.md, Configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of this process's HTTP listener.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// NATS server URL(s), comma-separated (distributed mode).
    #[arg(long)]
    nats_url: Option<String>,
    /// Replicas of each JetStream stream (3 on a 3-node cluster).
    #[arg(long)]
    nats_replicas: Option<usize>,
    /// PostgreSQL URL (distributed mode).
    #[arg(long)]
    database_url: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    json_logs: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Which services to run here: a comma-separated list of gateway, rider, supply, matching,
    /// rating, communication — or `all`.
    #[arg(long)]
    services: Services,
    #[command(flatten)]
    common: ConfigArgs,
    #[command(flatten)]
    matching: MatchingArgs,
}

#[derive(Args)]
struct UpArgs {
    /// Where the SQLite files live (created if missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also run the bot against this system until Ctrl-C.
    #[arg(long)]
    bot: bool,
    #[command(flatten)]
    common: ConfigArgs,
    #[command(flatten)]
    matching: MatchingArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct MatchingArgs {
    /// Matching tick in milliseconds (default 1000).
    #[arg(long)]
    tick_ms: Option<u64>,
    /// How long unmatched riders and drivers are held, in milliseconds (default 5000).
    #[arg(long)]
    hold_ms: Option<u64>,
    /// Matching strategy: optimal (default), nearest, or exact (dense; small batches only).
    #[arg(long)]
    strategy: Option<String>,
}

#[derive(Args)]
struct LoadArgs {
    /// Riders the bot posts per second.
    #[arg(long, default_value_t = 5)]
    riders_per_sec: u32,
    /// Drivers the bot posts per second.
    #[arg(long, default_value_t = 5)]
    drivers_per_sec: u32,
}

#[derive(Args)]
struct BotArgs {
    /// Base URL of a running Rickshaw.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// How long to send for, e.g. 30s, 2m; 0 runs until Ctrl-C.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Do not rate drivers.
    #[arg(long)]
    no_rate: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 if fewer riders than this percentage were matched.
    #[arg(long)]
    min_matched_pct: Option<f64>,
    #[command(flatten)]
    load: LoadArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Serve(args) => serve(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Bot(args) => bot(args).await,
            // CPU-bound and single-threaded by design: off the async workers.
            Command::Bench(command) => {
                Ok(tokio::task::spawn_blocking(move || bench::run(command)).await?)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The flags given, as a partial config tree (absent flags leave the file/env values alone).
fn overrides(
    common: &ConfigArgs,
    matching: Option<&MatchingArgs>,
    data_dir: Option<&PathBuf>,
) -> Value {
    let mut root = Map::new();
    if let Some(listen) = common.listen {
        root.insert("listen".into(), json!(listen));
    }
    if let Some(dir) = data_dir {
        root.insert("data_dir".into(), json!(dir));
    }
    let mut nats = Map::new();
    if let Some(url) = &common.nats_url {
        nats.insert("url".into(), json!(url));
    }
    if let Some(replicas) = common.nats_replicas {
        nats.insert("replicas".into(), json!(replicas));
    }
    if !nats.is_empty() {
        root.insert("nats".into(), Value::Object(nats));
    }
    if let Some(url) = &common.database_url {
        root.insert("database".into(), json!({"url": url}));
    }
    let mut section = Map::new();
    if let Some(m) = matching {
        if let Some(v) = m.tick_ms {
            section.insert("tick_ms".into(), json!(v));
        }
        if let Some(v) = m.hold_ms {
            section.insert("hold_ms".into(), json!(v));
        }
        if let Some(v) = &m.strategy {
            section.insert("strategy".into(), json!(v));
        }
    }
    if !section.is_empty() {
        root.insert("matching".into(), Value::Object(section));
    }
    if common.json_logs {
        root.insert("log".into(), json!({"format": "json"}));
    }
    Value::Object(root)
}

fn load_config(
    common: &ConfigArgs,
    matching: Option<&MatchingArgs>,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<Config> {
    let config = Config::load(
        common.config.as_deref(),
        overrides(common, matching, data_dir),
    )?;
    telemetry::init_tracing(&config.log);
    Ok(config)
}

/// Runs `system` until SIGINT/SIGTERM.
async fn run_until_signal(system: System) -> anyhow::Result<()> {
    system.run(platform::shutdown::signal()).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common, Some(&args.matching), None)?;
    let system = System::distributed(config.clone(), &args.services).await?;
    let addr = system.local_addr();
    tracing::info!(services = %args.services, %addr, nats = %config.nats.url, "serving");
    eprintln!("Rickshaw {} serving at http://{addr}", args.services);
    run_until_signal(system).await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args, None, None)?;
    rickshaw::system::migrate(&config).await?;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common, Some(&args.matching), args.data_dir.as_ref())?;
    let system = System::embedded(config.clone()).await?;
    let addr = system.local_addr();
    let url = format!("http://{addr}");
    tracing::info!(%url, data_dir = %config.data_dir.display(), "Rickshaw is up");
    eprintln!(
        "Rickshaw is up at {url}  (data in {}; WebSocket {url}/communication; Ctrl-C stops)",
        config.data_dir.display()
    );

    let stop = CancellationToken::new();
    let bot = args.bot.then(|| {
        let bot_config = bot::BotConfig {
            target: url.clone(),
            riders_per_sec: args.load.riders_per_sec,
            drivers_per_sec: args.load.drivers_per_sec,
            duration: None,
            progress_every: Some(Duration::from_secs(1)),
            ..bot::BotConfig::default()
        };
        tokio::spawn(bot::run(bot_config, stop.clone()))
    });
    let signal_stop = stop.clone();
    let server = tokio::spawn(system.run(async move {
        platform::shutdown::signal().await;
        signal_stop.cancel();
    }));
    if let Some(bot) = bot {
        match bot.await {
            Ok(Ok(summary)) => eprintln!("{summary}"),
            Ok(Err(e)) => eprintln!("bot stopped: {e:#}"),
            Err(e) => eprintln!("bot crashed: {e}"),
        }
    }
    server.await??;
    Ok(ExitCode::SUCCESS)
}

async fn bot(args: BotArgs) -> anyhow::Result<ExitCode> {
    let config = bot::BotConfig {
        target: args.target,
        riders_per_sec: args.load.riders_per_sec,
        drivers_per_sec: args.load.drivers_per_sec,
        duration: (!args.duration.is_zero()).then_some(args.duration),
        rate: !args.no_rate,
        progress_every: (!args.json).then_some(Duration::from_secs(1)),
        ..bot::BotConfig::default()
    };
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        platform::shutdown::signal().await;
        on_signal.cancel();
    });
    let summary = bot::run(config, stop).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    let below = args
        .min_matched_pct
        .is_some_and(|min| summary.matched_pct < min);
    Ok(if summary.invariants_hold() && !below {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
