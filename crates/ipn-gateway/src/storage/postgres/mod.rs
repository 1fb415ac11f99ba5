//! The PostgreSQL store: one database that several processes could share.
//! One client writes (the writer thread's, through [`Store::write_batch`]);
//! readers take clients from a small pool. Split by what it stores, like
//! `sqlite/`; each file holds that part's SQL and row mapping.
//!
//! Where SQLite relies on its one writer, this store does not: an event's
//! `sequence` comes from a counter row, an Idempotency-Key is claimed by
//! its insert, and the payment, subscription or checkout session a
//! transaction reads is locked (`FOR UPDATE`) until it commits.

mod checkout;
mod dashboard;
mod deliveries;
mod endpoints;
mod events;
mod idempotency;
mod payments;
mod secrets;
mod subscriptions;
mod test_clock;

use anyhow::Context as _;
use ipn_core::id::{CheckoutSessionId, EndpointId, EventId, MerchantId, PaymentId, SubscriptionId};
use ipn_storage::Migration;
use ipn_storage::postgres::{Conn, Readers, WriteConn};

use super::dashboard::{
    DashboardReads, DeliveryRow, EventRow, EventSearch, Health, HistoryRow, ObjectFilter, ObjectRow,
};
use super::{
    ApplyItem, AttemptDone, EventQuery, IdempotentResponse, Ingested, NewEvent, Scheduled, Store,
    StoreError, StoredEvent, Tx,
};
use crate::clock::Millis;
use crate::model::{
    Attempt, CheckoutSession, DisabledReason, Endpoint, Merchant, PaidBy, StoredPayment,
    StoredSubscription,
};
use crate::secrets::EncryptionKey;

/// The schema, one change per file; see `ipn_storage::migrations`.
pub const MIGRATIONS: &[Migration] = ipn_storage::migrations!("../../../migrations/postgres":
    "0001_initial",
);

/// At most this many read clients: each is a server process.
const MAX_READERS: usize = 8;

#[derive(Debug)]
pub struct Postgres {
    /// Seals the secrets it stores and opens them as it reads them.
    key: EncryptionKey,
    writer: WriteConn,
    readers: Readers,
}

impl Postgres {
    /// Connects to the database at `url`, applies migrations, checks that
    /// `key` is this database's key, and on the first start with a key
    /// makes the gateway's own secrets, sealed (see `secrets.rs`).
    pub fn open(url: &str, key: EncryptionKey) -> Result<Self, StoreError> {
        let config = ipn_storage::postgres::parse_url(url)?;
        let conn = ipn_storage::postgres::connect(&config)?;
        ipn_storage::postgres::migrate(&conn, MIGRATIONS)
            .context("migrating the PostgreSQL database")?;
        let sealed = secrets::seal_secrets(&conn, &key).context("opening the gateway database")?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted the secrets stored in plain text");
        }
        Ok(Self {
            key,
            writer: WriteConn::new(config.clone(), conn),
            readers: Readers::new(config, MAX_READERS),
        })
    }

    /// Runs `f` on a read client from the pool.
    fn read<T>(&self, f: impl FnOnce(&Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.readers.read(f).context("reading the gateway database")
    }
}

/// Refuses a URL that does not parse, before anything connects.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    ipn_storage::postgres::parse_url(url).map(drop)
}

/// Applies the schema to the database at `url` and says how many
/// migrations ran. Needs no key: the gateway's first start with a key makes
/// its secrets.
pub fn migrate(url: &str) -> Result<usize, StoreError> {
    let conn = ipn_storage::postgres::connect(&ipn_storage::postgres::parse_url(url)?)?;
    ipn_storage::postgres::migrate(&conn, MIGRATIONS)
}

/// A transaction of the writer: its client, and the key it seals with.
struct PgTx<'a> {
    conn: &'a Conn,
    key: &'a EncryptionKey,
}

impl Store for Postgres {
    fn write_batch(
        &self,
        len: usize,
        apply: &mut ApplyItem<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let items: Vec<usize> = (0..len).collect();
        self.writer.with(|conn| {
            ipn_storage::postgres::apply_batch(conn, &items, |conn, &index| {
                apply(
                    &PgTx {
                        conn,
                        key: &self.key,
                    },
                    index,
                )
            })
        })
    }

