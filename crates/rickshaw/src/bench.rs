//! `rickshaw bench …`: the project's own benchmarks (the `bench` crate), with progress on stderr
//! and results on stdout as a table or JSON lines.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bench::{CityKind, IngestBench, MatchingBench};
use clap::{Args, Subcommand, ValueEnum};
use domain::matching::assign::Effort;
use domain::matching::{Limits, Strategy};

pub mod dispatch;
pub mod edge;
pub mod instance;
pub mod sockets;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time a matching tick on synthetic cities and compare nearest, optimal and exact.
    Matching(MatchingArgs),
    /// Driver position updates per second into the matcher's index while ticks run.
    Ingest(IngestArgs),
    /// Live `/v1/ws` sessions on one instance: memory per session, pushes a second and their
    /// delivery time, a reconnect storm.
    Sockets(sockets::SocketsArgs),
    /// The course mix (`POST /rider` and `/driver`) at the edge: the saturating rate, then the
    /// latency at a fraction of it while the matcher ticks.
    Edge(edge::EdgeArgs),
    /// Product dispatch under a steady stream of bookings: bookings, offers and completed trips
    /// a second, book → offer latency, on SQLite or PostgreSQL with several trip instances.
    Dispatch(dispatch::DispatchArgs),
    /// One client process of `bench sockets` (started by it).
    #[command(hide = true)]
    SocketsClient(sockets::ClientArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct MatchingArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Rider counts, comma-separated (e.g. 1k,10k,100k).
    #[arg(long, value_delimiter = ',', value_parser = parse_count, default_value = "1k,10k,100k")]
    sizes: Vec<usize>,
    /// Drivers per rider, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,1.5")]
    supply: Vec<f64>,
    /// Synthetic cities: uniform, hotspots.
    #[arg(long, value_delimiter = ',', default_value = "uniform,hotspots")]
    cities: Vec<CityKind>,
    /// Ticks timed per strategy and case (the median is reported).
    #[arg(long, default_value_t = 5)]
    ticks: usize,
    /// Riders per square kilometre: the city grows with the riders (1k: 3.2 km square).
    #[arg(long, default_value_t = 100.0)]
    density: f64,
    /// Maximum pickup distance, metres.
    #[arg(long, default_value_t = 3_000.0)]
    max_pickup: f64,
    /// Candidate drivers per rider (and riders per driver) for `optimal`.
    #[arg(long, default_value_t = Limits::default().candidates)]
    candidates: usize,
    /// Ticks of at most this many riders get 64 candidates instead, and a second pass without
    /// a budget (0: none).
    #[arg(long, default_value_t = Limits::default().dense_up_to)]
    dense_up_to: usize,
    /// Rounds of pricing after `optimal`'s first solve (each closes part of the gap to exact).
    #[arg(long, default_value_t = 0)]
    pricing_rounds: usize,
    /// Run the exact solver where riders and drivers are both at most this many.
    #[arg(long, default_value_t = 5_000)]
    exact_up_to: usize,
    /// Run both of `optimal`'s passes exactly (shortest paths instead of the auction; the second
    /// with no slack and no budget): the most riders, then the least pickup on the candidate
    /// graph — slow in crowded cities; shows what the default costs.
    #[arg(long)]
    exact_passes: bool,
    /// The auction's last ε, as a share of the riders' mean distance to their nearest candidate
    /// (0: solve the first pass exactly instead).
    #[arg(long, default_value_t = Effort::DEFAULT.auction_epsilon_share.unwrap_or(0.0))]
    epsilon_share: f64,
    /// How much longer than the shortest a path of the second pass may be, as a share of the
    /// first pass's mean pickup (0: the shortest).
    #[arg(long, default_value_t = Effort::DEFAULT.slack_share)]
    slack_share: f64,
    /// Columns the second pass's searches may settle per rider and driver before the riders
    /// still waiting are served by the shortest paths in edges (0: no limit; ticks within
    /// `--dense-up-to` have none).
    #[arg(long, default_value_t = Effort::DEFAULT.budget_per_point.unwrap_or(0))]
    budget_per_point: usize,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

#[derive(Args)]
pub struct IngestArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Drivers streaming positions.
    #[arg(long, value_parser = parse_count, default_value = "15k")]
    drivers: usize,
    /// Riders added before every tick.
    #[arg(long, value_parser = parse_count, default_value = "10k")]
    riders_per_tick: usize,
    /// Updates per second offered; 0 = as fast as they are taken.
    #[arg(long, value_parser = parse_count, default_value = "100k")]
    rate: usize,
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    tick: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Updates per batch applied under the pool's lock.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Matching strategy of the ticks.
    #[arg(long, default_value = "optimal")]
    strategy: Strategy,
    #[arg(long, default_value = "uniform")]
    city: CityKind,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// `10k` → 10 000, `1.5k` → 1 500, `2m` → 2 000 000, `300` → 300.
pub(crate) fn parse_count(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let (digits, scale) = match raw.chars().last() {
        Some('k' | 'K') => (&raw[..raw.len() - 1], 1e3),
        Some('m' | 'M') => (&raw[..raw.len() - 1], 1e6),
        _ => (raw, 1.0),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a count like 500, 10k or 1.5m"))?;
    if !(value.is_finite() && value >= 0.0 && value * scale <= 1e9) {
        return Err(format!("{raw:?} is out of range (0 to 1e9)"));
    }
    Ok((value * scale).round() as usize)
}

fn check_matching(args: &MatchingArgs) -> Result<(), String> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        return Err("--sizes takes rider counts of at least 1, e.g. 1k,10k".into());
    }
    if args.supply.is_empty() || !args.supply.iter().all(|r| positive(*r) && *r <= 100.0) {
        return Err(
            "--supply takes drivers-per-rider ratios above 0 and at most 100, e.g. 1,1.5".into(),
        );
    }
    if args.cities.is_empty() {
        return Err("--cities needs at least one of uniform, hotspots".into());
    }
    if !positive(args.density) || !positive(args.max_pickup) {
        return Err("--density and --max-pickup must be positive numbers".into());
    }
    if args.candidates == 0 || args.candidates > 64 || args.ticks == 0 {
        return Err("--candidates must be 1 to 64 and --ticks at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.epsilon_share) {
        return Err("--epsilon-share must be from 0 (exact) to 1".into());
    }
    if !(0.0..=1.0).contains(&args.slack_share) {
        return Err("--slack-share must be from 0 (the shortest paths) to 1".into());
    }
    Ok(())
}

fn check_ingest(args: &IngestArgs) -> Result<(), String> {
    if args.drivers == 0 {
        return Err("--drivers must be at least 1".into());
    }
    if args.tick.is_zero() || args.duration.is_zero() {
        return Err("--tick and --duration must be longer than zero".into());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    Ok(())
}

impl BenchCommand {
    /// Refuses arguments that would make a run meaningless or impossible, saying which.
    fn check(&self) -> Result<(), String> {
        match self {
            Self::Matching(args) => check_matching(args),
            Self::Ingest(args) => check_ingest(args),
            Self::Sockets(args) => args.check(),
            Self::Edge(args) => args.check(),
            Self::Dispatch(args) => args.check(),
            Self::SocketsClient(_) => Ok(()),
        }
    }
}

/// Runs an async bench on the CLI's runtime; a failure is printed and becomes the exit code.
fn run_async<R>(
    bench: impl std::future::Future<Output = anyhow::Result<R>>,
) -> Result<R, ExitCode> {
    tokio::runtime::Handle::current()
        .block_on(bench)
        .map_err(|e| {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        })
}

/// One report on stdout, as a JSON line or as the bench's table.
fn print_report<R: serde::Serialize>(
    out: &mut impl Write,
    format: Format,
    report: &R,
    table: fn(&R) -> String,
) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(report).unwrap_or_default()),
        Format::Table => writeln!(out, "{}", table(report)),
    }
}

