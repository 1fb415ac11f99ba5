//! Prefixed, typed identifiers: `evt_01J…`, `pay_01J…`, `mer_01J…`.
//!
//! Each id is a ULID behind a fixed prefix, so ids sort by creation time and a
//! payment id can never be passed where an event id is expected. The prefix is
//! part of the public wire format, so it never changes: it is checked on parse.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use ulid::Ulid;

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id {input:?} must start with {expected:?}")]
    WrongPrefix {
        input: String,
        expected: &'static str,
    },
    #[error("id {input:?} is not a prefix followed by a 26-character ULID")]
    Malformed { input: String },
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id whose time part is `now`, so ids made later sort later
            /// (to the millisecond; use [`Self::from_ulid`] with a monotonic
            /// generator where order within a millisecond matters).
            pub fn generate(now: OffsetDateTime) -> Self {
                Self(new_ulid(now))
            }

            /// Wraps a ULID made elsewhere (a monotonic generator, storage).
            pub const fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The ULID without its prefix, for storage.
            pub const fn ulid(self) -> Ulid {
                self.0
            }

            /// Reads the textual form: the prefix, then a ULID.
            pub fn parse(input: &str) -> Result<Self, IdError> {
                parse_ulid(input, $prefix).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// An event: also the `webhook-id` header, the same on every retry.
    EventId,
    "evt_"
);
prefixed_id!(
    /// A payment, refund or reversal: the PayPal dialect's `txn_id`.
    PaymentId,
    "pay_"
);
prefixed_id!(
    /// A merchant account at the gateway.
    MerchantId,
    "mer_"
);
prefixed_id!(
    /// A merchant's webhook endpoint.
    EndpointId,
    "ep_"
);
prefixed_id!(
    /// A subscription: the PayPal dialect's `subscr_id`.
    SubscriptionId,
    "sub_"
);
prefixed_id!(
    /// A hosted checkout session.
    CheckoutSessionId,
    "cs_"
);

fn new_ulid(now: OffsetDateTime) -> Ulid {
    // ULIDs hold 48 bits of milliseconds since the epoch; instants before 1970
    // cannot occur on a gateway clock, so they clamp to zero.
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ulid::from_parts(millis, rand::random::<u128>())
}

fn parse_ulid(input: &str, prefix: &'static str) -> Result<Ulid, IdError> {
    let rest = input
        .strip_prefix(prefix)
        .ok_or_else(|| IdError::WrongPrefix {
            input: input.to_owned(),
            expected: prefix,
        })?;
    // Ulid::from_string is lenient (lowercase, the aliases I/L/O, a first
    // character past 7 that overflows 128 bits); an id has one spelling only,
    // since ids are compared and indexed as text, so it must read back as given.
    match Ulid::from_string(rest) {
        Ok(ulid) if ulid.to_string() == rest => Ok(ulid),
        _ => Err(IdError::Malformed {
            input: input.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn generated_ids_round_trip_through_text_and_json() {
        let id = EventId::generate(datetime!(2026-11-25 12:00 UTC));
        let text = id.to_string();
        assert!(text.starts_with("evt_") && text.len() == 30, "{text}");
        assert_eq!(EventId::parse(&text), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
    }

    #[test]
    fn ids_made_later_sort_later() {
        let a = PaymentId::generate(datetime!(2026-11-25 12:00:00.000 UTC));
        let b = PaymentId::generate(datetime!(2026-11-25 12:00:00.001 UTC));
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn parse_refuses_other_kinds_and_garbage() {
        let pay = PaymentId::generate(OffsetDateTime::UNIX_EPOCH).to_string();
        assert!(matches!(
            EventId::parse(&pay),
            Err(IdError::WrongPrefix {
                expected: "evt_",
                ..
            })
        ));
        for bad in [
            "",
            "evt_",
            "evt_123",
            "evt_01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25 chars
            "evt_01ARZ3NDEKTSV4RRFFQ69G5FAVV", // 27 chars
            "evt_01arz3ndektsv4rrffq69g5fav",  // lowercase
            "evt_01ARZ3NDEKTSV4RRFFQ69G5FAU",  // U is not Crockford base32
            "evt_81ARZ3NDEKTSV4RRFFQ69G5FAV",  // overflows 128 bits
            "evt_01ARZ3NDEKTSV4RRFFQ69G5FAO",  // O is an alias of 0
            "evt_01ARZ3NDEKTSV4RRFFQ69G5FÄ",
        ] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(EventId::parse("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
    }

    #[test]
    fn json_with_a_wrong_id_is_refused() {
        let err = serde_json::from_str::<MerchantId>("\"evt_01ARZ3NDEKTSV4RRFFQ69G5FAV\"");
        assert!(err.unwrap_err().to_string().contains("mer_"));
    }
}
