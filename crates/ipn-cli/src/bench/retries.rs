//! `ipn bench retries`. The bar: with 1,000,000 retries pending, memory
//! ≤ 256 MB and restart to first delivery ≤ 5 s. Measured on a real
//! `ipn gateway` process (bench/child.rs), so that its memory is its own and
//! its restart is a real one.
//!
//! 1. The local receiver answers 500 to everything: the merchant is down.
//! 2. `ipn gateway` starts on a fresh SQLite file with the retry schedule
//!    `D,1h`: the first retry D after the failed first attempt (± the
//!    gateway's 20 % jitter). D is long enough that no retry falls due
//!    before the gateway is stopped (the run fails, saying so, otherwise).
//! 3. One merchant, one endpoint at the receiver, N events through
//!    `POST /v1/events` over C connections. The first attempts fail; after
//!    five, the endpoint's circuit breaker opens and the rest are parked
//!    (held in memory, not attempted) until a probe succeeds, as they are
//!    while a merchant's server is down.
//! 4. When `/metrics` shows all N scheduled or parked, and none due, N
//!    deliveries are pending: the gateway's memory is read, and it is
//!    stopped with SIGTERM.
//! 5. The receiver now answers 200. Once every retry is due, the gateway
//!    starts again on the same file, rebuilds its schedule from the
//!    database, and delivers them.
//!
//! Figures (MiB are 2^20 bytes; memory is `null` without /proc):
//! - `pending`: retries pending when the gateway was stopped.
//! - `retry_delay_s`: D.
//! - `rss_mb_pending`: the gateway's resident memory (VmRSS) with them pending.
//! - `rss_mb_peak`: its peak resident memory (VmHWM) until then, ingest included.
//! - `stop_ms`: SIGTERM → the process has exited.
//! - `restart_to_listening_ms`: the second process spawned → it says it
//!   listens (its schedule is rebuilt by then).
//! - `restart_to_first_delivery_ms`: spawned → the first retry arrived.
//! - `rss_mb_after_restart`: resident memory just after it listens.
//! - `rss_mb_peak_after_restart`: its peak until the last retry arrived.
//! - `restart_to_all_delivered_ms`: spawned → the last retry arrived.
//! - `redelivered_per_s`: retries delivered per second, from listening to
//!   the last arrival.
//! - `lost`: pending retries that had not arrived after `--timeout`;
//!   `duplicates`: deliveries of an id that had arrived before.
//! - `errors`: ingest requests refused or unanswered (the run is not valid).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use hyper::StatusCode;
use ipn_gateway::delivery::retry::RetryPolicy;
use serde_json::{Value, json};

use super::api::{self, Api, Ingest};
use super::child::{ChildGateway, Memory};
use super::load::{self, Plan};
use super::meter::Meter;
use super::receiver::Receiver;
use super::stats::{ms, round};

/// Room left between what the bench plans and when retries fall due: the
/// gateway's clock and ours tick apart by a little.
const SAFETY: Duration = Duration::from_millis(250);
/// How often `/metrics` is read while first attempts fail.
const POLL: Duration = Duration::from_millis(100);

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub events: u64,
    pub concurrency: usize,
    pub retry_delay: Duration,
    pub timeout: Duration,
    pub show_progress: bool,
}

/// What was measured; `None` where there was nothing to measure, rendered
/// as JSON `null`.
#[derive(Debug)]
pub struct Figures {
    pub pending: u64,
    pub retry_delay: Duration,
    pub concurrency: usize,
    pub pending_memory: Option<Memory>,
    pub stop: Duration,
    pub restart_to_listening: Duration,
    pub restart_to_first_delivery: Option<Duration>,
    pub after_restart_memory: Option<Memory>,
    pub final_memory: Option<Memory>,
    pub restart_to_all_delivered: Option<Duration>,
    pub redelivered_per_s: Option<f64>,
    pub lost: u64,
    pub duplicates: u64,
    pub errors: u64,
}

