//! `ipn-core`: what the gateway and the merchant agree on, with no I/O.
//!
//! - [`money`]: [`money::Money`] in integer minor units of an ISO 4217
//!   [`money::Currency`]; exact decimal parsing and formatting. No floats.
//! - [`id`]: prefixed typed ids (`evt_…`, `pay_…`, `mer_…`, …).
//! - [`event`], [`payment`], [`subscription`]: the event model of DESIGN §2,
//!   serialized in the documented JSON shape.
//! - [`dialect`]: which of the two wire formats an endpoint speaks.
//! - [`rfc3339_utc`]: serde helpers that write timestamps in UTC (`…Z`).
//! - [`standard`]: the `standard` dialect (Standard Webhooks 1.0): secrets and
//!   keys, signing, verification with the reason a message was refused.
//! - [`paypal`]: the `paypal` dialect (classic IPN): an order- and
//!   byte-preserving form codec, a typed view of received messages, the
//!   encoder from events, postback verification, PayPal's date format.
//!
//! Any Rust program can use this crate alone to verify and read IPNs.
#![deny(clippy::float_arithmetic)]

pub use dialect::Dialect;

pub mod dialect;
pub mod event;
pub mod id;
pub mod money;
pub mod payment;
pub mod paypal;
pub mod rfc3339_utc;
pub mod standard;
pub mod subscription;
