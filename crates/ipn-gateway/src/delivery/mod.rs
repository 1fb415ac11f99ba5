//! The delivery engine: takes due deliveries from an in-memory schedule and
//! POSTs them, signed, to their endpoints; records each attempt and decides
//! what follows (delivered, retry at, dead letter).
//!
//! - The schedule is a heap keyed by due time, rebuilt from the store's index
//!   of pending deliveries at start, so no tick ever scans the table.
//! - Each endpoint has a lane: at most `per_endpoint_concurrency` attempts in
//!   flight, the rest waiting in the lane, so a slow or dead endpoint holds
//!   only its own lane and never delays the others.
//! - Endpoints that ask for `ordered` delivery get one event per object
//!   (payment, subscription) at a time, in order: later events of the object
//!   wait behind the one being delivered until it is delivered or dead.
//! - While an endpoint's circuit breaker is open, its deliveries are parked
//!   in memory, untouched. When the breaker lets a probe through, the run
//!   loop sends the oldest parked one; its success releases them all, its
//!   failure reopens the breaker and the next probe waits for that. Probes
//!   are derived from the breakers' state at each turn of the loop, so no
//!   flag can go stale and strand parked deliveries.
//! - Attempt results go to the writer without waiting for their commit; the
//!   store keeps each delivery pending until its result is committed, so a
//!   crash in between means one more attempt, never a lost delivery.

mod attempt;
pub mod breaker;
pub mod client;
pub mod retry;
pub mod ssrf;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipn_core::id::EndpointId;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::clock::{Clock, Millis};
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::model::{Disabled, DisabledReason};
use crate::storage::{Ingested, Scheduled, Store};
use crate::writes::{Write, WriteError, WriteRequest, Writer, Written};

pub use attempt::Outcome;
use breaker::ProbeAt;
use retry::RetryPolicy;
use ssrf::{HostResolver, NetworkPolicy};

/// How often idle connections are checked (real time).
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often parked deliveries are looked at, besides when a probe is due.
const UNPARK_EVERY: Duration = Duration::from_millis(10);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub per_endpoint_concurrency: usize,
    pub max_in_flight: usize,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_failing_after: Duration,
    /// Failed attempts in a row that open an endpoint's circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker waits before one probe.
    pub breaker_cooldown: Duration,
    /// TLS roots trusted besides the Mozilla ones (a private CA, tests).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            per_endpoint_concurrency: 32,
            max_in_flight: 2048,
            disable_failing_after: Duration::from_secs(5 * 24 * 3600),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            extra_roots: Vec::new(),
        }
    }
}

/// A delivery to run, with its body when the caller already has it.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery: Scheduled,
    pub body: Option<Arc<[u8]>>,
    /// How many times the endpoint had been disabled when the delivery was
    /// scheduled: a disable fails every pending delivery, so one scheduled
    /// before it is never attempted, even once the endpoint is enabled again.
    epoch: u64,
}

impl Job {
    pub fn new(delivery: Scheduled, body: Option<Arc<[u8]>>) -> Self {
        Self {
            delivery,
            body,
            epoch: 0, // set by `Engine::schedule`
        }
    }

    /// The same delivery's next attempt, in the same epoch; its body is
    /// reloaded when due (a million pending retries must not hold a million
    /// bodies).
    pub(crate) fn retry(&self, delivery: Scheduled) -> Self {
        Self {
            delivery,
            body: None,
            epoch: self.epoch,
        }
    }
}

#[derive(Debug)]
struct Due(Job);

