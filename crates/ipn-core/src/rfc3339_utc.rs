//! Serde helpers for RFC 3339 timestamps that are always written in UTC
//! (`…Z`), as the wire format promises, whatever offset the value holds.
//!
//! Use with `#[serde(with = "ipn_core::rfc3339_utc")]`, or
//! `rfc3339_utc::option` for an `Option<OffsetDateTime>`. Reading accepts any
//! offset and keeps it; only writing converts. A timestamp that cannot be
//! written in UTC (it leaves years 0000 to 9999 once moved there) is refused
//! when read, so whatever was read can always be written again.

use serde::{Deserializer, Serializer};
use time::{OffsetDateTime, UtcOffset};

/// The error message for a timestamp outside what RFC 3339 writes in UTC.
const OUT_OF_RANGE: &str = "timestamp out of range in UTC (years 0000 to 9999)";

/// `at` in UTC, if RFC 3339 can write it there: its four-digit year is
/// 0000 to 9999.
fn in_utc(at: &OffsetDateTime) -> Option<OffsetDateTime> {
    at.checked_to_offset(UtcOffset::UTC)
        .filter(|utc| (0..=9999).contains(&utc.year()))
}

/// Writes `at` as RFC 3339 in UTC.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    // Reading refuses such values, but one can be built in code: an error,
    // not a panic.
    let utc = in_utc(at).ok_or_else(|| serde::ser::Error::custom(OUT_OF_RANGE))?;
    time::serde::rfc3339::serialize(&utc, serializer)
}

/// Reads an RFC 3339 timestamp with any offset, if it can be written in UTC.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    let at = time::serde::rfc3339::deserialize(deserializer)?;
    match in_utc(&at) {
        Some(_) => Ok(at),
        None => Err(serde::de::Error::custom(OUT_OF_RANGE)),
    }
}

/// The same for an optional timestamp (`null` when absent).
pub mod option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

    /// Reads an optional RFC 3339 timestamp with any offset, if it can be
    /// written in UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Utc(#[serde(with = "super")] OffsetDateTime);
        Ok(Option::<Utc>::deserialize(deserializer)?.map(|Utc(at)| at))
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

    /// Found by the `event_json` fuzz target: an event whose `created_at` is
    /// `0000-01-01T00:00:00+01:00` was read, then could not be written.
    #[test]
    fn what_cannot_be_written_in_utc_is_not_read() {
        for text in [
            "0000-01-01T00:00:00+01:00",
            "0000-01-01T00:59:59.999999999+01:00",
            "9999-12-31T23:30:00-01:00",
            "9999-12-31T23:59:59-00:01",
        ] {
            let json = format!(r#"{{"at":"{text}","maybe":"{text}"}}"#);
            let error = serde_json::from_str::<At>(&json).unwrap_err();
            assert!(
                error.to_string().contains("out of range in UTC"),
                "{text}: {error}"
            );
            let json = format!(r#"{{"at":"2026-01-01T00:00:00Z","maybe":"{text}"}}"#);
            assert!(serde_json::from_str::<At>(&json).is_err(), "{text}");
        }
        // The edges that stay inside year 0000 to 9999 in UTC still read,
        // and write back as the same instant.
        for (text, utc) in [
            ("0000-01-01T01:00:00+01:00", "0000-01-01T00:00:00Z"),
            ("0000-01-01T00:00:00-01:00", "0000-01-01T01:00:00Z"),
            ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59Z"),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999999Z",
            ),
        ] {
            let json = format!(r#"{{"at":"{text}","maybe":null}}"#);
            let value = serde_json::from_str::<At>(&json).unwrap();
            let written = serde_json::to_string(&value).unwrap();
            assert_eq!(written, format!(r#"{{"at":"{utc}","maybe":null}}"#));
            assert_eq!(serde_json::from_str::<At>(&written).unwrap(), value);
        }
    }
}
