//! Billing: the task that takes each subscription's next step (charge,
//! retry, expire) when the gateway clock reaches it.
//!
//! Due subscriptions come from the store's index on the next step's time,
//! never a scan. Each step is one writer transaction that reads the
//! subscription again and acts only if it is still due (`subscriptions.rs`),
//! so a step is never taken twice, whoever else changed the subscription in
//! between. After a clock advance of months, the loop takes every step that
//! fell due, one cycle at a time, in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ipn_core::id::{MerchantId, SubscriptionId};
use tokio::sync::watch;

use crate::delivery::Engine;
use crate::processor::subscriptions::{SubscriptionChange, SubscriptionRefusal, SubscriptionWrite};
use crate::writes::{Write, WriteRequest, Written};

/// Due subscriptions read at a time.
const BATCH: u32 = 256;
/// Longest sleep: a clock set forward by the system is noticed this soon.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How soon billing looks again after a failure.
const RETRY_SOON: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let mut advanced = engine.clock.on_advance();
    // Steps refused for a reason other than "not due" (a bug or bad data):
    // skipped until restart rather than retried in a busy loop.
    let mut stuck: HashSet<SubscriptionId> = HashSet::new();
    loop {
        let now = engine.clock.now_ms();
        let failed = match take_due_steps(&engine, now, &mut stuck).await {
            Ok(()) => false,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "billing subscriptions");
                true
            }
        };
        let next = {
            let store = Arc::clone(&engine.store);
            tokio::task::spawn_blocking(move || store.next_subscription_step())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        };
        let sleep = match next {
            Some(at) if at > now => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)),
            // Due but not taken: the store failed, or only stuck steps are
            // due. Look again soon, never in a busy loop.
            Some(_) if failed || !stuck.is_empty() => RETRY_SOON,
            Some(_) => Duration::ZERO,
            None => MAX_SLEEP,
        }
        .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = advanced.changed() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Takes every step due at `now`.
async fn take_due_steps(
    engine: &Arc<Engine>,
    now: crate::clock::Millis,
    stuck: &mut HashSet<SubscriptionId>,
) -> anyhow::Result<()> {
    loop {
        let store = Arc::clone(&engine.store);
        // Stuck steps sort among the due ones: read past them.
        let limit = BATCH.saturating_add(u32::try_from(stuck.len()).unwrap_or(u32::MAX));
        let due =
            tokio::task::spawn_blocking(move || store.due_subscriptions(now, limit)).await??;
        let due: Vec<_> = due
            .into_iter()
            .filter(|(_, id)| !stuck.contains(id))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for (merchant, id) in due {
            if let Err(error) = step(engine, merchant, id, now, stuck).await {
                // One subscription's failure must not hold up the others.
                tracing::error!(subscription.id = %id, error = format!("{error:#}"), "billing step failed");
                stuck.insert(id);
            }
        }
    }
}

/// One step of one subscription, committed with its events, whose
/// deliveries are then scheduled.
async fn step(
    engine: &Arc<Engine>,
    merchant_id: MerchantId,
    subscription_id: SubscriptionId,
    now: crate::clock::Millis,
    stuck: &mut HashSet<SubscriptionId>,
) -> anyhow::Result<()> {
    let subscribers = engine.directory.subscribers(merchant_id);
    let write = SubscriptionWrite {
        merchant_id,
        subscription_id,
        change: SubscriptionChange::Advance,
        subscribers,
        now: crate::clock::from_millis(now),
        respond: None,
    };
    let request = WriteRequest {
        write: Write::Subscription(Box::new(write)),
        idempotency: None,
    };
    match engine.writer.write(request).await? {
        Written::Subscription(done) => {
            engine.schedule_events(&done.events);
        }
        Written::SubscriptionRefused(SubscriptionRefusal::NotDue) => {}
        Written::SubscriptionRefused(refusal) => {
            tracing::error!(subscription.id = %subscription_id, %refusal, "billing step refused");
            stuck.insert(subscription_id);
        }
        other => anyhow::bail!("unexpected result of a billing step: {other:?}"),
    }
    Ok(())
}
