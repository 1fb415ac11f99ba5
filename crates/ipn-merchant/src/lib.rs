//! `ipn-merchant`: the merchant server. It receives IPNs from the gateway,
//! verifies what can be verified at once, and stores every accepted message
//! durably in an inbox BEFORE answering 2xx (DESIGN §5), so processing can
//! happen afterwards without ever timing the gateway out.
//!
//! - `app`: starts and stops the server ([`Merchant`], [`Config`]).
//! - `receiver/`: the HTTP routes: `POST /webhooks` (standard dialect,
//!   verified before anything is stored), `POST /ipn` (PayPal dialect, stored
//!   raw and `unverified` until a postback says otherwise), `GET /healthz`.
//! - `storage/`: the SQLite inbox, its migrations, the one writer thread
//!   that commits what the receivers and the postback worker queue, and a
//!   read connection.
//! - `verify/`: the postback worker, which asks the gateway about each
//!   PayPal message and records `verified` or `invalid`.
//! - `catalog`: the products on sale (built-in demo or a JSON file),
//!   checked at start.
//! - `shop/`: the JSON API: `GET /api/products`, `POST /api/orders` (priced
//!   from the catalog, paid through a checkout session at the gateway),
//!   `GET /api/orders/{id}`.
//!
//! These are the first slices of issue 5: receiving, PayPal verification
//! and the shop's orders API. The notification handler (dedupe by
//! `txn_id`, order states), emails, downloads and the HTML pages come next.

pub mod app;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod downloads;
pub mod handler;
pub mod mail;
pub mod pages;
pub mod receiver;
pub mod reconcile;
pub mod shop;
pub mod storage;
pub mod verify;

pub use app::Merchant;
pub use catalog::{Catalog, CatalogError, Product};
pub use config::{Config, GatewayKey, Hidden, OrderLimit, parse_database_url};
