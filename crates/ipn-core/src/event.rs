//! Events: immutable records of a state change, never edited once written.
//!
//! An event's `data` is the object after the change, tagged with `object`
//! (`"payment"`, `"subscription"` or `"endpoint"`). Platforms using the
//! gateway only as a delivery engine may ingest their own types
//! (`namespace.name`): their data is kept as the JSON text it was given, so it
//! is sent on byte for byte (big numbers, `1e2`, key order and all).
//!
//! Ingest is strict and reading is lenient: [`EventType::parse`] refuses an
//! unknown name in the gateway's own namespaces (a typo), while reading an
//! [`Event`] accepts one as [`EventType::Other`] with its data kept raw, so a
//! receiver built on this crate keeps working when a newer gateway adds a type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::id::{EndpointId, EventId};
use crate::payment::Payment;
use crate::subscription::Subscription;

/// One event, exactly as it is delivered in the `standard` dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `evt_…`; also the `webhook-id` header, the same on every retry.
    pub id: EventId,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change happened; written in UTC.
    #[serde(with = "crate::rfc3339_utc")]
    pub created_at: OffsetDateTime,
    /// False for test-mode events.
    pub livemode: bool,
    /// Position among the events of the same root object (payment with its
    /// refunds, subscription with its period payments), from 1.
    pub sequence: u64,
    /// The object after the change.
    pub data: EventData,
}

/// The object an event carries.
///
/// Two `Other` values are equal when their JSON text is identical.
#[derive(Debug, Clone)]
pub enum EventData {
    /// The payment after the change (`payment.*`, `subscription.payment`).
    Payment(Box<Payment>),
    /// The subscription after the change (the other `subscription.*`).
    Subscription(Box<Subscription>),
    /// An endpoint notice from the gateway itself (`endpoint.disabled`).
    Endpoint(Box<EndpointNotice>),
    /// Data of a platform-defined type (or of a gateway type this version
    /// does not know), exactly as received: it is written back byte for byte.
    Other(Box<RawValue>),
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Payment(a), Self::Payment(b)) => a == b,
            (Self::Subscription(a), Self::Subscription(b)) => a == b,
            (Self::Endpoint(a), Self::Endpoint(b)) => a == b,
            (Self::Other(a), Self::Other(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Eq for EventData {}

/// Which object a known event type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A [`Payment`].
    Payment,
    /// A [`Subscription`].
    Subscription,
    /// An [`EndpointNotice`].
    Endpoint,
}

impl ObjectKind {
    /// The `object` tag of its JSON (`"payment"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Subscription => "subscription",
            Self::Endpoint => "endpoint",
        }
    }
}

/// What `endpoint.disabled` says about the endpoint it concerns (sent to the
/// merchant's other endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointNotice {
    /// The endpoint that was disabled.
    pub id: EndpointId,
    /// Its URL, so a person can tell which one it was.
    pub url: String,
    /// `gone` (it answered 410), `failing` (every attempt failed for days), `manual`.
    pub disabled_reason: String,
    /// When it was disabled; written in UTC.
    #[serde(with = "crate::rfc3339_utc")]
    pub disabled_at: OffsetDateTime,
}