pub fn run(command: BenchCommand) -> ExitCode {
    if let Err(problem) = command.check() {
        eprintln!("error: {problem}");
        return ExitCode::from(2);
    }
    let progress = |line: &str| eprintln!("{line}");
    let mut out = std::io::stdout().lock();
    let written = match command {
        BenchCommand::Matching(args) => {
            let bench = MatchingBench {
                cities: args.cities,
                sizes: args.sizes,
                supply: args.supply,
                ticks: args.ticks,
                density: args.density,
                limits: Limits {
                    candidates: args.candidates,
                    max_pickup: args.max_pickup,
                    pricing_rounds: args.pricing_rounds,
                    dense_up_to: args.dense_up_to,
                },
                exact_up_to: args.exact_up_to,
                effort: if args.exact_passes {
                    Effort::EXACT
                } else {
                    Effort {
                        auction_epsilon_share: (args.epsilon_share > 0.0)
                            .then_some(args.epsilon_share),
                        slack_share: args.slack_share,
                        budget_per_point: (args.budget_per_point > 0)
                            .then_some(args.budget_per_point),
                    }
                },
                seed: args.seed,
            };
            if matches!(args.format, Format::Table) {
                let _ = writeln!(out, "{}", bench::matching::table_header());
            }
            let mut result = Ok(());
            bench.run(progress, |rows| {
                for row in rows {
                    let line = match args.format {
                        Format::Table => bench::matching::table_row(row),
                        Format::Json => serde_json::to_string(row).unwrap_or_default(),
                    };
                    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                        result = Err(e);
                    }
                }
            });
            result
        }
        BenchCommand::Sockets(args) => {
            let format = args.format;
            match run_async(sockets::run(args, progress)) {
                Ok(report) => print_report(&mut out, format, &report, sockets::table),
                Err(code) => return code,
            }
        }
        BenchCommand::Edge(args) => {
            let format = args.format;
            match run_async(edge::run(args, progress)) {
                Ok(report) => print_report(&mut out, format, &report, edge::table),
                Err(code) => return code,
            }
        }
        BenchCommand::Dispatch(args) => {
            let format = args.format;
            match run_async(dispatch::run(args, progress)) {
                Ok(report) => print_report(&mut out, format, &report, dispatch::table),
                Err(code) => return code,
            }
        }
        BenchCommand::SocketsClient(args) => {
            return match tokio::runtime::Handle::current().block_on(sockets::client(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("socket client: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        BenchCommand::Ingest(args) => {
            let bench = IngestBench {
                city: args.city,
                drivers: args.drivers,
                riders_per_tick: args.riders_per_tick,
                tick: args.tick,
                duration: args.duration,
                rate: args.rate as u64,
                batch: args.batch,
                strategy: args.strategy,
                ..IngestBench::default()
            };
            let report = bench.run(progress);
            match args.format {
                Format::Json => writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                ),
                Format::Table => writeln!(
                    out,
                    "{} updates in {:.1} s: {:.0} updates/s (offered {}/s); visible to the matcher p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} ticks of {} riders: p50 {:.1} ms, max {:.1} ms, {:.0} pairs a tick",
                    report.updates,
                    report.seconds,
                    report.updates_per_sec,
                    if report.offered_rate == 0 {
                        "max".to_owned()
                    } else {
                        report.offered_rate.to_string()
                    },
                    report.visible_p50_ms,
                    report.visible_p99_ms,
                    report.visible_max_ms,
                    report.ticks,
                    report.riders_per_tick,
                    report.tick_p50_ms,
                    report.tick_max_ms,
                    report.matched_per_tick
                ),
            }
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the results: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn nonsense_arguments_are_refused_before_anything_runs() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            bench: super::BenchCommand,
        }
        let check = |line: &str| {
            Cli::try_parse_from(line.split_whitespace())
                .expect("parses")
                .bench
                .check()
        };
        assert!(check("b matching").is_ok());
        assert!(check("b matching --sizes 0").is_err());
        assert!(check("b matching --supply 0").is_err());
        assert!(check("b matching --density=-1").is_err());
        assert!(check("b matching --candidates 0").is_err());
        assert!(check("b ingest").is_ok());
        assert!(check("b ingest --drivers 0").is_err());
        assert!(check("b ingest --tick 0s").is_err());
        assert!(check("b sockets").is_ok());
        assert!(check("b sockets --clients 0").is_err());
        assert!(check("b sockets --sessions 1k --reconnect 2k").is_err());
        assert!(check("b sockets --fanout 0").is_err());
        assert!(check("b sockets --duration 0s").is_err());
        assert!(check("b dispatch").is_ok());
        assert!(check("b dispatch --rate 0").is_err());
        assert!(check("b dispatch --instances 2").is_err());
        assert!(check("b dispatch --instances 2 --postgres postgres://h").is_ok());
        assert!(check("b dispatch --dispatch-every 5ms").is_err());
    }

    #[test]
    fn counts_take_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_count("300"), Ok(300));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1.5k"), Ok(1_500));
        assert_eq!(parse_count("2M"), Ok(2_000_000));
        assert!(parse_count("ten").is_err());
        assert!(parse_count("-1k").is_err());
        assert!(parse_count("5e12").is_err());
    }
}
