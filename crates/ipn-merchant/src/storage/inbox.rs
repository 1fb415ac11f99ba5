//! The inbox: every accepted message, kept exactly as it arrived. A
//! receiver answers 2xx only after its message is committed here;
//! everything that happens to a message afterwards (its postback, what the
//! handler made of it) is written on its row. Reconciliation's cursor is
//! kept beside it: it moves with the messages it stored.

use ipn_core::Dialect;
use ipn_core::paypal::Answer;

use super::StoreError;

/// The inbox row's id, in arrival order.
pub type InboxId = i64;

/// Where a message stands. `Received` and `Unverified` are where every
/// message starts; a PayPal message then becomes `Verified` or `Invalid`.
/// Once handled it is `processed` (or `failed`, see [`Outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    /// A standard-dialect message whose signature and timestamp verified;
    /// waiting for the notification handler.
    Received,
    /// A PayPal-dialect message, stored before anything checked it; waiting
    /// for its postback to the gateway to say `VERIFIED` or `INVALID`.
    Unverified,
    /// A PayPal-dialect message the gateway answered `VERIFIED` for: it
    /// sent this message, unchanged.
    Verified,
    /// A PayPal-dialect message the gateway answered `INVALID` for: forged
    /// or altered. Kept for audit; never applied to anything.
    Invalid,
}

impl InboxStatus {
    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Unverified => "unverified",
            Self::Verified => "verified",
            Self::Invalid => "invalid",
        }
    }
}

/// A message to put in the inbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub dialect: Dialect,
    /// The verified `webhook-id`: messages with the same one are stored
    /// once. `None` when nothing vouches for the header (PayPal dialect).
    pub webhook_id: Option<String>,
    /// The request headers later steps need (signature headers, content
    /// type), as received.
    pub headers: Vec<(String, String)>,
    /// The body's bytes exactly as received.
    pub body: Vec<u8>,
    pub status: InboxStatus,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
}

/// What storing a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New(InboxId),
    /// A message with this `webhook-id` was stored before, as this row; it
    /// was left as it was.
    Duplicate(InboxId),
}

/// A PayPal message waiting for its postback.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub id: InboxId,
    /// The body exactly as received: what the postback sends back.
    pub body: Vec<u8>,
    /// Postbacks tried so far that got no answer.
    pub attempts: u32,
}

/// What is waiting for a postback.
#[derive(Debug, Clone, Default)]
pub struct PostbacksDue {
    /// Messages due now, oldest first.
    pub rows: Vec<Unverified>,
    /// When none is due: the earliest time one will be (milliseconds since
    /// the Unix epoch), or `None` when no message waits at all.
    pub next_at: Option<i64>,
}

/// What a postback came to, to be recorded on the message's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The gateway answered: the row becomes `verified` or `invalid`.
    Answered {
        id: InboxId,
        answer: Answer,
        /// Milliseconds since the Unix epoch.
        at: i64,
    },
    /// No answer (unreachable, 5xx, timeout, neither word): the row stays
    /// `unverified` until `next_try_at`.
    Failed {
        id: InboxId,
        /// Attempts without an answer, this one included.
        attempts: u32,
        /// Milliseconds since the Unix epoch.
        next_try_at: i64,
        /// Why, for the operator.
        error: String,
    },
}

/// A message waiting for the handler.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: InboxId,
    pub dialect: Dialect,
    pub body: Vec<u8>,
    /// Attempts at it that failed so far.
    pub attempts: u32,
}

/// What handling a message came to, kept on its inbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changed (or confirmed) an order or subscription.
    Applied,
    /// A refund or reversal whose payment is not known yet: recorded, and
    /// it takes effect when the payment arrives.
    Held,
    /// The same notice was applied before (same key).
    Duplicate,
    /// It did not match its order (or named none): the order is flagged,
    /// nothing is marked paid.
    Flagged,
    /// Not about anything this shop tracks.
    Ignored,
    /// It could not be read.
    Rejected,
    /// Handling it kept failing: set aside (status `failed`) until the
    /// operator sends it back.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Held => "held",
            Self::Duplicate => "duplicate",
            Self::Flagged => "flagged",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// What to write on a handled message's row.
#[derive(Debug, Clone, Default)]
pub struct Handled<'a> {
    pub event_type: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub subscription_id: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub trait InboxReads {
    /// Up to `limit` PayPal messages whose postback is due at `now`, oldest
    /// first; if there are none, when the next one is.
    fn postbacks_due(&self, now: i64, limit: usize) -> Result<PostbacksDue, StoreError>;
    /// Up to `limit` messages ready for the handler, oldest first: standard
    /// ones that verified on arrival, PayPal ones whose postback said
    /// `VERIFIED`. One whose handling failed waits until its retry time;
    /// `now` is wall-clock time in ms.
    fn waiting(&self, now: i64, limit: usize) -> Result<Vec<Waiting>, StoreError>;
    /// When the earliest message waiting after a failure is due again.
    fn next_retry(&self) -> Result<Option<i64>, StoreError>;
    /// How many messages are ready for the handler, due or not.
    fn waiting_count(&self) -> Result<u64, StoreError>;
    /// When the handler last handled a message (ms).
    fn last_handled_at(&self) -> Result<Option<i64>, StoreError>;
}