impl Figures {
    pub fn json(&self, elapsed: Duration) -> Value {
        let mib = |value: Option<f64>| value.map(|v| round(v, 1));
        json!({
            "scenario": "retries",
            "pending": self.pending,
            "retry_delay_s": round(self.retry_delay.as_secs_f64(), 3),
            "rss_mb_pending": mib(self.pending_memory.map(|m| m.rss_mib())),
            "rss_mb_peak": mib(self.pending_memory.map(|m| m.peak_mib())),
            "stop_ms": ms(self.stop),
            "restart_to_listening_ms": ms(self.restart_to_listening),
            "restart_to_first_delivery_ms": self.restart_to_first_delivery.map(ms),
            "rss_mb_after_restart": mib(self.after_restart_memory.map(|m| m.rss_mib())),
            "rss_mb_peak_after_restart": mib(self.final_memory.map(|m| m.peak_mib())),
            "restart_to_all_delivered_ms": self.restart_to_all_delivered.map(ms),
            "redelivered_per_s": self.redelivered_per_s.map(|r| round(r, 1)),
            "lost": self.lost,
            "duplicates": self.duplicates,
            "elapsed_s": round(elapsed.as_secs_f64(), 3),
            "concurrency": self.concurrency,
            "errors": self.errors,
        })
    }
}

/// The first gateway's part: retries pending, then stopped.
#[derive(Debug)]
struct Filled {
    ids: Vec<Box<str>>,
    errors: u64,
    memory: Option<Memory>,
    stop: Duration,
    /// When every first attempt was seen failed: all retries fall due by
    /// this instant plus the longest jittered delay.
    all_failed: Instant,
}

pub async fn run(settings: &Settings) -> anyhow::Result<Figures> {
    let receiver = Arc::new(Receiver::start().await?);
    receiver.answer_with(StatusCode::INTERNAL_SERVER_ERROR);
    let dir = tempfile::tempdir().context("creating a temporary directory for the database")?;
    let database = dir.path().join("gateway.db");
    let admin_key = api::admin_key();
    // The same key for both starts of the one database.
    let encryption_key = ipn_gateway::EncryptionKey::generate_base64()?;
    let schedule = format!("{}ms,1h", settings.retry_delay.as_millis());
    let (earliest, latest) = due_window(settings.retry_delay);

    let gateway = ChildGateway::start(&database, &admin_key, &encryption_key, &schedule).await?;
    println!(
        "gateway: {} (pid {}) on SQLite in {}, retry schedule {schedule}",
        gateway.addr,
        gateway.pid(),
        dir.path().display()
    );
    println!(
        "retries fall due {:.1}-{:.1} s after their failed first attempt: the gateway must \
         stop within {:.1} s, and restarts once all are due",
        earliest.as_secs_f64(),
        latest.as_secs_f64(),
        earliest.as_secs_f64()
    );
    // No first attempt fails before the gateway is up, so no retry falls
    // due before `earliest` from now.
    let deadline = Instant::now() + earliest.saturating_sub(SAFETY);
    let depth = Arc::new(AtomicU64::new(0));
    let filled = tokio::time::timeout_at(
        deadline.into(),
        fill(settings, gateway, &admin_key, &receiver, Arc::clone(&depth)),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "the first retries fell due before the gateway was stopped ({} of {} scheduled \
             or parked at the last look): give a longer --retry-delay than {} s",
            depth.load(Ordering::Relaxed),
            settings.events,
            settings.retry_delay.as_secs_f64()
        )
    })??;
    // Few: once the circuit breaker is open, deliveries are parked unattempted.
    println!(
        "pending: {} retries ({} attempts reached the receiver); gateway {}; \
         stopped (SIGTERM) in {:.0} ms",
        filled.ids.len(),
        receiver.refused(),
        describe(filled.memory),
        ms(filled.stop)
    );

    receiver.answer_with(StatusCode::OK);
    hold_until(filled.all_failed + latest + SAFETY, settings.show_progress).await;
    redeliver(
        settings,
        &database,
        &admin_key,
        &encryption_key,
        &schedule,
        &receiver,
        filled,
    )
    .await
}

