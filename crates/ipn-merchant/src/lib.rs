//! `ipn-merchant`: the merchant server. It receives IPNs from the gateway,
//! verifies what can be verified at once, and stores every accepted message
//! durably in an inbox BEFORE answering 2xx, so processing can happen
//! afterwards without ever timing the gateway out; its notification handler
//! then applies each to the shop's orders exactly once in effect.
//!
//! - `app`: starts and stops the server ([`Merchant`]); `config`: its
//!   settings ([`Config`]), checked at start.
//! - `receiver/`: the HTTP routes: `POST /webhooks` (standard dialect,
//!   verified before anything is stored), `POST /ipn` (PayPal dialect, stored
//!   raw and `unverified` until a postback says otherwise), `GET /healthz`.
//! - `verify/`: the postback worker, which asks the gateway about each
//!   PayPal message and has the writer record `verified` or `invalid`.
//! - `writer`: the one thread that writes: group commit of everything the
//!   receivers, workers, shop and admin send it, then the handler's pass.
//! - `handler/`: the notification handler: a message's notice, its order's
//!   state, subscriptions, downloads granted and emails queued.
//! - `mail/`: the emails' templates and the worker that sends them.
//! - `downloads/`: download grants, their signed links and their route.
//! - `reconcile`: the worker that reads the gateway's event list after a
//!   cursor, so a lost IPN is applied all the same.
//! - `shop/`: the JSON API (products, orders, subscriptions) and the
//!   gateway's checkout; `pages/`: the catalog, order and admin pages;
//!   `catalog`: the products on sale, checked at start.
//! - `storage/`: every SQL statement, behind an interface in the merchant's
//!   own words (`sqlite/` and `postgres/` implement it); `model`: the plain
//!   types that storage and the rest share; `clock`: the shop's time.

pub mod app;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod downloads;
pub mod handler;
pub mod mail;
pub mod model;
pub mod pages;
pub mod receiver;
pub mod reconcile;
pub mod shop;
pub mod storage;
pub mod verify;
pub mod writer;

pub use app::Merchant;
pub use catalog::{Catalog, CatalogError, Product};
pub use config::{Config, GatewayKey, Hidden, OrderLimit, parse_database_url};
pub use storage::Database;
