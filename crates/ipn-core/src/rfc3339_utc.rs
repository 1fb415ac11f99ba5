//! Serde helpers for RFC 3339 timestamps that are always written in UTC
//! (`…Z`), as DESIGN §2 promises, whatever offset the value holds.
//!
//! Use with `#[serde(with = "ipn_core::rfc3339_utc")]`, or
//! `rfc3339_utc::option` for an `Option<OffsetDateTime>`. Reading accepts any
//! offset and keeps it; only writing converts.

use serde::{Deserializer, Serializer};
use time::{OffsetDateTime, UtcOffset};

/// Writes `at` as RFC 3339 in UTC.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    // A value near the end of year 9999 can leave the representable range
    // when moved to UTC; that is an error, not a panic.
    let utc = at
        .checked_to_offset(UtcOffset::UTC)
        .ok_or_else(|| serde::ser::Error::custom("timestamp out of range in UTC"))?;
    time::serde::rfc3339::serialize(&utc, serializer)
}

/// Reads an RFC 3339 timestamp with any offset.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    time::serde::rfc3339::deserialize(deserializer)
}

/// The same for an optional timestamp (`null` when absent).
pub mod option {
    use serde::{Deserializer, Serialize, Serializer};
    use time::OffsetDateTime;

    /// Writes `Some` as RFC 3339 in UTC, `None` as `null`.
    pub fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Utc<'a>(#[serde(with = "super")] &'a OffsetDateTime);
        at.as_ref().map(Utc).serialize(serializer)
    }

    /// Reads an optional RFC 3339 timestamp with any offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        time::serde::rfc3339::option::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use time::OffsetDateTime;
    use time::macros::datetime;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct At {
        #[serde(with = "super")]
        at: OffsetDateTime,
        #[serde(with = "super::option")]
        maybe: Option<OffsetDateTime>,
    }

    #[test]
    fn other_offsets_are_written_in_utc() {
        let value = At {
            at: datetime!(2026-07-04 20:30:05 +02:00),
            maybe: Some(datetime!(2026-07-05 01:00 +02:00)),
        };
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(
            json,
            r#"{"at":"2026-07-04T18:30:05Z","maybe":"2026-07-04T23:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<At>(&json).unwrap(), value);
        let none = At {
            maybe: None,
            ..value
        };
        let json = serde_json::to_string(&none).unwrap();
        assert!(json.ends_with(r#""maybe":null}"#), "{json}");
        assert_eq!(serde_json::from_str::<At>(&json).unwrap(), none);
    }

    #[test]
    fn a_value_out_of_range_in_utc_is_an_error() {
        let value = At {
            at: datetime!(9999-12-31 23:30 -01:00),
            maybe: None,
        };
        assert!(serde_json::to_string(&value).is_err());
    }
}