    fn merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        self.read(endpoints::merchants)
    }

    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.read(|conn| endpoints::endpoints(conn, &self.key))
    }

    fn pending_deliveries(&self, each: &mut dyn FnMut(Scheduled)) -> Result<usize, StoreError> {
        self.read(|conn| deliveries::pending(conn, each))
    }

    fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.read(|conn| events::event(conn, id))
    }

    fn list_events(&self, query: &EventQuery) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        self.read(|conn| events::list(conn, query))
    }

    fn attempts(&self, event_id: EventId) -> Result<Vec<Attempt>, StoreError> {
        self.read(|conn| deliveries::attempts(conn, event_id))
    }

    fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        self.read(|conn| idempotency::find(conn, scope, key))
    }

    fn payment(
        &self,
        merchant: MerchantId,
        id: PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError> {
        self.read(|conn| payments::find(conn, merchant, id, false))
    }

    fn subscription(
        &self,
        merchant: MerchantId,
        id: SubscriptionId,
    ) -> Result<Option<StoredSubscription>, StoreError> {
        self.read(|conn| subscriptions::find(conn, merchant, id, false))
    }

    fn due_subscriptions(
        &self,
        now: Millis,
        limit: u32,
    ) -> Result<Vec<(MerchantId, SubscriptionId)>, StoreError> {
        self.read(|conn| subscriptions::due(conn, now, limit))
    }

    fn next_subscription_step(&self) -> Result<Option<Millis>, StoreError> {
        self.read(subscriptions::next_step)
    }

    fn object_events(
        &self,
        merchant: MerchantId,
        object_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(|conn| events::of_object(conn, merchant, object_id))
    }

    fn idempotency_hash_key(&self) -> Result<Vec<u8>, StoreError> {
        self.read(|conn| secrets::idempotency_hash_key(conn, &self.key))
    }

    fn clock_offset(&self) -> Result<Millis, StoreError> {
        self.read(test_clock::offset)
    }

    fn paypal_sending(&self, event_id: EventId) -> Result<Option<bool>, StoreError> {
        self.read(|conn| deliveries::paypal_sending(conn, event_id))
    }

    fn checkout_session(
        &self,
        id: CheckoutSessionId,
    ) -> Result<Option<CheckoutSession>, StoreError> {
        self.read(|conn| checkout::find(conn, id, false))
    }
}

impl DashboardReads for Postgres {
    fn event_rows(&self, search: &EventSearch) -> Result<(Vec<EventRow>, bool), StoreError> {
        self.read(|conn| dashboard::events(conn, search))
    }

    fn event_types(&self, merchant: Option<MerchantId>) -> Result<Vec<String>, StoreError> {
        self.read(|conn| dashboard::event_types(conn, merchant))
    }

    fn delivery_rows(&self, event_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        self.read(|conn| dashboard::deliveries(conn, event_id))
    }

    fn endpoint_health(&self, endpoint: EndpointId, since: Millis) -> Result<Health, StoreError> {
        self.read(|conn| dashboard::health(conn, endpoint, since))
    }

    fn payment_rows(&self, filter: &ObjectFilter) -> Result<(Vec<ObjectRow>, bool), StoreError> {
        self.read(|conn| dashboard::payments(conn, filter))
    }

    fn payment_children(&self, payment_id: &str) -> Result<Vec<ObjectRow>, StoreError> {
        self.read(|conn| dashboard::children(conn, payment_id))
    }

    fn payment_merchant(&self, payment_id: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| dashboard::payment_merchant(conn, payment_id))
    }

    fn subscription_rows(
        &self,
        filter: &ObjectFilter,
    ) -> Result<(Vec<ObjectRow>, bool), StoreError> {
        self.read(|conn| dashboard::subscriptions(conn, filter))
    }

    fn subscription_merchant(&self, subscription_id: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| dashboard::subscription_merchant(conn, subscription_id))
    }

    fn subscription_payments(
        &self,
        merchant: &str,
        subscription_id: &str,
    ) -> Result<Vec<ObjectRow>, StoreError> {
        self.read(|conn| dashboard::subscription_payments(conn, merchant, subscription_id))
    }

    fn object_history(
        &self,
        merchant: &str,
        object_id: &str,
        limit: u32,
    ) -> Result<(Vec<HistoryRow>, bool), StoreError> {
        self.read(|conn| dashboard::object_events(conn, merchant, object_id, limit))
    }
}

