//! `ipn bench SCENARIO`: the load generator behind the benchmark suite.
//!
//! - `delivery` (bench/delivery.rs): the one-hop baseline, then events
//!   ingested through a gateway's API and delivered to a local receiver.
//! - `load`: keep-alive HTTP/1.1 connections, one request at a time each, fed
//!   as fast as they are answered, for a while, or at a fixed rate.
//! - `receiver`: the local receiver, which notes when each `webhook-id` arrives.
//! - `meter`: the progress bar (stderr, only on a terminal).
//! - `stats`: percentiles.
//!
//! Standard output carries human-readable lines and, last, one JSON object of
//! figures for scripts (DESIGN §9). Figures are printed, never judged: exit 0
//! when the run completed, 1 when events were lost, 2 when the run itself
//! failed (set-up, or requests the gateway refused).

mod delivery;
mod load;
mod meter;
mod receiver;
mod stats;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use ipn_gateway::storage::sqlite::Durability;

use crate::Fatal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Events ingested through POST /v1/events, committed, delivered to a local receiver
    Delivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// fsync at every commit (the gateway's default)
    Full,
    /// fsync at checkpoints only
    Normal,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure
    #[arg(value_enum)]
    scenario: Scenario,
    /// A short run: 10,000 events, 2 s of latency run, 2 s of baseline
    #[arg(long)]
    quick: bool,
    /// Events to ingest in the throughput run [default: 100000; 10000 with --quick]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    events: Option<u64>,
    /// Connections the load generator keeps open
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Events per second in the latency run
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
    /// Seconds of the latency run [default: 5; 2 with --quick]
    #[arg(long, value_parser = parse_seconds)]
    latency_seconds: Option<Duration>,
    /// Seconds of the one-hop baseline [default: 3; 2 with --quick]
    #[arg(long, value_parser = parse_seconds)]
    baseline_seconds: Option<Duration>,
    /// Seconds to wait for deliveries once the last event is accepted
    #[arg(long, default_value = "120", value_parser = parse_seconds)]
    timeout: Duration,
    /// The gateway's SQLite durability: full (fsync every commit) or normal
    #[arg(long, value_enum, default_value = "full")]
    sync: Sync,
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
        timeout: args.timeout,
        durability: match args.sync {
            Sync::Full => Durability::Full,
            Sync::Normal => Durability::Normal,
        },
        show_progress: std::io::stderr().is_terminal(),
    };
    if settings.rate as f64 * settings.latency_run.as_secs_f64() < 1.0 {
        bail!("--rate × --latency-seconds must make at least one event");
    }
    let figures = match args.scenario {
        Scenario::Delivery => delivery::run(&settings).await?,
    };
    let elapsed = started.elapsed();
    println!("{}", figures.json(elapsed));
    Ok(if figures.errors > 0 {
        ExitCode::from(2)
    } else if figures.lost > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
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
}
