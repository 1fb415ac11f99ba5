//! Events: immutable records of a state change (DESIGN §2).
//!
//! An event's `data` is the object after the change, tagged with `object`
//! (`"payment"` or `"subscription"`). Platforms using the gateway only as a
//! delivery engine may ingest their own types (`namespace.name`): their data
//! is kept as the JSON it was given, so it survives a round trip untouched.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::id::EventId;
use crate::payment::Payment;
use crate::subscription::Subscription;

/// One event, exactly as it is delivered in the `standard` dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub livemode: bool,
    /// Position among the events of the same root object (payment with its
    /// refunds, subscription with its period payments), from 1.
    pub sequence: u64,
    pub data: EventData,
}

/// The object an event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventData {
    Payment(Box<Payment>),
    Subscription(Box<Subscription>),
    /// Data of a platform-defined type, as ingested.
    Other(Value),
}

/// Which object a known event type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Payment,
    Subscription,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Subscription => "subscription",
        }
    }
}

macro_rules! event_types {
    ($($variant:ident => $name:literal, $object:ident;)*) => {
        /// An event type: one of DESIGN §2's, or a platform's own.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)*
            /// A platform-defined `namespace.name` type.
            Other(String),
        }

        impl EventType {
            /// Every type the gateway itself emits.
            pub const KNOWN: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Other(name) => name,
                }
            }

            /// The object a known type carries; `None` for platform types.
            pub fn object(&self) -> Option<ObjectKind> {
                match self {
                    $(Self::$variant => Some(ObjectKind::$object),)*
                    Self::Other(_) => None,
                }
            }

            fn known(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    PaymentPending => "payment.pending", Payment;
    PaymentCompleted => "payment.completed", Payment;
    PaymentFailed => "payment.failed", Payment;
    PaymentDenied => "payment.denied", Payment;
    PaymentRefunded => "payment.refunded", Payment;
    PaymentReversed => "payment.reversed", Payment;
    PaymentReversalCanceled => "payment.reversal_canceled", Payment;
    SubscriptionCreated => "subscription.created", Subscription;
    SubscriptionPayment => "subscription.payment", Payment;
    SubscriptionPaymentFailed => "subscription.payment_failed", Subscription;
    SubscriptionCanceled => "subscription.canceled", Subscription;
    SubscriptionExpired => "subscription.expired", Subscription;
}

/// Namespaces whose types only the gateway defines: an unknown name there is
/// a typo, not a platform type.
const RESERVED_NAMESPACES: &[&str] = &["payment", "subscription", "endpoint", "ipn"];

/// Longest accepted type name.
const MAX_TYPE_LEN: usize = 100;

/// Why a string is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error(
        "event type {0:?} must be dot-separated lowercase words (a-z, 0-9, _), like \"invoice.paid\""
    )]
    Malformed(String),
    #[error("event type {0:?} is longer than {MAX_TYPE_LEN} characters")]
    TooLong(String),
    #[error(
        "unknown event type {name:?}: the {namespace:?} namespace is reserved for the gateway's own types"
    )]
    Reserved { name: String, namespace: String },
}

impl EventType {
    pub fn parse(name: &str) -> Result<Self, EventTypeError> {
        if let Some(known) = Self::known(name) {
            return Ok(known);
        }
        if name.len() > MAX_TYPE_LEN {
            return Err(EventTypeError::TooLong(name.to_owned()));
        }
        let word_ok = |w: &str| {
            !w.is_empty()
                && w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !name.contains('.') || !name.split('.').all(word_ok) {
            return Err(EventTypeError::Malformed(name.to_owned()));
        }
        let namespace = name.split('.').next().unwrap_or_default();
        if RESERVED_NAMESPACES.contains(&namespace) {
            return Err(EventTypeError::Reserved {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
        Ok(Self::Other(name.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;
    fn from_str(s: &str) -> Result<Self, EventTypeError> {
        Self::parse(s)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The wire shape of known objects: the object's fields plus `"object"`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
enum Tagged<P, S> {
    Payment(P),
    Subscription(S),
}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Payment(p) => Tagged::<_, ()>::Payment(p).serialize(serializer),
            Self::Subscription(s) => Tagged::<(), _>::Subscription(s).serialize(serializer),
            Self::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            id: EventId,
            #[serde(rename = "type")]
            event_type: EventType,
            #[serde(with = "time::serde::rfc3339")]
            created_at: OffsetDateTime,
            livemode: bool,
            sequence: u64,
            data: Value,
        }
        let raw = Raw::deserialize(deserializer)?;
        let data =
            EventData::from_value(&raw.event_type, raw.data).map_err(serde::de::Error::custom)?;
        Ok(Event {
            id: raw.id,
            event_type: raw.event_type,
            created_at: raw.created_at,
            livemode: raw.livemode,
            sequence: raw.sequence,
            data,
        })
    }
}

impl EventData {
    /// Reads the data of an event of the given type: a known type must carry
    /// its object, a platform type carries any JSON.
    pub fn from_value(event_type: &EventType, value: Value) -> Result<Self, String> {
        let Some(expected) = event_type.object() else {
            return Ok(Self::Other(value));
        };
        let tagged: Tagged<Payment, Subscription> = serde_json::from_value(value)
            .map_err(|e| format!("data of a {event_type} event: {e}"))?;
        let data = match tagged {
            Tagged::Payment(p) => Self::Payment(Box::new(p)),
            Tagged::Subscription(s) => Self::Subscription(Box::new(s)),
        };
        if data.object() != Some(expected) {
            return Err(format!(
                "data of a {event_type} event must be a {} object",
                expected.as_str()
            ));
        }
        Ok(data)
    }

    pub fn object(&self) -> Option<ObjectKind> {
        match self {
            Self::Payment(_) => Some(ObjectKind::Payment),
            Self::Subscription(_) => Some(ObjectKind::Subscription),
            Self::Other(_) => None,
        }
    }

    pub fn as_payment(&self) -> Option<&Payment> {
        match self {
            Self::Payment(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_subscription(&self) -> Option<&Subscription> {
        match self {
            Self::Subscription(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_parses_to_itself() {
        for t in EventType::KNOWN {
            assert_eq!(EventType::parse(t.as_str()).as_ref(), Ok(t));
            assert!(t.object().is_some());
        }
        assert_eq!(EventType::KNOWN.len(), 12);
    }

    #[test]
    fn platform_types_are_namespaced_lowercase_words() {
        for ok in ["invoice.paid", "acme.order.shipped", "a1.b_2"] {
            assert_eq!(
                EventType::parse(ok),
                Ok(EventType::Other(ok.into())),
                "{ok}"
            );
        }
        for bad in [
            "",
            "invoice",
            "Invoice.paid",
            "invoice..paid",
            ".paid",
            "invoice.",
            "invoice.paid!",
            "1nvoice.paid",
            "invoice.pa id",
            "ïnvoice.paid",
        ] {
            assert!(
                matches!(EventType::parse(bad), Err(EventTypeError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            EventType::parse(&format!("a.{}", "b".repeat(100))),
            Err(EventTypeError::TooLong(_))
        ));
        assert!(matches!(
            EventType::parse("payment.complete"),
            Err(EventTypeError::Reserved { .. })
        ));
    }
}