pub trait InboxWrites {
    /// Inserts one message, or finds the row that already holds its
    /// `webhook-id`.
    fn insert_message(&self, message: &NewMessage) -> Result<Stored, StoreError>;
    /// Records a postback's outcome; only a row still `unverified` changes,
    /// so an outcome recorded twice (or for a row settled meanwhile) is
    /// harmless. Returns whether the row changed.
    fn record_postback(&self, outcome: &Verification) -> Result<bool, StoreError>;
    /// Marks a message handled (`processed`, or `failed` for
    /// [`Outcome::Failed`]): it leaves the handler's queue for good.
    fn mark_handled(
        &self,
        id: InboxId,
        outcome: Outcome,
        handled: &Handled<'_>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Records a failed attempt at a message: how many so far, why the last
    /// failed, and when it is due again (wall-clock ms).
    fn record_failure(
        &self,
        id: InboxId,
        attempts: u32,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError>;
    /// Sends a `failed` message back to the handler, as if it had just
    /// arrived; false if it is not a failed one.
    fn requeue(&self, id: InboxId) -> Result<bool, StoreError>;
    /// Updates a handled message's outcome (a held notice that now counted,
    /// or was found not to match).
    fn set_outcome(
        &self,
        id: InboxId,
        outcome: Outcome,
        order_id: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Where reconciliation has read the gateway's events up to. It moves in
/// the transaction that stores the messages it covers.
pub trait CursorReads {
    /// The id of the last event reconciliation stored, if any.
    fn reconcile_cursor(&self) -> Result<Option<String>, StoreError>;
}

pub trait CursorWrites {
    /// Moves reconciliation's cursor to `after`.
    fn save_reconcile_cursor(&self, after: &str, now: i64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
    use crate::storage::testing::{TestStore, each_store};

    fn message(dialect: Dialect, webhook_id: Option<&str>, body: &[u8]) -> NewMessage {
        NewMessage {
            dialect,
            webhook_id: webhook_id.map(str::to_owned),
            headers: vec![("webhook-id".into(), "evt_1".into())],
            body: body.to_vec(),
            status: match dialect {
                Dialect::Standard => InboxStatus::Received,
                Dialect::Paypal => InboxStatus::Unverified,
            },
            received_at: 1,
        }
    }

    fn insert(store: &dyn Store, messages: &[NewMessage]) -> Vec<Stored> {
        store
            .write_with(|tx| {
                messages
                    .iter()
                    .map(|message| tx.insert_message(message))
                    .collect()
            })
            .unwrap()
    }

    fn record(store: &dyn Store, outcome: Verification) -> bool {
        store.write_with(|tx| tx.record_postback(&outcome)).unwrap()
    }

    #[test]
    fn a_webhook_id_is_stored_once_and_none_never_collides() {
        each_store("a_webhook_id_is_stored_once", |store| {
            let stored = insert(
                store,
                &[
                    message(Dialect::Standard, Some("evt_1"), b"a"),
                    message(Dialect::Standard, Some("evt_1"), b"b"),
                    message(Dialect::Standard, None, b"c"),
                    message(Dialect::Standard, None, b"c"),
                ],
            );
            let Stored::New(id) = stored[0] else {
                panic!("{stored:?}")
            };
            assert_eq!(stored[1], Stored::Duplicate(id));
            assert!(matches!(stored[2], Stored::New(_)));
            assert!(matches!(stored[3], Stored::New(_)));
            let waiting = store.read_with(|r| r.waiting(0, 10)).unwrap();
            let bodies: Vec<&[u8]> = waiting.iter().map(|w| w.body.as_slice()).collect();
            assert_eq!(bodies, [b"a".as_slice(), b"c", b"c"]);
        });
    }

    #[test]
    fn a_duplicate_in_a_later_transaction_finds_the_earlier_row() {
        each_store("a_duplicate_in_a_later_transaction", |store| {
            let first = insert(store, &[message(Dialect::Standard, Some("evt_1"), b"a")]);
            let again = insert(store, &[message(Dialect::Standard, Some("evt_1"), b"b")]);
            let Stored::New(id) = first[0] else {
                panic!("{first:?}")
            };
            assert_eq!(again, [Stored::Duplicate(id)]);
        });
    }

    fn paypal_inbox(store: &TestStore) -> Vec<i64> {
        insert(
            store,
            &[b"a=1", b"a=2", b"a=3"].map(|body| message(Dialect::Paypal, None, body)),
        )
        .into_iter()
        .map(|stored| match stored {
            Stored::New(id) => id,
            other => panic!("{other:?}"),
        })
        .collect()
    }

    #[test]
    fn due_postbacks_come_oldest_first_and_backoff_defers_them() {
        each_store("due_postbacks_come_oldest_first", |store| {
            let ids = paypal_inbox(store);
            let due = |now, max| store.read_with(|r| r.postbacks_due(now, max)).unwrap();
            let got: Vec<i64> = due(100, 10).rows.iter().map(|r| r.id).collect();
            assert_eq!(got, ids);
            assert_eq!(due(100, 2).rows.len(), 2);

            for (id, at) in [(ids[0], 500), (ids[1], 300)] {
                assert!(record(
                    store,
                    Verification::Failed {
                        id,
                        attempts: 1,
                        next_try_at: at,
                        error: "refused".into(),
                    }
                ));
            }
            assert!(record(
                store,
                Verification::Answered {
                    id: ids[2],
                    answer: Answer::Invalid,
                    at: 100,
                }
            ));
            let waiting = due(100, 10);
            assert!(waiting.rows.is_empty());
            assert_eq!(waiting.next_at, Some(300));
            let later = due(300, 10);
            assert_eq!(later.rows.len(), 1);
            assert_eq!(later.rows[0].id, ids[1]);
            assert_eq!(later.rows[0].attempts, 1);
        });
    }

    #[test]
    fn a_postback_answer_settles_a_row_once() {
        each_store("a_postback_answer_settles_a_row_once", |store| {
            let ids = paypal_inbox(store);
            let verified = Verification::Answered {
                id: ids[0],
                answer: Answer::Verified,
                at: 42,
            };
            assert!(record(store, verified.clone()));
            assert!(!record(store, verified), "already settled");
            assert!(!record(
                store,
                Verification::Answered {
                    id: ids[0],
                    answer: Answer::Invalid,
                    at: 43,
                }
            ));
            let row = store.texts(&format!(
                "SELECT status, verification, CAST(verified_at AS TEXT) FROM inbox
                 WHERE id = {}",
                ids[0]
            ));
            let some = |text: &str| Some(text.to_owned());
            assert_eq!(row, [[some("verified"), some("VERIFIED"), some("42")]]);
            let ready = store.read_with(|r| r.waiting(0, 10)).unwrap();
            assert_eq!(ready.len(), 1, "verified: ready for the handler");
            assert_eq!((ready[0].id, ready[0].dialect), (ids[0], Dialect::Paypal));
        });
    }

    #[test]
    fn no_waiting_row_means_nothing_to_wake_for() {
        each_store("no_waiting_row_means_nothing_to_wake_for", |store| {
            let waiting = store.read_with(|r| r.postbacks_due(0, 10)).unwrap();
            assert!(waiting.rows.is_empty());
            assert_eq!(waiting.next_at, None);
        });
    }

    #[test]
    fn a_failed_message_waits_for_its_retry_and_can_be_sent_back() {
        each_store("a_failed_message_waits_for_its_retry", |store| {
            let stored = insert(
                store,
                &[
                    message(Dialect::Standard, Some("evt_1"), b"a"),
                    message(Dialect::Standard, Some("evt_2"), b"b"),
                ],
            );
            let [Stored::New(first), Stored::New(second)] = stored[..] else {
                panic!("{stored:?}")
            };
            store
                .write_with(|tx| {
                    tx.record_failure(first, 1, "boom\0", 500)?;
                    let handled = Handled {
                        event_type: Some("payment.succeeded"),
                        order_id: Some("ord_1"),
                        ..Handled::default()
                    };
                    tx.mark_handled(second, Outcome::Failed, &handled, 7)
                })
                .unwrap();
            let ids = |now| -> Vec<i64> {
                store
                    .read_with(move |r| r.waiting(now, 10))
                    .unwrap()
                    .iter()
                    .map(|w| w.id)
                    .collect()
            };
            assert_eq!(ids(499), [] as [i64; 0]);
            assert_eq!(ids(500), [first]);
            assert_eq!(store.read_with(|r| r.next_retry()).unwrap(), Some(500));
            assert_eq!(store.read_with(|r| r.waiting_count()).unwrap(), 1);
            assert_eq!(store.read_with(|r| r.last_handled_at()).unwrap(), Some(7));
            let sent_back = store
                .write_with(|tx| Ok((tx.requeue(second)?, tx.requeue(first)?)))
                .unwrap();
            assert_eq!(sent_back, (true, false), "only a failed one goes back");
            assert_eq!(ids(0), [second]);
        });
    }
}