/// The earliest and the latest a retry falls due after its failed attempt,
/// with the gateway's jitter.
fn due_window(delay: Duration) -> (Duration, Duration) {
    let jitter = f64::from(RetryPolicy::default().jitter_percent.min(100)) / 100.0;
    (delay.mul_f64(1.0 - jitter), delay.mul_f64(1.0 + jitter))
}

/// Ingests the events, waits until every first attempt has failed, reads
/// the gateway's memory, and stops it.
async fn fill(
    settings: &Settings,
    gateway: ChildGateway,
    admin_key: &str,
    receiver: &Arc<Receiver>,
    depth: Arc<AtomicU64>,
) -> anyhow::Result<Filled> {
    let api = Api::new(gateway.addr, admin_key)?;
    let key = api.setup(receiver.addr()).await?;
    let answered = Arc::new(AtomicU64::new(0));
    let meter = {
        let answered = Arc::clone(&answered);
        Meter::start(
            settings.show_progress,
            "ingest",
            settings.events,
            move || (answered.load(Ordering::Relaxed), "accepted".to_owned()),
        )
    };
    let work = Arc::new(Ingest::new(api.addr, &key, 0)?);
    let run = load::run(
        api.addr,
        settings.concurrency,
        Plan::Count(settings.events),
        work,
        answered,
    )
    .await?;
    meter.finish();
    let seconds = (run.finished - run.started).as_secs_f64();
    print!(
        "ingest: {} events accepted in {seconds:.2} s ({:.0}/s), every delivery failing",
        run.outputs.len(),
        run.outputs.len() as f64 / seconds
    );
    match &run.first_error {
        Some(error) => println!("; {} refused, first: {error}", run.errors),
        None => println!(),
    }
    let ids: Vec<Box<str>> = run.outputs.into_iter().map(|a| a.id).collect();
    if ids.is_empty() {
        bail!("the gateway accepted no event");
    }
    let all_failed = all_failed(&api, ids.len() as u64, depth, settings.show_progress).await?;
    let memory = gateway.memory();
    let stop = gateway.stop().await?;
    Ok(Filled {
        ids,
        errors: run.errors,
        memory,
        stop,
        all_failed,
    })
}

