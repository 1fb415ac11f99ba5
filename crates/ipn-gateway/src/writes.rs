//! Every change the gateway commits ([`Write`]), and what each does inside
//! the writer's transaction: the domain modules decide (a payment's rules,
//! which endpoints get an event, the answer kept for an Idempotency-Key) and
//! storage loads and saves the rows ([`Tx`]).
//!
//! One thread writes ([`start`], on `ipn_storage`'s writer): it commits
//! whatever has queued up as ONE transaction, so many API calls and attempt
//! results share a commit, and a caller of [`Writer::write`] is answered
//! only after its write committed, which is what lets the API promise
//! durability before it answers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use ipn_core::id::{EndpointId, EventId};
use ipn_storage::{Committer, Linger, Tuning};

pub use ipn_storage::WriteError;

use crate::clock::Millis;
use crate::model::{CheckoutRefusal, CheckoutSession, DisabledReason, Endpoint, Merchant};
use crate::processor::checkout::{self, CheckoutPayment, CheckoutSubscription, Paying};
use crate::processor::payments::{self, PaymentDone, PaymentRefusal, PaymentWrite};
use crate::processor::subscriptions::{
    self, SubscriptionDone, SubscriptionRefusal, SubscriptionWrite,
};
use crate::storage::{
    AttemptDone, IdempotentResponse, Ingested, NewEvent, Scheduled, Store, StoreError, Tx,
};

/// The handle to the writer thread; cheap to clone.
pub type Writer = ipn_storage::Writer<WriteRequest, Written>;

/// How the gateway's writer groups writes: up to 2,048 in a transaction;
/// once busy (8 or more in a batch), each batch waits 100 µs for more unless
/// it holds 256 already.
const TUNING: Tuning = Tuning {
    max_batch: 2048,
    queue: 16 * 1024,
    linger: Some(Linger {
        busy: 8,
        full: 256,
        wait: Duration::from_micros(100),
    }),
};

/// Starts the writer thread on `store`. It stops once every handle is
/// dropped and the queue is drained; join the returned handle to wait.
pub fn start(store: Arc<dyn Store>) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
    Writer::start("ipn-writer", TUNING, Commit { store })
}

struct Commit {
    store: Arc<dyn Store>,
}

impl Committer for Commit {
    type Work = WriteRequest;
    type Done = Written;

    fn commit(
        &mut self,
        batch: &[WriteRequest],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        commit(self.store.as_ref(), batch)
    }
}

/// One change, applied inside the writer's batch transaction.
#[derive(Debug)]
pub enum Write {
    CreateMerchant(Merchant),
    /// Inserts or replaces an endpoint.
    SaveEndpoint(Endpoint),
    /// Records an event and one pending delivery per endpoint.
    Ingest(NewEvent),
    /// Records an attempt's outcome and moves its delivery on.
    AttemptDone(AttemptDone),
    /// Puts deliveries of an event back to pending, due now; creates the
    /// delivery for an endpoint that never had one.
    Resend {
        event_id: EventId,
        endpoint_ids: Vec<EndpointId>,
        now: Millis,
    },
    /// Puts an endpoint's failed deliveries of events created at or after
    /// `since` back to pending, due now.
    Recover {
        endpoint_id: EndpointId,
        since: Millis,
        now: Millis,
    },
    /// Changes nothing but the request's Idempotency-Key (for requests whose
    /// effect is already committed, or has nothing to commit).
    Remember,
    /// Records the test clock's offset (it only ever grows).
    SaveClockOffset(Millis),
    /// A payment operation: reads the payment, applies the change, writes the
    /// payment rows and records the events with their deliveries.
    Payment(Box<PaymentWrite>),
    /// Records a new checkout session.
    CreateCheckoutSession(Box<CheckoutSession>),
    /// Pays an open checkout session: the payment's create operation, and
    /// the session marked paid with it, in this one transaction.
    CheckoutPayment(Box<CheckoutPayment>),
    /// Pays an open subscription-mode checkout session: the subscription's
    /// signup, and the session marked paid with it, in this one transaction.
    CheckoutSubscription(Box<CheckoutSubscription>),
    /// A subscription step (signup, billing, cancel, new card), the same way.
    Subscription(Box<SubscriptionWrite>),
    /// Disables an endpoint and fails its pending deliveries.
    DisableEndpoint {
        endpoint_id: EndpointId,
        reason: DisabledReason,
        now: Millis,
    },
}

