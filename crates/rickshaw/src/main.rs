//! `rickshaw`: the one binary. `rickshaw up` runs the whole system in this process;
//! `rickshaw serve` runs some services against NATS and PostgreSQL; `rickshaw migrate` prepares the
//! database; `rickshaw bot` drives a running system the way seed 002's client does (or, with
//! `--product`, runs whole trips through the product API); `rickshaw bench` runs the project's own
//! benchmarks.

mod bench;

/// mimalloc instead of glibc's malloc: under the edge bench's load a fifth of the server's CPU
/// was glibc's allocator (`_int_malloc`, `_int_free`, `malloc_consolidate`), as tasks allocate
/// on one worker thread and free on another (docs/BENCHMARKS.md, "A stuck matcher, then mimalloc").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Drive a running Rickshaw like seed 002's client: riders and drivers every second; with
    /// --product, whole trips through the product API (/v1) instead.
    Bot(BotArgs),
    /// Benchmarks: matching at city scale, position ingest (docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Operations accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the NATS servers' `authorization` block: a user per service, allowed to publish
    /// only what it owns and call only what it uses (passwords from the servers' environment).
    NatsUsers,
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise: the container image's health check
    /// (`rickshaw probe http://127.0.0.1:8080/readyz`), with no curl in the image.
    Probe {
        /// The URL to GET (http only).
        url: String,
        /// Give up after this long, e.g. 3s.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account (sign-up never grants the role). Its password is read from
    /// RICKSHAW_ADMIN_PASSWORD, never from the command line.
    Create(AdminCreateArgs),
}

#[derive(Args)]
struct AdminCreateArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    /// The embedded mode's data directory (where `rickshaw up` keeps identity.db); with
    /// --database-url, the distributed mode's PostgreSQL instead.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    common: ConfigArgs,
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
    /// rating, communication, identity, pricing, provider, payment, trip — or `all`.
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
    /// With --bot: the product bot (whole trips through /v1) instead of the course bot.
    #[arg(long, requires = "bot")]
    product: bool,
    #[command(flatten)]
    common: ConfigArgs,
    #[command(flatten)]
    matching: MatchingArgs,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    product_load: ProductArgs,
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

/// The product bot's flags (with --product).
#[derive(Args)]
struct ProductArgs {
    /// Riders: each books a trip, waits for its end, and books again.
    #[arg(long, default_value_t = 20, requires = "product")]
    riders: u32,
    /// Drivers: each accepts (or declines) offers and drives the trips.
    #[arg(long, default_value_t = 20, requires = "product")]
    drivers: u32,
    /// Chance that a driver declines an offer, 0 to 1.
    #[arg(long, default_value_t = 0.1, requires = "product")]
    decline_prob: f64,
    /// Packages of the drivers' vehicles, comma-separated (bike, auto, car, premium); drivers
    /// take them in turn and riders book one of them at random.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "car",
        requires = "product"
    )]
    packages: Vec<String>,
    /// Centre of the area, as LAT,LNG (Dhaka by default).
    #[arg(long, value_parser = parse_lat_lng, default_value = "23.7808,90.4067", requires = "product")]
    centre: (f64, f64),
    /// Every position is within this many metres of the centre.
    #[arg(long, default_value_t = 2_500.0, requires = "product")]
    radius_m: f64,
    /// Mean pause before each of a driver's steps (accept, arrive, start, complete).
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration, requires = "product")]
    step_delay: Duration,
    /// A rider cancels a trip that has not ended this long after booking it.
    #[arg(long, default_value = "150s", value_parser = humantime::parse_duration, requires = "product")]
    trip_timeout: Duration,
    /// After booking stops, how long riders wait for their last trips to end.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "product")]
    drain: Duration,
    /// Sign-ups and logins in flight at once while setting up.
    #[arg(long, default_value_t = 8, requires = "product")]
    setup_concurrency: usize,
    /// The server's payment.commission_bps: the bot checks each driver earned the fare less it.
    #[arg(long, default_value_t = 2_000, requires = "product")]
    commission_bps: u32,
}

fn parse_lat_lng(raw: &str) -> Result<(f64, f64), String> {
    let parse = |part: Option<&str>| part.and_then(|p| p.trim().parse::<f64>().ok());
    let mut parts = raw.split(',');
    match (parse(parts.next()), parse(parts.next()), parts.next()) {
        (Some(lat), Some(lng), None)
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng) =>
        {
            Ok((lat, lng))
        }
        _ => Err(format!(
            "expected LAT,LNG in degrees, e.g. 23.7808,90.4067; got {raw:?}"
        )),
    }
}

impl ProductArgs {
    fn config(
        &self,
        target: String,
        duration: Option<Duration>,
        progress: bool,
    ) -> bot::ProductBotConfig {
        bot::ProductBotConfig {
            target,
            riders: self.riders,
            drivers: self.drivers,
            duration,
            end_booking: CancellationToken::new(),
            centre: self.centre,
            radius_m: self.radius_m,
            decline_probability: self.decline_prob,
            packages: self.packages.clone(),
            step_delay: self.step_delay,
            trip_timeout: self.trip_timeout,
            drain: self.drain,
            progress_every: progress.then_some(Duration::from_secs(1)),
            setup_concurrency: self.setup_concurrency,
            commission_bps: self.commission_bps,
        }
    }
}

