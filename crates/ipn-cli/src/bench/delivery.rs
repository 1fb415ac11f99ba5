//! `ipn bench delivery`: how fast and how soon events get from the ingest API
//! to a merchant's server, against what the same machine does in one hop.
//!
//! 1. One hop: the load generator POSTs straight to the local receiver.
//! 2. A gateway starts in this process on a fresh SQLite file (loopback
//!    deliveries allowed), with one merchant and one endpoint at the receiver.
//! 3. Throughput: N events through `POST /v1/events` over C connections, as
//!    fast as the API answers; each event's latency runs from its 201
//!    ("accepted") to its arrival at the receiver ("received").
//! 4. Latency: the same at a fixed rate, where queues should be empty.
//!
//! All instants come from one monotonic clock, in one process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use ipn_gateway::storage::sqlite::Durability;
use serde_json::{Value, json};

use super::api::{Api, Ingest, event_body, host};
use super::in_process;
use super::load::{self, Plan, Timing, Work};
use super::meter::Meter;
use super::receiver::Receiver;
use super::stats::{Sorted, round};

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub events: u64,
    pub concurrency: usize,
    pub rate: u64,
    pub latency_run: Duration,
    pub baseline: Duration,
    pub timeout: Duration,
    pub durability: Durability,
    /// A PostgreSQL server to run the gateway on instead of SQLite.
    pub postgres: Option<String>,
    pub show_progress: bool,
}

/// What was measured. `None` where there was nothing to measure (no event
/// arrived); rendered as JSON `null`.
#[derive(Debug)]
pub struct Figures {
    pub events: u64,
    pub concurrency: usize,
    pub events_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub latency_rate: u64,
    pub latency_events: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub one_hop_per_s: f64,
    pub lost: u64,
    pub duplicates: u64,
    /// Requests the gateway refused or never answered: the run is not valid.
    pub errors: u64,
}

impl Figures {
    /// The last line printed. Its names are public (scripts read them): new
    /// ones are only added, none renamed or removed.
    pub fn json(&self, elapsed: Duration) -> Value {
        let ratio = match self.events_per_s {
            Some(rate) if self.one_hop_per_s > 0.0 => Some(round(rate / self.one_hop_per_s, 4)),
            _ => None,
        };
        json!({
            "scenario": "delivery",
            "events": self.events,
            "events_per_s": self.events_per_s.map(|r| round(r, 1)),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "latency_rate": self.latency_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "one_hop_per_s": round(self.one_hop_per_s, 1),
            "ratio_to_one_hop": ratio,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "elapsed_s": round(elapsed.as_secs_f64(), 3),
            "concurrency": self.concurrency,
            "latency_events": self.latency_events,
            "errors": self.errors,
        })
    }
}

pub async fn run(settings: &Settings) -> anyhow::Result<Figures> {
    let receiver = Arc::new(Receiver::start().await?);
    let one_hop_per_s = one_hop(settings, &receiver).await?;
    receiver.forget();

    let dir = tempfile::tempdir().context("creating a temporary directory for the database")?;
    let database = match &settings.postgres {
        Some(url) => in_process::Store::postgres(url).await?,
        None => in_process::Store::Sqlite(dir.path().join("gateway.db"), settings.durability),
    };
    let (gateway, admin_key) = in_process::start(&database).await?;
    let api = Api::new(gateway.addr(), &admin_key)?;
    let result = through_gateway(settings, &api, &receiver, one_hop_per_s).await;
    in_process::stop(gateway).await;
    result
}

async fn through_gateway(
    settings: &Settings,
    api: &Api,
    receiver: &Arc<Receiver>,
    one_hop_per_s: f64,
) -> anyhow::Result<Figures> {
    let merchant_key = api.setup(receiver.addr()).await?;
    let ingest = |first| Ingest::new(api.addr, &merchant_key, first);

    let throughput = phase(
        settings,
        receiver,
        ingest(0)?,
        Plan::Count(settings.events),
        settings.events,
        "ingest",
    )
    .await?;
    // Events delivered per second of the whole road: from the first request
    // sent to the last delivery received (N / time when nothing was lost).
    let events_per_s = throughput
        .last_arrival
        .map(|last| throughput.latencies.len() as f64 / (last - throughput.started).as_secs_f64());
    println!(
        "throughput: {} events over {} connections, {}; {}",
        settings.events,
        settings.concurrency,
        match events_per_s {
            Some(rate) => format!(
                "{rate:.0} events/s ({:.1} % of one hop)",
                100.0 * rate / one_hop_per_s
            ),
            None => "none arrived".to_owned(),
        },
        throughput.describe(),
    );

    // Attempt results are committed after their delivery: let the writer
    // drain, so that the latency run starts on a quiet gateway.
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.barrier().await?;

    let count = (settings.rate as f64 * settings.latency_run.as_secs_f64()).round() as u64;
    let latency = phase(
        settings,
        receiver,
        ingest(settings.events)?,
        Plan::Paced {
            rate: settings.rate as f64,
            count,
        },
        count,
        "latency",
    )
    .await?;
    println!(
        "latency at {}/s: {count} events; {}",
        settings.rate,
        latency.describe()
    );
    let figures = Figures {
        events: settings.events,
        concurrency: settings.concurrency,
        events_per_s,
        p50_ms: throughput.latencies.percentile_ms(50.0),
        p99_ms: throughput.latencies.percentile_ms(99.0),
        latency_rate: settings.rate,
        latency_events: count,
        latency_p50_ms: latency.latencies.percentile_ms(50.0),
        latency_p99_ms: latency.latencies.percentile_ms(99.0),
        one_hop_per_s,
        lost: throughput.lost + latency.lost,
        duplicates: receiver.duplicates(),
        errors: throughput.errors + latency.errors,
    };
    println!(
        "lost {}, duplicates {}, refused or unanswered {}",
        figures.lost, figures.duplicates, figures.errors
    );
    if receiver.unnamed() > 0 {
        println!(
            "warning: {} deliveries came without a webhook-id",
            receiver.unnamed()
        );
    }
    Ok(figures)
}

