//! The gateway's own records: merchants, endpoints, deliveries and attempts,
//! and the rules that belong to them (which events an endpoint subscribes to,
//! which secrets sign its messages); payments, subscriptions and checkout
//! sessions as stored (`payment`, `subscription`, `checkout`). Storage loads
//! and saves these; the modules above decide what happens to them.

mod checkout;
mod payment;
mod subscription;

use std::fmt;

use ipn_core::Dialect;
use ipn_core::event::EventType;
use ipn_core::id::{EndpointId, EventId, MerchantId};
use ipn_core::standard::{Signer, WebhookSecret};
use serde::{Deserialize, Serialize};

#[cfg(test)]
pub(crate) use checkout::sample as checkout_sample;
pub use checkout::{CheckoutRefusal, CheckoutSession, PaidBy, RETURN_PARAMETER, SessionStatus};
pub use payment::{PaymentMethod, StoredPayment};
pub use subscription::StoredSubscription;

use crate::clock::Millis;

/// How long a rotated-out secret keeps signing, so receivers can switch over.
pub const ROTATION_OVERLAP_MS: Millis = 24 * 3600 * 1000;

/// A merchant account.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub receiver_email: String,
    /// SHA-256 of the API key, hex; the key itself is never stored.
    pub api_key_hash: String,
    pub created_at: Millis,
}

/// A merchant's webhook endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub merchant_id: MerchantId,
    pub url: String,
    pub dialect: Dialect,
    pub filter: EventFilter,
    /// Deliver one event at a time per payment or subscription, in order.
    pub ordered: bool,
    pub description: String,
    pub secret: WebhookSecret,
    /// The secret before the last rotation, signing too until `expires`.
    pub previous_secret: Option<(WebhookSecret, Millis)>,
    pub disabled: Option<Disabled>,
    /// Start of the current run of failed attempts, if the last one failed.
    pub failing_since: Option<Millis>,
    pub created_at: Millis,
}

impl Endpoint {
    pub fn is_enabled(&self) -> bool {
        self.disabled.is_none()
    }

    /// Whether this endpoint gets events of this type.
    pub fn wants(&self, event_type: &EventType) -> bool {
        if self.dialect == Dialect::Paypal && !event_type.has_paypal_form() {
            return false; // PayPal's IPN vocabulary has no word for other types
        }
        self.filter.matches(event_type)
    }

    /// The keys that sign a message sent at `now`: the current secret, and
    /// the previous one during the rotation overlap.
    pub fn signers(&self, now: Millis) -> Vec<Signer> {
        let mut signers = vec![Signer::Secret(self.secret.clone())];
        if let Some((previous, expires)) = &self.previous_secret
            && now < *expires
        {
            signers.push(Signer::Secret(previous.clone()));
        }
        signers
    }
}

/// Why and when an endpoint was disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    pub reason: DisabledReason,
    pub at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// The merchant (or an operator) disabled it.
    Manual,
    /// The endpoint answered 410 Gone.
    Gone,
    /// Every attempt failed for five days.
    Failing,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "manual" => Some(Self::Manual),
            "gone" => Some(Self::Gone),
            "failing" => Some(Self::Failing),
            _ => None,
        }
    }
}

/// The event types an endpoint subscribes to: exact names, `namespace.*`
/// wildcards, or `*`. An empty filter means every event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter(Vec<Pattern>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    All,
    Exact(EventType),
    /// `namespace.` (with the dot) for `namespace.*`.
    Prefix(String),
}

/// A filter entry that is neither a type, a `namespace.*` wildcard, nor `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("events filter entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error(
        "a paypal endpoint receives only payment and subscription events; {entry:?} has no PayPal IPN form"
    )]
    NotPaypal { entry: String },
}

impl EventFilter {
    pub fn parse(entries: &[String], dialect: Dialect) -> Result<Self, FilterError> {
        let patterns = entries
            .iter()
            .map(|entry| parse_pattern(entry, dialect))
            .collect::<Result<_, _>>()?;
        Ok(Self(patterns))
    }

    pub fn matches(&self, event_type: &EventType) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| match p {
                Pattern::All => true,
                Pattern::Exact(t) => t == event_type,
                Pattern::Prefix(prefix) => event_type.as_str().starts_with(prefix.as_str()),
            })
    }

    /// The entries as given, for storage and the API.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Exact(t) => f.write_str(t.as_str()),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