/// A write with its Idempotency-Key, when the API request had one.
#[derive(Debug)]
pub struct WriteRequest {
    pub write: Write,
    pub idempotency: Option<IdempotencyKey>,
}

/// A request's Idempotency-Key, and the answer to keep under it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// `admin` or the merchant id: keys are per caller.
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    /// The answer to keep; `None` to keep the write's own answer (the
    /// event's body for an ingest; what `respond` renders for a payment or
    /// subscription step).
    pub response: Option<IdempotentResponse>,
    pub now: Millis,
}

/// What a batch did for one write.
#[derive(Debug)]
pub enum Written {
    Done,
    Ingested(Ingested),
    /// Deliveries (re)scheduled by a resend or recover.
    Scheduled(Vec<Scheduled>),
    /// The Idempotency-Key was used before: the first answer, not re-applied.
    Replay(IdempotentResponse),
    /// A payment operation was applied.
    Payment(PaymentDone),
    /// A payment operation was refused; nothing changed.
    PaymentRefused(PaymentRefusal),
    /// A checkout session could not be paid (unknown, paid, expired);
    /// nothing changed.
    CheckoutRefused(CheckoutRefusal),
    /// A subscription step was applied.
    Subscription(Box<SubscriptionDone>),
    /// A subscription step was refused; nothing changed.
    SubscriptionRefused(SubscriptionRefusal),
}

/// Applies a batch in one transaction of `store`, one result per request, in
/// order: a failing request rolls back alone (its result is the error); a
/// failing commit fails the whole batch.
pub fn commit(
    store: &dyn Store,
    batch: &[WriteRequest],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut written: Vec<Option<Written>> = batch.iter().map(|_| None).collect();
    let results = store.write_batch(batch.len(), &mut |tx, index| {
        written[index] = Some(apply_one(tx, &batch[index])?);
        Ok(())
    })?;
    Ok(results
        .into_iter()
        .zip(written)
        .map(|(result, written)| {
            result.and_then(|()| written.ok_or_else(|| anyhow!("a committed write has no result")))
        })
        .collect())
}

/// A request: the first answer if its Idempotency-Key was used, else its
/// write, with the answer kept under the key.
fn apply_one(tx: &dyn Tx, request: &WriteRequest) -> Result<Written, StoreError> {
    if let Some(key) = &request.idempotency
        && let Some(first) = tx.idempotent_response(&key.scope, &key.key)?
    {
        return Ok(Written::Replay(first));
    }
    let written = apply(tx, &request.write)?;
    if let Some(key) = &request.idempotency {
        let answer = answer(key, &request.write, &written)?;
        tx.save_idempotent(&key.scope, &key.key, &answer, key.now)?;
    }
    Ok(written)
}

/// The answer kept for an Idempotency-Key: the one given, or else the
/// write's own (the event's body; what the API renders for its outcome).
fn answer(
    key: &IdempotencyKey,
    write: &Write,
    written: &Written,
) -> Result<IdempotentResponse, StoreError> {
    let (status, body) = match (&key.response, written, write) {
        (Some(response), _, _) => return Ok(response.clone()),
        (None, Written::Ingested(ingested), _) => (201, ingested.body.to_vec()),
        (None, Written::Payment(done), Write::Payment(w)) => (w.respond)(Ok(done)),
        (None, Written::PaymentRefused(refusal), Write::Payment(w)) => (w.respond)(Err(refusal)),
        (None, Written::Subscription(done), Write::Subscription(w)) if w.respond.is_some() => w
            .respond
            .map_or_else(Default::default, |respond| respond(Ok(done.as_ref()))),
        (None, Written::SubscriptionRefused(refusal), Write::Subscription(w))
            if w.respond.is_some() =>
        {
            w.respond
                .map_or_else(Default::default, |respond| respond(Err(refusal)))
        }
        (None, _, _) => return Err(anyhow!("no response to store for idempotency key")),
    };
    Ok(IdempotentResponse {
        request_hash: key.request_hash.clone(),
        status,
        body,
    })
}