#[derive(Args)]
struct BotArgs {
    /// Base URL of a running Rickshaw.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// How long to send for (--product: to book, once every rider and driver is ready),
    /// e.g. 30s, 2m; 0 runs until Ctrl-C.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Do not rate drivers.
    #[arg(long)]
    no_rate: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 if fewer riders than this percentage were matched.
    #[arg(long, conflicts_with = "product")]
    min_matched_pct: Option<f64>,
    #[command(flatten)]
    load: LoadArgs,
    /// Drive whole trips through the product API (/v1): riders and drivers with accounts, offers
    /// accepted or declined, trips driven to completion; reports completed trips per second.
    /// Exits with status 1 if an invariant broke or no trip completed.
    #[arg(long)]
    product: bool,
    #[command(flatten)]
    product_load: ProductArgs,
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
            Command::Admin(AdminCommand::Create(args)) => admin_create(args).await,
            Command::Probe { url, timeout } => Ok(probe(&url, timeout).await),
            Command::NatsUsers => {
                print!("{}", rickshaw::nats_users::authorization(rickshaw::MODULES));
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // The spans still buffered go out before the process ends.
    telemetry::shutdown();
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

/// The config, and logs and traces set up with it (`service` names this process's spans).
fn load_config(
    common: &ConfigArgs,
    matching: Option<&MatchingArgs>,
    data_dir: Option<&PathBuf>,
    service: &str,
) -> anyhow::Result<Config> {
    let config = Config::load(
        common.config.as_deref(),
        overrides(common, matching, data_dir),
        &rickshaw::system::config_sections(),
    )?;
    telemetry::init(&config.log, &config.telemetry, service);
    Ok(config)
}

async fn admin_create(args: AdminCreateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common, None, args.data_dir.as_ref(), "rickshaw")?;
    let password = std::env::var("RICKSHAW_ADMIN_PASSWORD").map_err(|_| {
        anyhow::anyhow!(
            "set RICKSHAW_ADMIN_PASSWORD to the new admin's password (8 to 128 characters)"
        )
    })?;
    let account = rickshaw::admin::create(
        &config,
        args.common.database_url.as_deref(),
        &args.email,
        &args.name,
        password,
    )
    .await?;
    println!("admin {} created: {}", account.email.as_str(), account.id);
    Ok(ExitCode::SUCCESS)
}

/// Runs `system` until SIGINT/SIGTERM.
async fn run_until_signal(system: System) -> anyhow::Result<()> {
    system.run(platform::shutdown::signal()).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let service = args.services.to_string().replace(',', "+");
    let config = load_config(&args.common, Some(&args.matching), None, &service)?;
    let system = System::distributed(config.clone(), &args.services).await?;
    let addr = system.local_addr();
    tracing::info!(services = %args.services, %addr, nats = %config.nats.url, "serving");
    eprintln!("Rickshaw {} serving at http://{addr}", args.services);
    run_until_signal(system).await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args, None, None, "rickshaw")?;
    rickshaw::system::migrate(&config).await?;
    eprintln!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

async fn probe(url: &str, timeout: Duration) -> ExitCode {
    let answer = reqwest::Client::new()
        .get(url)
        .timeout(timeout)
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url}: {}", response.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(
        &args.common,
        Some(&args.matching),
        args.data_dir.as_ref(),
        "rickshaw",
    )?;
    let system = System::embedded(config.clone()).await?;
    let addr = system.local_addr();
    let url = format!("http://{addr}");
    tracing::info!(%url, data_dir = %config.data_dir.display(), "Rickshaw is up");
    eprintln!(
        "Rickshaw is up at {url}  (data in {}; Ctrl-C stops)\n  ride      {url}/app/rider\n  drive     {url}/app/driver\n  operate   {url}/app/ops   (admins: rickshaw admin create)\n  API docs  {url}/docs\n  sockets   {url}/v1/ws, {url}/communication",
        config.data_dir.display()
    );

    let stop = CancellationToken::new();
    let bot = args.bot.then(|| {
        if args.product {
            let config = args.product_load.config(url.clone(), None, true);
            let stop = stop.clone();
            return tokio::spawn(async move {
                bot::run_product(config, stop)
                    .await
                    .map(|summary| summary.to_string())
            });
        }
        let bot_config = bot::BotConfig {
            target: url.clone(),
            riders_per_sec: args.load.riders_per_sec,
            drivers_per_sec: args.load.drivers_per_sec,
            duration: None,
            progress_every: Some(Duration::from_secs(1)),
            ..bot::BotConfig::default()
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            bot::run(bot_config, stop)
                .await
                .map(|summary| summary.to_string())
        })
    });
    let signal_stop = stop.clone();
    // The product bot cancels its riders' trips and takes its drivers offline when stopped: the
    // server waits for that (a little) before it shuts down.
    let bot_done = CancellationToken::new();
    let wait_for_bot = (args.bot && args.product).then(|| bot_done.clone());
    let server = tokio::spawn(system.run(async move {
        platform::shutdown::signal().await;
        signal_stop.cancel();
        if let Some(bot_done) = wait_for_bot {
            let _ = tokio::time::timeout(Duration::from_secs(10), bot_done.cancelled()).await;
        }
    }));
    if let Some(bot) = bot {
        match bot.await {
            Ok(Ok(summary)) => eprintln!("{summary}"),
            Ok(Err(e)) => eprintln!("bot stopped: {e:#}"),
            Err(e) => eprintln!("bot crashed: {e}"),
        }
    }
    bot_done.cancel();
    server.await??;
    Ok(ExitCode::SUCCESS)
}

async fn bot(args: BotArgs) -> anyhow::Result<ExitCode> {
    if args.product {
        return product_bot(args).await;
    }
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

async fn product_bot(args: BotArgs) -> anyhow::Result<ExitCode> {
    let config = args.product_load.config(
        args.target,
        (!args.duration.is_zero()).then_some(args.duration),
        !args.json,
    );
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        platform::shutdown::signal().await;
        on_signal.cancel();
    });
    let summary = bot::run_product(config, stop).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(
        if summary.invariants_hold() && summary.counts.trips_completed > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