const PAYPAL_NAMESPACES: &[&str] = &["payment.", "subscription."];
const GATEWAY_NAMESPACES: &[&str] = &["payment.", "subscription.", "endpoint."];

fn parse_pattern(entry: &str, dialect: Dialect) -> Result<Pattern, FilterError> {
    let invalid = |reason: &str| FilterError::Invalid {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let not_paypal = || FilterError::NotPaypal {
        entry: entry.to_owned(),
    };
    if entry == "*" {
        return Ok(Pattern::All);
    }
    if let Some(namespace) = entry.strip_suffix(".*") {
        // Checked as a type name so the namespace follows the same rules.
        let probe = format!("{namespace}.x");
        let prefix = format!("{namespace}.");
        if !GATEWAY_NAMESPACES.contains(&prefix.as_str()) {
            EventType::parse(&probe).map_err(|e| invalid(&e.to_string()))?;
        }
        if dialect == Dialect::Paypal && !PAYPAL_NAMESPACES.contains(&prefix.as_str()) {
            return Err(not_paypal());
        }
        return Ok(Pattern::Prefix(prefix));
    }
    if entry.contains('*') {
        return Err(invalid(
            "wildcards are allowed only as \"namespace.*\" or \"*\"",
        ));
    }
    let event_type = EventType::parse(entry).map_err(|e| invalid(&e.to_string()))?;
    if dialect == Dialect::Paypal && !event_type.has_paypal_form() {
        return Err(not_paypal());
    }
    Ok(Pattern::Exact(event_type))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Delivered,
    /// Every attempt failed, or the endpoint was disabled: dead letter,
    /// recoverable by resend or recover.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Which deliveries an event list asks for (`delivery=` in the API, the
/// dashboard's Delivery filter). A pending delivery whose last attempt
/// failed is *retrying*: failing, with another attempt due. `failed` finds
/// every failing delivery, retrying or dead; `dead` only those with no
/// attempt left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFilter {
    /// Not delivered yet, with an attempt to come (retrying ones included).
    Pending,
    /// Failed at least once, another attempt due.
    Retrying,
    Delivered,
    /// Retrying or dead: every attempt so far failed.
    Failed,
    /// Dead letter: every attempt failed, or the endpoint was disabled.
    Dead,
}

impl DeliveryFilter {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Retrying,
        Self::Delivered,
        Self::Failed,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The refusal for a value that is none of them.
    pub const EXPECTED: &'static str =
        "delivery must be pending, retrying, delivered, failed or dead";
}

/// One attempt to deliver an event to an endpoint, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    /// 1 for the first attempt of this delivery.
    pub number: u32,
    pub status: AttemptStatus,
    pub response_status: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The first KiB of the response body, as text (lossy).
    pub response_body: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: time::OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(entries: &[&str], dialect: Dialect) -> Result<EventFilter, FilterError> {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        EventFilter::parse(&entries, dialect)
    }

    fn t(name: &str) -> EventType {
        EventType::parse(name).unwrap()
    }

    #[test]
    fn wildcards_exact_names_and_empty_filters_match() {
        let f = filter(&["payment.*", "invoice.paid"], Dialect::Standard).unwrap();
        assert!(f.matches(&t("payment.completed")));
        assert!(f.matches(&t("payment.reversal_canceled")));
        assert!(f.matches(&t("invoice.paid")));
        assert!(!f.matches(&t("subscription.created")));
        assert!(!f.matches(&t("invoice.voided")));
        assert!(filter(&[], Dialect::Standard).unwrap().matches(&t("a.b")));
        assert!(
            filter(&["*"], Dialect::Standard)
                .unwrap()
                .matches(&t("a.b"))
        );
        assert_eq!(f.entries(), vec!["payment.*", "invoice.paid"]);
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry() {
        for bad in [
            "payment",
            "pay*",
            "*.completed",
            "Payment.*",
            "payment.complete",
            "",
        ] {
            let err = filter(&[bad], Dialect::Standard).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn paypal_endpoints_take_only_types_with_a_paypal_form() {
        assert!(filter(&["payment.*", "subscription.payment"], Dialect::Paypal).is_ok());
        assert!(filter(&["endpoint.*", "endpoint.disabled"], Dialect::Standard).is_ok());
        for bad in [
            "invoice.paid",
            "invoice.*",
            "endpoint.*",
            "endpoint.disabled",
        ] {
            assert!(matches!(
                filter(&[bad], Dialect::Paypal),
                Err(FilterError::NotPaypal { .. })
            ));
        }
    }
}