/// What one write does, through the transaction.
fn apply(tx: &dyn Tx, write: &Write) -> Result<Written, StoreError> {
    Ok(match write {
        Write::CreateMerchant(merchant) => {
            tx.create_merchant(merchant)?;
            Written::Done
        }
        Write::SaveEndpoint(endpoint) => {
            tx.save_endpoint(endpoint)?;
            Written::Done
        }
        Write::Ingest(new) => Written::Ingested(tx.insert_event(new)?),
        Write::AttemptDone(done) => {
            tx.record_attempt(done)?;
            Written::Done
        }
        Write::Resend {
            event_id,
            endpoint_ids,
            now,
        } => Written::Scheduled(tx.resend(*event_id, endpoint_ids, *now)?),
        Write::Recover {
            endpoint_id,
            since,
            now,
        } => Written::Scheduled(tx.recover(*endpoint_id, *since, *now)?),
        Write::Remember => Written::Done,
        Write::SaveClockOffset(offset) => {
            tx.save_clock_offset(*offset)?;
            Written::Done
        }
        Write::Payment(write) => payment(payments::commit(tx, write)?),
        Write::CreateCheckoutSession(session) => {
            tx.create_checkout_session(session)?;
            Written::Done
        }
        Write::CheckoutPayment(write) => match checkout::pay(tx, write)? {
            Paying::Ran(outcome) => payment(outcome),
            Paying::Refused(refusal) => Written::CheckoutRefused(refusal),
        },
        Write::CheckoutSubscription(write) => match checkout::subscribe(tx, write)? {
            Paying::Ran(outcome) => subscription(outcome),
            Paying::Refused(refusal) => Written::CheckoutRefused(refusal),
        },
        Write::Subscription(write) => subscription(subscriptions::commit(tx, write)?),
        Write::DisableEndpoint {
            endpoint_id,
            reason,
            now,
        } => {
            tx.disable_endpoint(*endpoint_id, *reason, *now)?;
            Written::Done
        }
    })
}

fn payment(outcome: Result<PaymentDone, PaymentRefusal>) -> Written {
    match outcome {
        Ok(done) => Written::Payment(done),
        Err(refusal) => Written::PaymentRefused(refusal),
    }
}

fn subscription(outcome: Result<SubscriptionDone, SubscriptionRefusal>) -> Written {
    match outcome {
        Ok(done) => Written::Subscription(Box::new(done)),
        Err(refusal) => Written::SubscriptionRefused(refusal),
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use ipn_core::id::MerchantId;

    fn merchant(key: &str) -> Merchant {
        Merchant {
            id: MerchantId::generate(OffsetDateTime::now_utc()),
            name: key.to_owned(),
            receiver_email: format!("{key}@example.com"),
            api_key_hash: key.to_owned(),
            created_at: 0,
        }
    }

    fn request(write: Write) -> WriteRequest {
        WriteRequest {
            write,
            idempotency: None,
        }
    }

    #[test]
    fn a_failing_request_rolls_back_alone_and_the_rest_of_the_batch_commits() {
        crate::storage::testing::each_store(
            "a_failing_request_rolls_back_alone_and_the_rest_of_the_batch_commits",
            |store| {
                let first = merchant("a");
                let mut clash = merchant("b");
                clash.id = first.id; // same primary key: this insert fails
                let results = commit(
                    store,
                    &[
                        request(Write::CreateMerchant(first)),
                        request(Write::CreateMerchant(clash)),
                        request(Write::CreateMerchant(merchant("c"))),
                    ],
                )
                .unwrap();
                assert!(results[0].is_ok());
                assert!(results[1].is_err());
                assert!(results[2].is_ok());
                let names: Vec<String> = store
                    .merchants()
                    .unwrap()
                    .into_iter()
                    .map(|m| m.name)
                    .collect();
                assert_eq!(names.len(), 2);
                assert!(names.contains(&"a".to_owned()) && names.contains(&"c".to_owned()));
            },
        );
    }
}
