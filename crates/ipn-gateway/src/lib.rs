//! `ipn-gateway`: the payment gateway and its durable, signed delivery engine.
//!
//! From the top down:
//! - `app`: starts and stops the whole gateway ([`Gateway`], [`Config`]).
//! - HTTP: `api/` (the JSON API, the PayPal postback, the customer's
//!   checkout page, health and metrics) and `dashboard/` (the
//!   server-rendered dashboard at `/dashboard`).
//! - `processor/`: the test-mode payment processor: payments,
//!   subscriptions, checkout sessions, and billing on the gateway clock.
//! - `publish`: an event and its deliveries, committed together, then
//!   scheduled; `fanout`: which endpoints get an event.
//! - `writes`: every change the gateway commits, and the one thread that
//!   writes, committing queued writes together.
//! - `delivery/`: the schedule, per-endpoint lanes, attempts, retries, the
//!   SSRF guard.
//! - `storage/`: the [`storage::Store`] and [`storage::Tx`] interfaces and
//!   their SQLite implementation; all of the gateway's SQL is there.
//! - `directory`: merchants and endpoints in memory, for auth and fan-out.
//! - `model/`: merchants, endpoints, filters, deliveries, attempts, and
//!   payments, subscriptions and checkout sessions as stored.
//! - `clock`: real time, or a test clock that `advance` moves forward.
//! - `metrics`: counters rendered for Prometheus.
//! - `secrets`: the encryption key and the cipher that seals secrets at rest.

pub mod api;
pub mod app;
pub mod clock;
pub mod dashboard;
pub mod delivery;
pub mod directory;
pub mod fanout;
pub mod http;
pub mod metrics;
pub mod model;
pub mod processor;
pub mod publish;
pub mod routes;
pub mod secrets;
pub mod storage;
pub mod writes;

pub use app::{Config, Database, Gateway, check_admin_key, migrate};
pub use secrets::EncryptionKey;