impl Tx for PgTx<'_> {
    fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        idempotency::find(self.conn, scope, key)
    }

    fn save_idempotent(
        &self,
        scope: &str,
        key: &str,
        answer: &IdempotentResponse,
        now: Millis,
    ) -> Result<(), StoreError> {
        idempotency::save(self.conn, scope, key, answer, now)
    }

    fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        endpoints::create_merchant(self.conn, merchant)
    }

    fn save_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        endpoints::save(self.conn, self.key, endpoint)
    }

    fn disable_endpoint(
        &self,
        id: EndpointId,
        reason: DisabledReason,
        now: Millis,
    ) -> Result<(), StoreError> {
        endpoints::disable(self.conn, id, reason, now)
    }

    fn insert_event(&self, new: &NewEvent) -> Result<Ingested, StoreError> {
        events::insert(self.conn, new)
    }

    fn record_attempt(&self, done: &AttemptDone) -> Result<(), StoreError> {
        deliveries::record_attempt(self.conn, done)
    }

    fn resend(
        &self,
        event_id: EventId,
        endpoint_ids: &[EndpointId],
        now: Millis,
    ) -> Result<Vec<Scheduled>, StoreError> {
        deliveries::resend(self.conn, event_id, endpoint_ids, now)
    }

    fn recover(
        &self,
        endpoint_id: EndpointId,
        since: Millis,
        now: Millis,
    ) -> Result<Vec<Scheduled>, StoreError> {
        deliveries::recover(self.conn, endpoint_id, since, now)
    }

    fn save_clock_offset(&self, offset: Millis) -> Result<(), StoreError> {
        test_clock::save_offset(self.conn, offset)
    }

    fn payment(
        &self,
        merchant: MerchantId,
        id: PaymentId,
    ) -> Result<Option<StoredPayment>, StoreError> {
        payments::find(self.conn, merchant, id, true)
    }

    fn save_payment(&self, row: &StoredPayment) -> Result<(), StoreError> {
        payments::save(self.conn, row)
    }

    fn subscription(
        &self,
        merchant: MerchantId,
        id: SubscriptionId,
    ) -> Result<Option<StoredSubscription>, StoreError> {
        subscriptions::find(self.conn, merchant, id, true)
    }

    fn save_subscription(&self, row: &StoredSubscription) -> Result<(), StoreError> {
        subscriptions::save(self.conn, row)
    }

    fn checkout_session(
        &self,
        id: CheckoutSessionId,
    ) -> Result<Option<CheckoutSession>, StoreError> {
        checkout::find(self.conn, id, true)
    }

    fn create_checkout_session(&self, session: &CheckoutSession) -> Result<(), StoreError> {
        checkout::create(self.conn, session)
    }

    fn mark_checkout_paid(
        &self,
        id: CheckoutSessionId,
        by: PaidBy,
        at: Millis,
    ) -> Result<bool, StoreError> {
        checkout::mark_paid(self.conn, id, by, at)
    }
}

/// A `u32` read from an INTEGER or BIGINT count.
fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).with_context(|| format!("{what} out of range: {value}"))
}

/// A store on a fresh database, and the database (dropped after the
/// store); `None`, said by name, when no server is reachable.
#[cfg(test)]
pub(crate) fn test_store(
    test: &str,
    key: EncryptionKey,
) -> Option<(Postgres, ipn_storage::postgres::TestDatabase)> {
    let database = ipn_storage::postgres::test_database_if_reachable(test)?;
    let store = Postgres::open(database.url(), key).unwrap();
    Some((store, database))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let problems = ipn_storage::migrations::disagreements(&dir, MIGRATIONS).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