impl Due {
    fn key(&self) -> (Millis, i64) {
        (self.0.delivery.due, self.0.delivery.delivery_id)
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// What follows a job's turn.
#[derive(Debug)]
pub(crate) enum Next {
    /// Done: delivered, dead-lettered or dropped.
    Done,
    /// Its retry, to schedule.
    Retry(Job),
    /// Parked behind its endpoint's open breaker.
    Parked,
}

/// Attempts in flight and waiting for one endpoint.
#[derive(Debug, Default)]
struct Lane {
    in_flight: usize,
    waiting: VecDeque<Job>,
}

pub struct Engine {
    pub(crate) clock: Arc<Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) writer: Writer,
    pub(crate) directory: Arc<Directory>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: DeliveryConfig,
    pub(crate) client: client::Client,
    pub(crate) policy: Arc<NetworkPolicy>,
    pub(crate) resolver: Arc<dyn HostResolver>,
    pub(crate) breakers: breaker::Breakers,
    schedule: Mutex<BinaryHeap<Reverse<Due>>>,
    wake: Notify,
    lanes: Mutex<HashMap<EndpointId, Lane>>,
    /// Ordered streams with a delivery under way, and what waits behind it.
    streams: Mutex<HashMap<StreamKey, VecDeque<Job>>>,
    /// Deliveries held while their endpoint's breaker is open, oldest first.
    parked: Mutex<HashMap<EndpointId, VecDeque<Job>>>,
    /// Times each endpoint was disabled (see [`Job`]'s `epoch`).
    disables: Mutex<HashMap<EndpointId, u64>>,
    permits: Arc<Semaphore>,
}

/// One object's deliveries to one ordered endpoint.
type StreamKey = (EndpointId, Arc<str>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("scheduled", &self.scheduled())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the engine needs from the rest of the gateway.
pub struct Parts {
    pub clock: Arc<Clock>,
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    pub policy: Arc<NetworkPolicy>,
    pub resolver: Arc<dyn HostResolver>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(parts: Parts, config: DeliveryConfig) -> anyhow::Result<Arc<Self>> {
        let client = client::Client::new(client::ClientConfig {
            connect_timeout: config.connect_timeout,
            max_idle: config.per_endpoint_concurrency,
            // Below most servers' keep-alive (nginx 75 s, Node 5 s is the
            // exception the retry on a fresh connection covers).
            idle_timeout: Duration::from_secs(30),
            extra_roots: config.extra_roots.clone(),
        })?;
        Ok(Arc::new(Self {
            clock: parts.clock,
            store: parts.store,
            writer: parts.writer,
            directory: parts.directory,
            metrics: parts.metrics,
            policy: parts.policy,
            resolver: parts.resolver,
            breakers: breaker::Breakers::new(config.breaker_threshold, config.breaker_cooldown),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            client,
            schedule: Mutex::new(BinaryHeap::new()),
            wake: Notify::new(),
            lanes: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            disables: Mutex::new(HashMap::new()),
        }))
    }

    /// Deliveries waiting in the schedule (not yet due or not yet taken).
    pub fn scheduled(&self) -> usize {
        lock(&self.schedule).len()
    }

    /// Whether the job was scheduled before its endpoint was last disabled.
    pub(crate) fn outdated(&self, job: &Job) -> bool {
        lock(&self.disables)
            .get(&job.delivery.endpoint_id)
            .is_some_and(|now| *now != job.epoch)
    }

    /// Deliveries parked behind open breakers.
    pub fn parked(&self) -> usize {
        lock(&self.parked).values().map(VecDeque::len).sum()
    }

    /// Due time of the earliest scheduled delivery.
    pub fn oldest_due(&self) -> Option<Millis> {
        lock(&self.schedule)
            .peek()
            .map(|Reverse(d)| d.0.delivery.due)
    }

    /// Disables an endpoint: commits it with its pending deliveries failed,
    /// then shows it in the directory and drops what it had parked.
    pub async fn disable(
        &self,
        endpoint: EndpointId,
        reason: DisabledReason,
        now: Millis,
    ) -> Result<(), WriteError> {
        let request = WriteRequest {
            write: Write::DisableEndpoint {
                endpoint_id: endpoint,
                reason,
                now,
            },
            idempotency: None,
        };
        self.writer.write(request).await?;
        self.directory.update_endpoint(endpoint, |e| {
            e.disabled = Some(Disabled { reason, at: now });
        });
        self.drop_parked(endpoint);
        Ok(())
    }

    /// Commits an ingest (an event with its deliveries) and schedules its
    /// deliveries; returns what the writer answered (a replay of an earlier
    /// request with its Idempotency-Key schedules nothing).
    pub async fn ingest(&self, request: WriteRequest) -> Result<Written, WriteError> {
        let written = self.writer.write(request).await?;
        if let Written::Ingested(ingested) = &written {
            self.schedule_events(std::slice::from_ref(ingested));
        }
        Ok(written)
    }

    /// Schedules the deliveries of events just committed, with their bodies.
    pub fn schedule_events(&self, events: &[Ingested]) {
        self.metrics.ingested(events.len() as u64);
        for ingested in events {
            self.schedule(
                ingested
                    .deliveries
                    .iter()
                    .map(|d| Job::new(d.clone(), Some(Arc::clone(&ingested.body)))),
            );
        }
    }

    /// Adds deliveries to the schedule. On an ordered endpoint, a delivery
    /// whose object already has one under way waits behind it instead.
    pub fn schedule(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut ready = Vec::new();
        {
            let disables = lock(&self.disables);
            let mut streams = lock(&self.streams);
            for mut job in jobs {
                job.epoch = disables
                    .get(&job.delivery.endpoint_id)
                    .copied()
                    .unwrap_or(0);
                match self.stream_of(&job) {
                    Some(key) => match streams.entry(key) {
                        std::collections::hash_map::Entry::Occupied(mut waiting) => {
                            waiting.get_mut().push_back(job);
                        }
                        std::collections::hash_map::Entry::Vacant(head) => {
                            head.insert(VecDeque::new());
                            ready.push(job);
                        }
                    },
                    None => ready.push(job),
                }
            }
        }
        self.enqueue(ready);
    }

    /// Puts jobs in the heap, as they are (retries keep their stream's place).
    fn enqueue(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut heap = lock(&self.schedule);
        for job in jobs {
            heap.push(Reverse(Due(job)));
        }
        drop(heap);
        self.wake.notify_one();
    }

    fn stream_of(&self, job: &Job) -> Option<StreamKey> {
        let object = job.delivery.object_id.as_ref()?;
        let endpoint = self.directory.endpoint(job.delivery.endpoint_id)?;
        endpoint.ordered.then(|| (endpoint.id, Arc::clone(object)))
    }

    /// A delivery is done (delivered, dead, or dropped): the next one of its
    /// ordered stream, if any, is due now.
    fn finished(&self, job: &Job) {
        let Some(object) = job.delivery.object_id.as_ref() else {
            return;
        };
        let key = (job.delivery.endpoint_id, Arc::clone(object));
        let next = {
            let mut streams = lock(&self.streams);
            let next = streams.get_mut(&key).and_then(VecDeque::pop_front);
            if next.is_none() {
                streams.remove(&key);
            }
            next
        };
        if let Some(mut next) = next {
            next.delivery.due = next.delivery.due.min(self.clock.now_ms());
            self.enqueue([next]);
        }
    }

    /// Holds a job whose endpoint's breaker is open (see the module doc).
    /// A disabled endpoint's job is not held: it is done.
    fn park(&self, mut job: Job) -> Next {
        let endpoint = job.delivery.endpoint_id;
        let mut parked = lock(&self.parked);
        // Checked under the lock that `drop_parked` takes after disabling,
        // so a job cannot slip in after its endpoint's jobs were dropped.
        if !self
            .directory
            .endpoint(endpoint)
            .is_some_and(|e| e.is_enabled())
        {
            return Next::Done;
        }
        job.body = None; // a million parked deliveries must not hold their bodies
        parked.entry(endpoint).or_default().push_back(job);
        drop(parked);
        self.wake.notify_one(); // the run loop may need to wake for a probe
        Next::Parked
    }

    /// Parked deliveries to send now: every one of an endpoint whose breaker
    /// has closed (a delivery in flight succeeded), and the oldest one of an
    /// endpoint whose breaker lets a probe through. Also returns when the
    /// next probe falls due.
    fn take_unparked(&self, now: Millis) -> (Vec<Job>, Option<Millis>) {
        let mut parked = lock(&self.parked);
        let mut ready = Vec::new();
        let mut next_probe: Option<Millis> = None;
        parked.retain(|endpoint, jobs| {
            match self.breakers.probe_at(*endpoint) {
                None => {
                    ready.extend(jobs.drain(..));
                    return false;
                }
                Some(ProbeAt::At(at)) if at <= now => ready.extend(jobs.pop_front()),
                Some(ProbeAt::At(at)) => {
                    next_probe = Some(next_probe.map_or(at, |n| n.min(at)));
                }
                Some(ProbeAt::Probing) => {} // its outcome decides
            }
            !jobs.is_empty()
        });
        for job in &mut ready {
            job.delivery.due = job.delivery.due.min(now);
        }
        (ready, next_probe)
    }

    /// The endpoint was disabled: its deliveries are failed in the store
    /// already. Those scheduled so far are never attempted (their epoch is
    /// now behind); the parked ones are done at once, and their ordered
    /// streams move on to later deliveries, which are done the same way.
    pub(crate) fn drop_parked(&self, endpoint: EndpointId) {
        *lock(&self.disables).entry(endpoint).or_default() += 1;
        let dropped = lock(&self.parked).remove(&endpoint).unwrap_or_default();
        for job in &dropped {
            self.finished(job);
        }
    }

    /// Runs until `shutdown` turns true, then waits for attempts in flight
    /// (up to the delivery timeout) before returning.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut advanced = self.clock.on_advance();
        let mut tasks = JoinSet::new();
        let mut swept = std::time::Instant::now();
        // Parked deliveries are looked at when a probe falls due, and at
        // most every UNPARK_EVERY otherwise (a breaker closed by a success
        // in flight): not at every turn, which under load is every attempt.
        let mut unparked_at = std::time::Instant::now();
        let mut next_probe: Option<Millis> = None;
        loop {
            if swept.elapsed() >= SWEEP_EVERY {
                self.client.sweep();
                swept = std::time::Instant::now();
            }
            let now = self.clock.now_ms();
            let mut unparked = Vec::new();
            if unparked_at.elapsed() >= UNPARK_EVERY || next_probe.is_some_and(|at| at <= now) {
                unparked_at = std::time::Instant::now();
                (unparked, next_probe) = self.take_unparked(now);
            }
            for job in self.take_due(now).into_iter().chain(unparked) {
                self.dispatch(job, &mut tasks);
            }
            while tasks.try_join_next().is_some() {}
            // Sleep until the next due time or probe, a new delivery, a
            // clock advance, or shutdown. Real time is capped so that a long
            // sleep notices a clock set forward by the system.
            let next = match (self.oldest_due(), next_probe) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Something parked since the last look: look again soon.
            let any_parked = !lock(&self.parked).is_empty();
            let longest = if any_parked {
                UNPARK_EVERY
            } else {
                Duration::from_secs(60)
            };
            let sleep = match next {
                Some(due) => Duration::from_millis(u64::try_from(due - now).unwrap_or(0)),
                None => longest,
            }
            .min(longest);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = advanced.changed() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let grace = self.config.timeout + Duration::from_secs(1);
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    }

    fn take_due(&self, now: Millis) -> Vec<Job> {
        let mut heap = lock(&self.schedule);
        let mut due = Vec::new();
        while heap
            .peek()
            .is_some_and(|Reverse(d)| d.0.delivery.due <= now)
        {
            if let Some(Reverse(Due(job))) = heap.pop() {
                due.push(job);
            }
        }
        shrink(
            &mut *heap,
            BinaryHeap::len,
            BinaryHeap::capacity,
            BinaryHeap::shrink_to,
        );
        due
    }

    /// Starts the job now if its endpoint's lane has room, else queues it there.
    fn dispatch(self: &Arc<Self>, job: Job, tasks: &mut JoinSet<()>) {
        let endpoint_id = job.delivery.endpoint_id;
        {
            let mut lanes = lock(&self.lanes);
            let lane = lanes.entry(endpoint_id).or_default();
            if lane.in_flight >= self.config.per_endpoint_concurrency {
                lane.waiting.push_back(job);
                return;
            }
            lane.in_flight += 1;
        }
        let engine = Arc::clone(self);
        tasks.spawn(async move { engine.run_lane(job).await });
    }

    /// Runs a job, then the jobs that queued behind it in its lane.
    async fn run_lane(self: Arc<Self>, mut job: Job) {
        loop {
            let endpoint_id = job.delivery.endpoint_id;
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                return; // the semaphore is never closed
            };
            match attempt::run(&self, job.clone()).await {
                Next::Retry(retry) => self.enqueue([retry]),
                Next::Done => self.finished(&job),
                Next::Parked => {}
            }
            drop(permit);
            let mut lanes = lock(&self.lanes);
            let Some(lane) = lanes.get_mut(&endpoint_id) else {
                return;
            };
            match lane.waiting.pop_front() {
                Some(next) => {
                    shrink(
                        &mut lane.waiting,
                        VecDeque::len,
                        VecDeque::capacity,
                        VecDeque::shrink_to,
                    );
                    job = next;
                }
                None => {
                    lane.in_flight -= 1;
                    if lane.in_flight == 0 {
                        lanes.remove(&endpoint_id);
                    }
                    return;
                }
            }
        }
    }
}

/// Gives memory back once a queue has drained to a quarter of its capacity:
/// a backlog of a million deliveries must not keep its peak for good.
fn shrink<Q>(
    queue: &mut Q,
    len: impl Fn(&Q) -> usize,
    capacity: impl Fn(&Q) -> usize,
    shrink_to: impl Fn(&mut Q, usize),
) {
    const SMALL: usize = 1024;
    let (len, capacity) = (len(queue), capacity(queue));
    if capacity > SMALL && len < capacity / 4 {
        shrink_to(queue, (len * 2).max(SMALL));
    }
}