/// Returns when `pending` deliveries sit in the schedule and none is due:
/// every first attempt has failed and its retry waits. It must be seen on
/// two reads in a row, since a delivery just ingested also sits there, due,
/// for an instant. Returns the first of the two reads.
async fn all_failed(
    api: &Api,
    pending: u64,
    depth: Arc<AtomicU64>,
    show_progress: bool,
) -> anyhow::Result<Instant> {
    let meter = {
        let depth = Arc::clone(&depth);
        Meter::start(show_progress, "failing", pending, move || {
            (
                depth.load(Ordering::Relaxed),
                "deliveries pending".to_owned(),
            )
        })
    };
    let mut seen: Option<Instant> = None;
    loop {
        let read = Instant::now();
        let metrics = api.metrics().await?;
        let scheduled = metrics
            .queue_depth()
            .context("/metrics has no ipn_queue_depth")?;
        let parked = metrics
            .parked()
            .context("/metrics has no ipn_deliveries_parked")?;
        let scheduled = scheduled + parked;
        let overdue = metrics
            .oldest_due_age_s()
            .context("/metrics has no ipn_oldest_due_age_seconds")?;
        depth.store(scheduled, Ordering::Relaxed);
        if scheduled == pending && overdue == 0.0 {
            if let Some(first) = seen {
                meter.finish();
                return Ok(first);
            }
            seen = Some(read);
        } else {
            seen = None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `until`, with a bar, saying why.
async fn hold_until(until: Instant, show_progress: bool) {
    let wait = until.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        return;
    }
    println!(
        "waiting {:.1} s until every retry is due; the receiver now answers 200",
        wait.as_secs_f64()
    );
    let started = Instant::now();
    let meter = Meter::start(show_progress, "hold", wait.as_millis() as u64, move || {
        let elapsed = started.elapsed().min(wait).as_millis() as u64;
        (elapsed, "ms".to_owned())
    });
    tokio::time::sleep_until(until.into()).await;
    meter.finish();
}

/// Starts the gateway again and measures it delivering the pending retries.
async fn redeliver(
    settings: &Settings,
    database: &Path,
    admin_key: &str,
    encryption_key: &str,
    schedule: &str,
    receiver: &Arc<Receiver>,
    filled: Filled,
) -> anyhow::Result<Figures> {
    let pending = filled.ids.len() as u64;
    let meter = {
        let receiver = Arc::clone(receiver);
        Meter::start(settings.show_progress, "redeliver", pending, move || {
            (receiver.received(), "received".to_owned())
        })
    };
    let gateway = ChildGateway::start(database, admin_key, encryption_key, schedule).await?;
    let after_restart_memory = gateway.memory();
    receiver
        .wait_for(filled.ids.clone(), 0, settings.timeout)
        .await;
    let final_memory = gateway.memory();
    meter.finish();

    let lost = receiver
        .arrivals(filled.ids.iter().map(|id| &**id))
        .iter()
        .filter(|arrived| arrived.is_none())
        .count() as u64;
    let span = receiver.span();
    let delivered = pending - lost;
    let figures = Figures {
        pending,
        retry_delay: settings.retry_delay,
        concurrency: settings.concurrency,
        pending_memory: filled.memory,
        stop: filled.stop,
        restart_to_listening: gateway.listening.saturating_duration_since(gateway.spawned),
        restart_to_first_delivery: span
            .map(|(first, _)| first.saturating_duration_since(gateway.spawned)),
        after_restart_memory,
        final_memory,
        restart_to_all_delivered: span
            .map(|(_, last)| last.saturating_duration_since(gateway.spawned)),
        redelivered_per_s: span.map(|(_, last)| {
            delivered as f64
                / last
                    .saturating_duration_since(gateway.listening)
                    .as_secs_f64()
        }),
        lost,
        duplicates: receiver.duplicates(),
        errors: filled.errors,
    };
    if let Err(error) = gateway.stop().await {
        println!("warning: stopping the restarted gateway: {error:#}");
    }
    report(&figures);
    Ok(figures)
}

fn report(figures: &Figures) {
    let ms_or_none = |d: Option<Duration>| match d {
        Some(d) => format!("{:.0} ms", ms(d)),
        None => "never".to_owned(),
    };
    println!(
        "restart: listening after {:.0} ms, first delivery after {}, all delivered after {} \
         ({}/s); gateway {} after listening, {} at the end",
        ms(figures.restart_to_listening),
        ms_or_none(figures.restart_to_first_delivery),
        ms_or_none(figures.restart_to_all_delivered),
        figures
            .redelivered_per_s
            .map_or("-".to_owned(), |r| format!("{r:.0}")),
        describe(figures.after_restart_memory),
        describe(figures.final_memory),
    );
    println!(
        "lost {}, duplicates {}, refused or unanswered {}",
        figures.lost, figures.duplicates, figures.errors
    );
}

/// `RSS 41.2 MiB (peak 80.5 MiB)`, or why there is no figure.
fn describe(memory: Option<Memory>) -> String {
    match memory {
        Some(m) => format!("RSS {:.1} MiB (peak {:.1} MiB)", m.rss_mib(), m.peak_mib()),
        None => "memory unknown (no /proc)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_fall_due_within_the_gateways_jitter() {
        let (earliest, latest) = due_window(Duration::from_secs(10));
        assert_eq!(earliest, Duration::from_secs(8));
        assert_eq!(latest, Duration::from_secs(12));
    }
}
