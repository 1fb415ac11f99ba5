//! `ipn-gateway`: the payment gateway and its durable, signed delivery engine.
//!
//! - `app`: starts and stops the whole gateway ([`Gateway`], [`Config`]).
//! - `api/`: the HTTP API, the PayPal postback, health and metrics.
//! - `dashboard/`: the server-rendered dashboard at `/dashboard` (key
//!   sign-in, events, endpoints, payments, subscriptions).
//! - `publish`: an event and its deliveries, committed together, then scheduled.
//! - `writer`: the one thread that writes, committing queued writes together.
//! - `storage/`: the [`storage::Store`] trait and its SQLite implementation.
//! - `delivery/`: the schedule, per-endpoint lanes, attempts, retries, the SSRF guard.
//! - `directory`: merchants and endpoints in memory, for auth and fan-out.
//! - `clock`: real time, or a test clock that `advance` moves forward.
//! - `model`: merchants, endpoints, filters, deliveries, attempts.
//! - `payments`, `subscriptions`: test-mode payments and subscriptions, each
//!   step applied inside the write transaction with its events.
//! - `billing`: the task that bills subscriptions on the gateway clock.
//! - `checkout`: hosted checkout sessions, paid at most once (the customer's
//!   page is `api/checkout_page.rs`).
//! - `metrics`: counters rendered for Prometheus.
//! - `secrets`: the encryption key and the cipher that seals secrets at rest.

pub mod api;
pub mod app;
pub mod billing;
pub mod checkout;
pub mod clock;
pub mod dashboard;
pub mod delivery;
pub mod directory;
pub mod metrics;
pub mod model;
pub mod payments;
pub mod publish;
pub mod secrets;
pub mod storage;
pub mod subscriptions;
pub mod writer;

pub use app::{Config, Database, Gateway, check_admin_key, migrate};
pub use secrets::EncryptionKey;