/// The baseline: requests per second straight to the receiver.
async fn one_hop(settings: &Settings, receiver: &Arc<Receiver>) -> anyhow::Result<f64> {
    let answered = Arc::new(AtomicU64::new(0));
    let length = settings.baseline;
    let meter = {
        let answered = Arc::clone(&answered);
        let started = Instant::now();
        Meter::start(
            settings.show_progress,
            "one hop",
            length.as_millis() as u64,
            move || {
                let elapsed = started.elapsed().min(length).as_millis() as u64;
                let requests = answered.load(Ordering::Relaxed);
                (elapsed, format!("ms, {requests} requests"))
            },
        )
    };
    let work = Arc::new(OneHop {
        host: host(receiver.addr())?,
        body: Bytes::from(event_body(0)),
    });
    let run = load::run(
        receiver.addr(),
        settings.concurrency,
        Plan::For(length),
        work,
        answered,
    )
    .await;
    meter.finish();
    let run = run?;
    if run.errors > 0 {
        bail!(
            "the one-hop baseline failed {} request(s): {}",
            run.errors,
            run.first_error.unwrap_or_default()
        );
    }
    let seconds = (run.finished - run.started).as_secs_f64();
    let rate = run.answered() as f64 / seconds;
    println!(
        "one hop: {rate:.0} requests/s straight to the receiver ({} over {} connections in {seconds:.2} s)",
        run.answered(),
        settings.concurrency
    );
    Ok(rate)
}

struct OneHop {
    host: HeaderValue,
    body: Bytes,
}

impl Work for OneHop {
    type Output = ();

    fn request(&self, n: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        Ok(Request::post("/hooks")
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", format!("one_hop_{n}"))
            .body(Full::new(self.body.clone()))?)
    }

    fn answer(&self, status: StatusCode, _: &[u8], _: Timing) -> anyhow::Result<()> {
        if status != StatusCode::OK {
            bail!("the receiver answered {status}");
        }
        Ok(())
    }
}

/// One run of events through the gateway, measured.
struct Phase {
    started: Instant,
    /// Accepted → received, one per event received.
    latencies: Sorted,
    /// Sent → received: includes the wait for the commit before the 201.
    from_send: Sorted,
    last_arrival: Option<Instant>,
    lost: u64,
    /// Deliveries that reached the receiver before their 201 reached the client.
    early: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Phase {
    fn describe(&self) -> String {
        let mut text = match (
            self.latencies.percentile_ms(50.0),
            self.latencies.percentile_ms(99.0),
        ) {
            (Some(p50), Some(p99)) => format!(
                "accepted → received p50 {p50:.3} ms, p99 {p99:.3} ms ({:.0} % arrived before their 201)",
                100.0 * self.early as f64 / self.latencies.len() as f64
            ),
            _ => "nothing received".to_owned(),
        };
        if let (Some(p50), Some(p99)) = (
            self.from_send.percentile_ms(50.0),
            self.from_send.percentile_ms(99.0),
        ) {
            text.push_str(&format!(
                "; sent → received p50 {p50:.3} ms, p99 {p99:.3} ms"
            ));
        }
        if self.lost > 0 {
            text.push_str(&format!("; {} LOST", self.lost));
        }
        if let Some(error) = &self.first_error {
            text.push_str(&format!("; {} refused, first: {error}", self.errors));
        }
        text
    }
}

async fn phase(
    settings: &Settings,
    receiver: &Arc<Receiver>,
    work: Ingest,
    plan: Plan,
    count: u64,
    name: &'static str,
) -> anyhow::Result<Phase> {
    let base = receiver.received();
    let answered = Arc::new(AtomicU64::new(0));
    let meter = {
        let answered = Arc::clone(&answered);
        let receiver = Arc::clone(receiver);
        Meter::start(settings.show_progress, name, count, move || {
            let received = receiver.received().saturating_sub(base);
            let accepted = answered.load(Ordering::Relaxed);
            (received, format!("received, {accepted} accepted"))
        })
    };
    let run = load::run(
        work.addr,
        settings.concurrency,
        plan,
        Arc::new(work),
        answered,
    )
    .await;
    let run = match run {
        Ok(run) => run,
        Err(error) => {
            meter.finish();
            return Err(error);
        }
    };
    let ids: Vec<Box<str>> = run.outputs.iter().map(|a| a.id.clone()).collect();
    receiver.wait_for(ids, base, settings.timeout).await;
    meter.finish();

    let arrivals = receiver.arrivals(run.outputs.iter().map(|a| &*a.id));
    let mut latencies = Vec::with_capacity(arrivals.len());
    let mut from_send = Vec::with_capacity(arrivals.len());
    let mut last_arrival = None;
    let mut lost = 0;
    let mut early = 0;
    for (accepted, arrived) in run.outputs.iter().zip(arrivals) {
        match arrived {
            Some(at) => {
                // A delivery can beat its own 201 back to the client: zero.
                early += u64::from(at < accepted.at.answered);
                latencies.push(at.saturating_duration_since(accepted.at.answered));
                from_send.push(at.saturating_duration_since(accepted.at.sent));
                last_arrival = last_arrival.max(Some(at));
            }
            None => lost += 1,
        }
    }
    Ok(Phase {
        started: run.started,
        latencies: Sorted::new(latencies),
        from_send: Sorted::new(from_send),
        last_arrival,
        lost,
        early,
        errors: run.errors,
        first_error: run.first_error,
    })
}
