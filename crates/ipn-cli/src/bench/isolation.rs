//! `ipn bench isolation`. The bar: one dead endpoint among 100 healthy ones
//! costs the healthy ones ≤ 5 % throughput.
//!
//! Each run has a fresh receiver, SQLite file and gateway in this process,
//! at the gateway's defaults (32 attempts in flight per endpoint, 5 s connect
//! and 15 s total timeouts, a circuit breaker after 5 failures in a row):
//!
//! 0. Warm-up: a tenth of the events, alone, not measured. The first run in
//!    a process pays for what later ones find ready (threads, allocator
//!    pages); without it, the order of the runs would decide the comparison.
//! 1. Alone: one merchant with H healthy endpoints (default 100), each on a
//!    port of its own of the local receiver (`http://127.0.0.1:PORT/ep/I`),
//!    so that each has its own connection pool, as endpoints on different
//!    servers have. Every endpoint takes every event type: each of the N
//!    events ingested through `POST /v1/events` (over C connections, as fast
//!    as the API answers) fans out to all H, N × H healthy deliveries.
//! 2. With a dead one: the same, plus one dead endpoint (bench/dead.rs),
//!    created first so that its delivery leads every event's batch. `hang`
//!    (the default, the worst realistic case) accepts connections and never
//!    answers: its attempts hold connections until the 15 s timeout, then
//!    the breaker opens and the rest of its queue is parked. A run shorter
//!    than the timeout sees only the first part, and says so.
//!    `refused` fails every attempt at once.
//!
//! Healthy throughput is healthy deliveries received per second, from the
//! first ingest request sent to the last healthy delivery received.
//!
//! Figures:
//! - `healthy_per_s_alone`, `healthy_per_s_with_dead`: healthy throughput.
//! - `cost_pct`: how much lower the second is, in percent of the first
//!   (negative when it came out higher, which is noise).
//! - `seconds_alone`, `seconds_with_dead`: each run's length; under 15 s, no
//!   attempt of a hanging endpoint timed out within it.
//! - `lost`: healthy deliveries that had not arrived after `--timeout`, all
//!   runs; `duplicates`: healthy deliveries repeated, all runs.
//! - `errors`: ingest requests refused or unanswered (the run is not valid).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use ipn_gateway::Gateway;
use ipn_gateway::delivery::DeliveryConfig;
use ipn_gateway::storage::sqlite::Durability;
use serde_json::{Value, json};

use super::api::{Api, Ingest};
use super::dead::{Dead, DeadEndpoint};
use super::in_process;
use super::load::{self, Plan};
use super::meter::Meter;
use super::receiver::{Key, Receiver};
use super::stats::round;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub events: u64,
    pub healthy: usize,
    pub dead: Dead,
    pub concurrency: usize,
    pub timeout: Duration,
    pub durability: Durability,
    pub show_progress: bool,
}

/// What was measured; `None` where nothing arrived, rendered as JSON `null`.
#[derive(Debug)]
pub struct Figures {
    pub events: u64,
    pub healthy: usize,
    pub dead: Dead,
    pub concurrency: usize,
    pub alone: Option<f64>,
    pub with_dead: Option<f64>,
    /// How long each measured run lasted (see [`Run::length`]).
    pub seconds_alone: Duration,
    pub seconds_with_dead: Duration,
    pub lost: u64,
    pub duplicates: u64,
    pub errors: u64,
}

impl Figures {
    pub fn json(&self, elapsed: Duration) -> Value {
        let cost = match (self.alone, self.with_dead) {
            (Some(alone), Some(with_dead)) if alone > 0.0 => {
                Some(round(100.0 * (alone - with_dead) / alone, 2))
            }
            _ => None,
        };
        json!({
            "scenario": "isolation",
            "events": self.events,
            "healthy_endpoints": self.healthy,
            "dead": self.dead.name(),
            "healthy_per_s_alone": self.alone.map(|r| round(r, 1)),
            "healthy_per_s_with_dead": self.with_dead.map(|r| round(r, 1)),
            "cost_pct": cost,
            "seconds_alone": round(self.seconds_alone.as_secs_f64(), 3),
            "seconds_with_dead": round(self.seconds_with_dead.as_secs_f64(), 3),
            "lost": self.lost,
            "duplicates": self.duplicates,
            "elapsed_s": round(elapsed.as_secs_f64(), 3),
            "concurrency": self.concurrency,
            "errors": self.errors,
        })
    }
}

/// The warm-up run's events, as a share of a measured run's: 1/10.
const WARM_UP_SHARE: u64 = 10;

/// One run's healthy deliveries.
#[derive(Debug)]
struct Run {
    per_s: Option<f64>,
    /// First ingest request sent → last healthy delivery received.
    length: Duration,
    lost: u64,
    duplicates: u64,
    errors: u64,
}

