//! `ipn bench SCENARIO`: the load generator behind the benchmark suite.
//!
//! Scenarios, each measuring one performance bar (the README's table lists
//! each bar beside the figures measured):
//! - `delivery` (bench/delivery.rs): the one-hop baseline, then events
//!   ingested through a gateway's API and delivered to a local receiver.
//! - `retries` (bench/retries.rs): N retries pending in an `ipn gateway`
//!   process whose endpoint is down: its memory, then a restart: how soon it
//!   listens and delivers the first, how fast it delivers them all.
//! - `isolation` (bench/isolation.rs): healthy deliveries per second to 100
//!   endpoints, alone and beside one dead endpoint.
//! - `merchant` (bench/merchant.rs): signed IPNs posted to a merchant
//!   server, verified, stored and applied to the shop's orders.
//!
//! Their parts:
//! - `api`: set-up calls, `/metrics`, and the ingest requests.
//! - `in_process`, `child`: a gateway in this process, or `ipn gateway` as a
//!   child process.
//! - `load`: keep-alive HTTP/1.1 connections, one request at a time each, fed
//!   as fast as they are answered, for a while, or at a fixed rate.
//! - `receiver`: the local receiver, which notes when each `webhook-id`
//!   arrives; `dead`: endpoints that hang or refuse.
//! - `meter`: the progress bar (stderr, only on a terminal).
//! - `stats`: percentiles, and rounding for the figures.
//!
//! Standard output carries human-readable lines and, last, one JSON object of
//! figures for scripts, with `"scenario"` naming the scenario; its names are
//! public: new ones are only added, none renamed or removed.
//! Figures are printed, never judged: exit 0 when the run completed, 1 when
//! events were lost, 2 when the run itself failed (set-up, or requests the
//! gateway refused).

mod api;
mod child;
mod dead;
mod delivery;
mod in_process;
mod isolation;
mod load;
mod merchant;
mod meter;
mod receiver;
mod retries;
mod stats;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use ipn_gateway::storage::sqlite::Durability;
use serde_json::Value;

use crate::Fatal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Events ingested through POST /v1/events, committed, delivered to a local receiver
    Delivery,
    /// Retries pending in an `ipn gateway` process: its memory, and its restart
    Retries,
    /// Healthy endpoints' throughput, alone and beside one dead endpoint
    Isolation,
    /// Signed IPNs verified, stored and applied by a merchant server
    Merchant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// fsync at every commit (the gateway's default)
    Full,
    /// fsync at checkpoints only
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeadKind {
    /// Accepts connections and never answers: attempts wait for the timeout
    Hang,
    /// Refuses connections: attempts fail at once
    Refused,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure
    #[arg(value_enum)]
    scenario: Scenario,
    /// A short run: delivery 10,000 events, 2 s of latency run, 2 s of
    /// baseline; retries 20,000 pending; isolation 500 events; merchant 5,000
    /// IPNs
    #[arg(long)]
    quick: bool,
    /// Events to ingest [default: delivery 100000, retries 1000000, isolation
    /// 10000 (each to every endpoint), merchant 100000 IPNs; with --quick
    /// 10000, 20000, 500, 5000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    events: Option<u64>,
    /// Connections the load generator keeps open
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// delivery: events per second in the latency run
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
    /// delivery: seconds of the latency run [default: 5; 2 with --quick]
    #[arg(long, value_parser = parse_seconds)]
    latency_seconds: Option<Duration>,
    /// delivery: seconds of the one-hop baseline [default: 3; 2 with --quick]
    #[arg(long, value_parser = parse_seconds)]
    baseline_seconds: Option<Duration>,
    /// Seconds to wait for deliveries once the last event is accepted (retries:
    /// once the gateway restarted) [default: 120; retries 600]
    #[arg(long, value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// delivery, isolation: the gateway's SQLite durability, full (fsync every
    /// commit) or normal [default: full]
    #[arg(long, value_enum)]
    sync: Option<Sync>,
    /// delivery: run the gateway on this PostgreSQL server
    /// (postgres://user@host:port/db, a user that may create databases): a
    /// fresh database is made on it for the run and dropped after, and
    /// commits stay synchronous [default: a fresh SQLite file]
    #[arg(long, env = "IPN_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// retries: seconds from a failed first attempt to its retry; long enough
    /// to ingest every event and stop the gateway before the first falls due
    /// [default: 200 µs per event in a release build, 1 ms in a debug build,
    /// at least 3]
    #[arg(long, value_parser = parse_seconds)]
    retry_delay: Option<Duration>,
    /// isolation: healthy endpoints
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    endpoints: u64,
    /// isolation: how the dead endpoint fails
    #[arg(long, value_enum, default_value = "hang")]
    dead: DeadKind,
}

