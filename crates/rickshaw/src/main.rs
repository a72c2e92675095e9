//! `rickshaw`: the one binary. `rickshaw up` runs the whole system in this process;
//! `rickshaw bot` drives a running system the way seed 002's client does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use platform::{Config, telemetry};
use rickshaw::Embedded;
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
    /// Drive a running Rickshaw like seed 002's client: riders and drivers every second.
    Bot(BotArgs),
}

#[derive(Args)]
struct UpArgs {
    /// Address of the public HTTP/WebSocket edge.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where the SQLite files live (created if missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML config file (see docs/ARCHITECTURE.md for the keys).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Matching tick in milliseconds (default 1000).
    #[arg(long)]
    tick_ms: Option<u64>,
    /// How long unmatched riders and drivers are held, in milliseconds (default 5000).
    #[arg(long)]
    hold_ms: Option<u64>,
    /// Matching strategy: optimal (default) or nearest.
    #[arg(long)]
    strategy: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    json_logs: bool,
    /// Also run the bot against this system until Ctrl-C.
    #[arg(long)]
    bot: bool,
    #[command(flatten)]
    load: LoadArgs,
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
            Command::Bot(args) => bot(args).await,
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

fn overrides(args: &UpArgs) -> Value {
    let mut root = Map::new();
    if let Some(listen) = args.listen {
        root.insert("listen".into(), json!(listen));
    }
    if let Some(dir) = &args.data_dir {
        root.insert("data_dir".into(), json!(dir));
    }
    let mut matching = Map::new();
    if let Some(v) = args.tick_ms {
        matching.insert("tick_ms".into(), json!(v));
    }
    if let Some(v) = args.hold_ms {
        matching.insert("hold_ms".into(), json!(v));
    }
    if let Some(v) = &args.strategy {
        matching.insert("strategy".into(), json!(v));
    }
    if !matching.is_empty() {
        root.insert("matching".into(), Value::Object(matching));
    }
    if args.json_logs {
        root.insert("log".into(), json!({"format": "json"}));
    }
    Value::Object(root)
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), overrides(&args))?;
    telemetry::init_tracing(&config.log);
    let system = Embedded::build(config.clone()).await?;
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