pub async fn run(settings: &Settings) -> anyhow::Result<Figures> {
    // The first run in a process pays for what later ones find ready
    // (threads, allocator pages): a short one first, not measured, so that
    // the order of the two measured runs does not decide the comparison.
    let warm_up = Settings {
        events: (settings.events / WARM_UP_SHARE).max(1),
        ..settings.clone()
    };
    let warm = measure(&warm_up, None, "warm-up").await?;
    let alone = measure(settings, None, "alone").await?;
    let with_dead = measure(settings, Some(settings.dead), "with dead").await?;
    let runs = [&warm, &alone, &with_dead];
    let figures = Figures {
        events: settings.events,
        healthy: settings.healthy,
        dead: settings.dead,
        concurrency: settings.concurrency,
        alone: alone.per_s,
        with_dead: with_dead.per_s,
        seconds_alone: alone.length,
        seconds_with_dead: with_dead.length,
        lost: runs.iter().map(|r| r.lost).sum(),
        duplicates: runs.iter().map(|r| r.duplicates).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
    };
    let timeout = DeliveryConfig::default().timeout;
    if settings.dead == Dead::Hang && with_dead.length < timeout {
        println!(
            "note: the run with the dead endpoint lasted {:.1} s, less than the gateway's {} s \
             delivery timeout, so none of its attempts timed out within it; more --events \
             make a longer run",
            with_dead.length.as_secs_f64(),
            timeout.as_secs()
        );
    }
    if let (Some(alone), Some(with_dead)) = (figures.alone, figures.with_dead) {
        println!(
            "a dead endpoint ({}) costs the healthy ones {:.2} % of their throughput",
            settings.dead.name(),
            100.0 * (alone - with_dead) / alone
        );
    }
    println!(
        "lost {}, duplicates {}, refused or unanswered {}",
        figures.lost, figures.duplicates, figures.errors
    );
    Ok(figures)
}

/// One run on a fresh receiver, database and gateway.
async fn measure(
    settings: &Settings,
    dead: Option<Dead>,
    name: &'static str,
) -> anyhow::Result<Run> {
    let receiver = Arc::new(Receiver::start_on(settings.healthy, Key::PathAndId).await?);
    let dead = match dead {
        Some(kind) => Some(DeadEndpoint::start(kind).await?),
        None => None,
    };
    let dir = tempfile::tempdir().context("creating a temporary directory for the database")?;
    let store = in_process::Store::Sqlite(dir.path().join("gateway.db"), settings.durability);
    let (gateway, admin_key) = in_process::start(&store).await?;
    let result = deliver(
        settings,
        &gateway,
        &admin_key,
        &receiver,
        dead.as_ref(),
        name,
    )
    .await;
    if let Some(dead) = dead {
        if dead.connections() > 0 {
            println!(
                "the dead endpoint held {} connection(s) open",
                dead.connections()
            );
        }
        // Before the gateway stops: attempts waiting on it end now, not at
        // their timeout.
        drop(dead);
    }
    in_process::stop(gateway).await;
    result
}

async fn deliver(
    settings: &Settings,
    gateway: &Gateway,
    admin_key: &str,
    receiver: &Arc<Receiver>,
    dead: Option<&DeadEndpoint>,
    name: &'static str,
) -> anyhow::Result<Run> {
    let api = Api::new(gateway.addr(), admin_key)?;
    let key = api.merchant_key("bench isolation").await?;
    if let Some(dead) = dead {
        api.endpoint(&key, &dead.url()).await?;
    }
    for (i, addr) in receiver.addrs().iter().enumerate() {
        api.endpoint(&key, &format!("http://{addr}/ep/{i}")).await?;
    }
    let healthy = settings.healthy as u64;
    let meter = {
        let receiver = Arc::clone(receiver);
        let total = settings.events * healthy;
        Meter::start(settings.show_progress, name, total, move || {
            (receiver.received(), "healthy deliveries".to_owned())
        })
    };
    let work = Arc::new(Ingest::new(api.addr, &key, 0)?);
    let answered = Arc::new(AtomicU64::new(0));
    let run = load::run(
        api.addr,
        settings.concurrency,
        Plan::Count(settings.events),
        work,
        answered,
    )
    .await?;
    let expected = run.outputs.len() as u64 * healthy;
    receiver.wait_for_count(expected, settings.timeout).await;
    meter.finish();

    let received = receiver.received();
    let length = receiver
        .span()
        .map(|(_, last)| last.saturating_duration_since(run.started));
    let measured = Run {
        per_s: length.map(|length| received as f64 / length.as_secs_f64()),
        length: length.unwrap_or_default(),
        lost: expected.saturating_sub(received),
        duplicates: receiver.duplicates(),
        errors: run.errors,
    };
    print_run(name, settings, &measured, received, run.first_error);
    Ok(measured)
}

fn print_run(
    name: &str,
    settings: &Settings,
    run: &Run,
    received: u64,
    first_error: Option<String>,
) {
    let mut line = format!(
        "{name}: {} events to {} healthy endpoints, {received} delivered in {:.2} s, {}",
        settings.events,
        settings.healthy,
        run.length.as_secs_f64(),
        match run.per_s {
            Some(rate) => format!("{rate:.0} healthy deliveries/s"),
            None => "none arrived".to_owned(),
        }
    );
    if run.lost > 0 {
        line.push_str(&format!("; {} LOST", run.lost));
    }
    if let Some(error) = first_error {
        line.push_str(&format!("; {} refused, first: {error}", run.errors));
    }
    println!("{line}");
}
