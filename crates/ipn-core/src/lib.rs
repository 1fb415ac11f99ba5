//! `ipn-core`: what the gateway and the merchant agree on, with no I/O.
//!
//! - [`money`]: [`money::Money`] in integer minor units of an ISO 4217
//!   [`money::Currency`]; exact decimal parsing and formatting. No floats.
//! - [`id`]: prefixed typed ids (`evt_…`, `pay_…`, `mer_…`, …).
//! - [`event`], [`payment`], [`subscription`]: the event model (immutable
//!   events carrying the object after the change), serialized in the
//!   documented JSON shape.
//! - [`dialect`]: which of the two wire formats an endpoint speaks.
//! - [`email`]: email addresses, checked with the shop's mailer's parser.
//! - [`rfc3339_utc`]: serde helpers that write timestamps in UTC (`…Z`).
//! - [`standard`]: the `standard` dialect (Standard Webhooks 1.0): secrets and
//!   keys, signing, verification with the reason a message was refused.
//! - [`paypal`]: the `paypal` dialect (classic IPN): an order- and
//!   byte-preserving form codec, a typed view of received messages, the
//!   encoder from events, postback verification, PayPal's date format.
//!
//! Any Rust program can use this crate alone to verify and read IPNs.
//!
//! The test gateway's rules, as pure functions of their inputs (time is an
//! argument, never read from a clock):
//! - [`card`]: card numbers as typed at checkout (never shown in full) and
//!   the table of test cards whose number chooses the outcome.
//! - [`pricing`]: positive amounts, cart totals, the test fee.
//! - [`payment_flow`]: the payment state machine: complete, fail, deny,
//!   refund (partial, repeated), reverse (chargeback), cancel the reversal;
//!   each change with the event it emits.
//! - [`billing`]: the subscription calendar (calendar months, month ends,
//!   leap years) and the retry schedule of failed charges.
#![deny(clippy::float_arithmetic)]

pub use dialect::Dialect;

pub mod billing;
pub mod card;
pub mod dialect;
pub mod email;
pub mod event;
pub mod id;
pub mod money;
pub mod payment;
pub mod payment_flow;
pub mod paypal;
pub mod pricing;
pub mod rfc3339_utc;
pub mod standard;
pub mod subscription;