/// Positive seconds, fractions allowed: `2`, `0.5`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{text:?}: give 0 < seconds <= 86400"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let started = Instant::now();
    let (figures, errors, lost) = match args.scenario {
        Scenario::Delivery => {
            let figures = delivery::run(&delivery_settings(&args)?).await?;
            (
                figures.json(started.elapsed()),
                figures.errors,
                figures.lost,
            )
        }
        Scenario::Retries => {
            let figures = retries::run(&retries_settings(&args)?).await?;
            (
                figures.json(started.elapsed()),
                figures.errors,
                figures.lost,
            )
        }
        Scenario::Merchant => {
            let figures = merchant::run(&merchant::Settings {
                messages: args
                    .events
                    .unwrap_or(if args.quick { 5_000 } else { 100_000 }),
                concurrency: usize::try_from(args.concurrency)?,
                timeout: args.timeout.unwrap_or(Duration::from_secs(120)),
                show_progress: show_progress(),
            })
            .await?;
            (
                figures.json(started.elapsed()),
                figures.errors,
                figures.lost,
            )
        }
        Scenario::Isolation => {
            let figures = isolation::run(&isolation_settings(&args)?).await?;
            (
                figures.json(started.elapsed()),
                figures.errors,
                figures.lost,
            )
        }
    };
    Ok(finish(&figures, errors, lost))
}

/// Prints the figures as the last line; the exit code says whether the run
/// is valid and whether events were lost.
fn finish(figures: &Value, errors: u64, lost: u64) -> ExitCode {
    println!("{figures}");
    if errors > 0 {
        ExitCode::from(2)
    } else if lost > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

fn durability(args: &Args) -> Durability {
    match args.sync.unwrap_or(Sync::Full) {
        Sync::Full => Durability::Full,
        Sync::Normal => Durability::Normal,
    }
}

fn delivery_settings(args: &Args) -> anyhow::Result<delivery::Settings> {
    let settings = delivery::Settings {
        events: args
            .events
            .unwrap_or(if args.quick { 10_000 } else { 100_000 }),
        concurrency: usize::try_from(args.concurrency)?,
        rate: args.rate,
        latency_run: args
            .latency_seconds
            .unwrap_or(Duration::from_secs(if args.quick { 2 } else { 5 })),
        baseline: args
            .baseline_seconds
            .unwrap_or(Duration::from_secs(if args.quick { 2 } else { 3 })),
        timeout: args.timeout.unwrap_or(Duration::from_secs(120)),
        durability: durability(args),
        postgres: args.database_url.clone(),
        show_progress: show_progress(),
    };
    if let Some(url) = &settings.postgres
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        bail!("--database-url {url:?}: give a postgres://user@host:port/db URL");
    }
    if settings.postgres.is_some() && args.sync.is_some() {
        bail!("--sync is SQLite's; PostgreSQL commits stay synchronous");
    }
    if settings.rate as f64 * settings.latency_run.as_secs_f64() < 1.0 {
        bail!("--rate × --latency-seconds must make at least one event");
    }
    Ok(settings)
}

fn retries_settings(args: &Args) -> anyhow::Result<retries::Settings> {
    if args.sync.is_some() {
        // A child `ipn gateway` runs at its default, and it has no flag for it.
        bail!("--sync does not apply to retries: `ipn gateway` always syncs every commit");
    }
    let events = args
        .events
        .unwrap_or(if args.quick { 20_000 } else { 1_000_000 });
    Ok(retries::Settings {
        events,
        concurrency: usize::try_from(args.concurrency)?,
        retry_delay: args.retry_delay.unwrap_or(default_retry_delay(events)),
        timeout: args.timeout.unwrap_or(Duration::from_secs(600)),
        show_progress: show_progress(),
    })
}

/// Long enough for the gateway to take every event and fail it well within
/// the delay, on a loaded machine: 200 µs an event is a quarter of the
/// delivery bar's 20,000/s; a debug build runs about five times slower.
fn default_retry_delay(events: u64) -> Duration {
    let per_event_us: u64 = if cfg!(debug_assertions) { 1_000 } else { 200 };
    Duration::from_micros(events.saturating_mul(per_event_us)).max(Duration::from_secs(3))
}

fn isolation_settings(args: &Args) -> anyhow::Result<isolation::Settings> {
    Ok(isolation::Settings {
        events: args.events.unwrap_or(if args.quick { 500 } else { 10_000 }),
        healthy: usize::try_from(args.endpoints)?,
        dead: match args.dead {
            DeadKind::Hang => dead::Dead::Hang,
            DeadKind::Refused => dead::Dead::Refused,
        },
        concurrency: usize::try_from(args.concurrency)?,
        timeout: args.timeout.unwrap_or(Duration::from_secs(120)),
        durability: durability(args),
        show_progress: show_progress(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_written() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["", "0", "-1", "x", "1e9", "NaN", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_retry_delay_grows_with_the_events_from_a_floor() {
        assert_eq!(default_retry_delay(1), Duration::from_secs(3));
        let per_event = if cfg!(debug_assertions) { 1_000 } else { 200 };
        assert_eq!(
            default_retry_delay(1_000_000),
            Duration::from_micros(1_000_000 * per_event)
        );
    }
}