macro_rules! event_types {
    ($($variant:ident => $name:literal, $object:ident;)*) => {
        /// An event type: one of the gateway's own (listed below), or a
        /// platform's own.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)*
            /// A platform-defined `namespace.name` type; when read with
            /// [`EventType::parse_lenient`], also a gateway type this version
            /// does not know (`payment.partially_refunded`).
            Other(String),
        }

        impl EventType {
            /// Every type the gateway itself emits.
            pub const KNOWN: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The type's name, as on the wire.
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
    EndpointDisabled => "endpoint.disabled", Endpoint;
}

impl EventType {
    /// Whether the type exists in PayPal's IPN vocabulary: the payment and
    /// subscription types do, `endpoint.*` and platform types do not.
    pub fn has_paypal_form(&self) -> bool {
        matches!(
            self.object(),
            Some(ObjectKind::Payment | ObjectKind::Subscription)
        )
    }
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
    /// Reads a type given to the gateway (ingest, `ipn send --type`): a known
    /// type, or a well-formed name outside the reserved namespaces (`payment`,
    /// `subscription`, `endpoint`, `ipn`), where an unknown name is a typo.
    pub fn parse(name: &str) -> Result<Self, EventTypeError> {
        let parsed = Self::parse_lenient(name)?;
        if let Self::Other(name) = &parsed {
            let namespace = name.split('.').next().unwrap_or_default();
            if RESERVED_NAMESPACES.contains(&namespace) {
                return Err(EventTypeError::Reserved {
                    name: name.clone(),
                    namespace: namespace.to_owned(),
                });
            }
        }
        Ok(parsed)
    }

    /// For reading events a gateway sent: like [`EventType::parse`], but an
    /// unknown well-formed name in a reserved namespace is accepted as
    /// [`EventType::Other`], because a newer gateway may have added it.
    pub fn parse_lenient(name: &str) -> Result<Self, EventTypeError> {
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
        Ok(Self::Other(name.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strict, as [`EventType::parse`].
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

/// Lenient, as [`EventType::parse_lenient`]: what is read was written by a
/// gateway, possibly a newer one.
impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_lenient(&s).map_err(serde::de::Error::custom)
    }
}

/// Why an event's `data` does not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// Not the JSON of the object the type carries (`message` is serde's).
    #[error("data of a {event_type} event: {message}")]
    Invalid { event_type: String, message: String },
    /// A well-formed object of another kind.
    #[error("data of a {event_type} event must be a {expected} object")]
    WrongObject {
        event_type: String,
        expected: &'static str,
    },
    /// Well-formed JSON that does not read back as values (a lone surrogate,
    /// a number beyond a double's range); `message` is serde's.
    #[error("data cannot be read back: {message}")]
    Unreadable { message: String },
    /// Nested deeper than [`MAX_DATA_DEPTH`].
    #[error("data nests deeper than {max} arrays and objects")]
    TooDeep { max: usize },
}

/// How deep new event data may nest arrays and objects: well inside the
/// limit of the JSON parser that reads events back (128, for the whole
/// event), so everything accepted can be shown and delivered.
pub const MAX_DATA_DEPTH: usize = 64;

/// How many arrays and objects deep a value nests (a scalar is 0).
fn depth(value: &serde_json::Value) -> usize {
    // Iterative, so a deep value cannot overflow the stack.
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, level)) = stack.pop() {
        match value {
            serde_json::Value::Array(items) => {
                stack.extend(items.iter().map(|child| (child, level + 1)));
            }
            serde_json::Value::Object(fields) => {
                stack.extend(fields.values().map(|child| (child, level + 1)));
            }
            _ => continue,
        }
        deepest = deepest.max(level + 1);
    }
    deepest
}

/// The wire shape of known objects: the object's fields plus `"object"`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
enum Tagged<P, S, E> {
    Payment(P),
    Subscription(S),
    Endpoint(E),
}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Payment(p) => Tagged::<_, (), ()>::Payment(p).serialize(serializer),
            Self::Subscription(s) => Tagged::<(), _, ()>::Subscription(s).serialize(serializer),
            Self::Endpoint(e) => Tagged::<(), (), _>::Endpoint(e).serialize(serializer),
            Self::Other(raw) => raw.serialize(serializer),
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
            #[serde(with = "crate::rfc3339_utc")]
            created_at: OffsetDateTime,
            livemode: bool,
            sequence: u64,
            data: Box<RawValue>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let data =
            EventData::from_raw(&raw.event_type, raw.data).map_err(serde::de::Error::custom)?;
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
    /// its object; any other type (a platform's, or a gateway type this
    /// version does not know) carries any JSON, kept as its exact text.
    pub fn from_raw(event_type: &EventType, raw: Box<RawValue>) -> Result<Self, DataError> {
        let Some(expected) = event_type.object() else {
            return Ok(Self::Other(raw));
        };
        let tagged: Tagged<Payment, Subscription, EndpointNotice> = serde_json::from_str(raw.get())
            .map_err(|e| DataError::Invalid {
                event_type: event_type.to_string(),
                message: e.to_string(),
            })?;
        let data = match tagged {
            Tagged::Payment(p) => Self::Payment(Box::new(p)),
            Tagged::Subscription(s) => Self::Subscription(Box::new(s)),
            Tagged::Endpoint(e) => Self::Endpoint(Box::new(e)),
        };
        if data.object() != Some(expected) {
            return Err(DataError::WrongObject {
                event_type: event_type.to_string(),
                expected: expected.as_str(),
            });
        }
        Ok(data)
    }

    /// Reads the data of an event being created: as [`EventData::from_raw`],
    /// and data kept as its raw text must also read back as JSON values,
    /// with the parser every reader uses: strings of Unicode scalar values
    /// (no lone surrogate), numbers within a double's range, at most
    /// [`MAX_DATA_DEPTH`] levels deep. (Known objects are read into their
    /// types here already, which checks the same.)
    pub fn parse_new(event_type: &EventType, raw: Box<RawValue>) -> Result<Self, DataError> {
        let data = Self::from_raw(event_type, raw)?;
        if let Self::Other(raw) = &data {
            let value: serde_json::Value =
                serde_json::from_str(raw.get()).map_err(|e| DataError::Unreadable {
                    message: e.to_string(),
                })?;
            if depth(&value) > MAX_DATA_DEPTH {
                return Err(DataError::TooDeep {
                    max: MAX_DATA_DEPTH,
                });
            }
        }
        Ok(data)
    }

    /// The kind of object carried; `None` for [`EventData::Other`].
    pub fn object(&self) -> Option<ObjectKind> {
        match self {
            Self::Payment(_) => Some(ObjectKind::Payment),
            Self::Subscription(_) => Some(ObjectKind::Subscription),
            Self::Endpoint(_) => Some(ObjectKind::Endpoint),
            Self::Other(_) => None,
        }
    }

    /// The payment, if that is what the event carries.
    pub fn as_payment(&self) -> Option<&Payment> {
        match self {
            Self::Payment(p) => Some(p),
            _ => None,
        }
    }

    /// The subscription, if that is what the event carries.
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

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn new_data_must_read_back() {
        let platform = EventType::parse("invoice.paid").unwrap();
        let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
        for ok in [
            r#"{"id": "inv_1", "note": "\ud83d\ude00 ok"}"#.to_owned(),
            "1e308".to_owned(),
            nested(MAX_DATA_DEPTH),
        ] {
            assert!(EventData::parse_new(&platform, raw(&ok)).is_ok(), "{ok}");
        }
        // serde_json's raw values take all of these; its readers do not.
        for (bad, says) in [
            (r#"{"x": "\ud800"}"#.to_owned(), "escape"),
            (r#"{"x": "\udc00\ud800"}"#.to_owned(), "escape"),
            ("1e999".to_owned(), "out of range"),
            (r#"{"x": [-1e400]}"#.to_owned(), "out of range"),
            (nested(MAX_DATA_DEPTH + 1), "deeper than 64"),
            (nested(100_000), "recursion limit"),
        ] {
            let err = EventData::parse_new(&platform, raw(&bad)).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
            // The lenient reader of stored events still takes them.
            assert!(EventData::from_raw(&platform, raw(&bad)).is_ok());
        }
    }

    #[test]
    fn every_known_type_parses_to_itself() {
        for t in EventType::KNOWN {
            assert_eq!(EventType::parse(t.as_str()).as_ref(), Ok(t));
            assert!(t.object().is_some());
        }
        assert_eq!(EventType::KNOWN.len(), 13);
        let paypal = EventType::KNOWN
            .iter()
            .filter(|t| t.has_paypal_form())
            .count();
        assert_eq!(paypal, 12, "7 payment and 5 subscription types");
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

    #[test]
    fn lenient_parsing_accepts_new_gateway_types_but_not_malformed_ones() {
        for name in ["payment.partially_refunded", "ipn.x", "invoice.paid"] {
            assert_eq!(
                EventType::parse_lenient(name),
                Ok(EventType::Other(name.into()))
            );
        }
        for t in EventType::KNOWN {
            assert_eq!(EventType::parse_lenient(t.as_str()).as_ref(), Ok(t));
        }
        assert!(matches!(
            EventType::parse_lenient("Payment.x"),
            Err(EventTypeError::Malformed(_))
        ));
        assert!(matches!(
            EventType::parse_lenient(&format!("payment.{}", "b".repeat(100))),
            Err(EventTypeError::TooLong(_))
        ));
        let read: EventType = serde_json::from_str("\"payment.partially_refunded\"").unwrap();
        assert_eq!(read, EventType::Other("payment.partially_refunded".into()));
        assert!(serde_json::from_str::<EventType>("\"payment\"").is_err());
        assert!(matches!(
            "payment.complete".parse::<EventType>(),
            Err(EventTypeError::Reserved { .. })
        ));
    }
}
