//! PayPal's `payment_date`: `HH:MM:SS Mon DD, YYYY PST` (or `PDT`).
//!
//! PayPal writes Los Angeles local time and says in the suffix which offset was
//! in force (PST = UTC-8, PDT = UTC-7), so parsing needs no time zone data: the
//! suffix alone gives the offset. Formatting must choose the suffix, which needs
//! the US daylight-saving rule; it is computed here from the calendar rather
//! than taken from a tz database.

use time::macros::{offset, time};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

const PST: UtcOffset = offset!(-8);
const PDT: UtcOffset = offset!(-7);

const MONTHS: [(&str, Month); 12] = [
    ("Jan", Month::January),
    ("Feb", Month::February),
    ("Mar", Month::March),
    ("Apr", Month::April),
    ("May", Month::May),
    ("Jun", Month::June),
    ("Jul", Month::July),
    ("Aug", Month::August),
    ("Sep", Month::September),
    ("Oct", Month::October),
    ("Nov", Month::November),
    ("Dec", Month::December),
];

/// Why a string is not a PayPal `payment_date`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("payment date {input:?} is not of the form \"HH:MM:SS Mon DD, YYYY PST\"")]
    Malformed { input: String },
    #[error("unknown month {month:?} in payment date {input:?}")]
    UnknownMonth { input: String, month: String },
    #[error("unknown time zone {zone:?} in payment date {input:?}, expected PST or PDT")]
    UnknownZone { input: String, zone: String },
    #[error("payment date {input:?} is not a valid date and time")]
    OutOfRange { input: String },
}

/// Parses a PayPal `payment_date` into UTC.
///
/// Accepts `HH:MM:SS Mon DD, YYYY PST|PDT` with a two-digit hour, minute and
/// second, an English three-letter month optionally followed by a dot
/// ("Sep."), a one- or two-digit day and a four-digit year; tokens may be
/// separated by any run of ASCII whitespace. Case matters, as PayPal writes
/// it. The suffix decides the offset even where it disagrees with the date
/// (a "PDT" in January is taken at its word).
pub fn parse_payment_date(s: &str) -> Result<OffsetDateTime, DateError> {
    let malformed = || DateError::Malformed {
        input: s.to_owned(),
    };
    let mut tokens = s.split_ascii_whitespace();
    let (Some(clock), Some(month), Some(day), Some(year), Some(zone), None) = (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) else {
        return Err(malformed());
    };

    let mut clock = clock.split(':').map(|part| digits(part, 2, 2));
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second)), None) =
        (clock.next(), clock.next(), clock.next(), clock.next())
    else {
        return Err(malformed());
    };
    let month_name = month.strip_suffix('.').unwrap_or(month);
    let month = MONTHS
        .iter()
        .find(|(name, _)| *name == month_name)
        .map(|&(_, month)| month)
        .ok_or_else(|| DateError::UnknownMonth {
            input: s.to_owned(),
            month: month.to_owned(),
        })?;
    let day = day
        .strip_suffix(',')
        .and_then(|day| digits(day, 1, 2))
        .ok_or_else(malformed)?;
    let year = digits(year, 4, 4).ok_or_else(malformed)?;
    let offset = match zone {
        "PST" => PST,
        "PDT" => PDT,
        _ => {
            return Err(DateError::UnknownZone {
                input: s.to_owned(),
                zone: zone.to_owned(),
            });
        }
    };

    let out_of_range = || DateError::OutOfRange {
        input: s.to_owned(),
    };
    // `digits` caps the widths, so these conversions cannot fail; still no panics.
    let narrow = |n: u32| u8::try_from(n).map_err(|_| out_of_range());
    let year = i32::try_from(year).map_err(|_| out_of_range())?;
    let date = Date::from_calendar_date(year, month, narrow(day)?).map_err(|_| out_of_range())?;
    let time = Time::from_hms(narrow(hour)?, narrow(minute)?, narrow(second)?)
        .map_err(|_| out_of_range())?;
    PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
        .ok_or_else(out_of_range)
}

/// Formats an instant the way PayPal does: Los Angeles local time with the
/// PST or PDT suffix in force at that instant, and a two-digit day
/// ("20:12:59 Jan 13, 2009 PST"). Sub-second precision is dropped.
///
/// Daylight time follows the US rule since 2007 (second Sunday of March to
/// first Sunday of November); earlier years use the 1987–2006 rule (first
/// Sunday of April to last Sunday of October), which is exact from 1987 on.
/// The output parses back with [`parse_payment_date`] for years 0000–9999.
pub fn format_payment_date(at: OffsetDateTime) -> String {
    let (offset, zone) = if is_daylight_time(at) {
        (PDT, "PDT")
    } else {
        (PST, "PST")
    };
    // Only within a day of the `time` crate's year limits is the local time
    // unrepresentable; write the instant in its own offset there rather than panic.
    let local = at.checked_to_offset(offset).unwrap_or(at);
    let month = MONTHS
        .iter()
        .find(|&&(_, month)| month == local.month())
        .map_or("", |&(name, _)| name);
    format!(
        "{:02}:{:02}:{:02} {} {:02}, {:04} {}",
        local.hour(),
        local.minute(),
        local.second(),
        month,
        local.day(),
        local.year(),
        zone
    )
}

/// Whether Los Angeles is on daylight time at `at`.
fn is_daylight_time(at: OffsetDateTime) -> bool {
    // Both transitions are months away from New Year, so the UTC year picks the right pair.
    let year = at
        .checked_to_offset(UtcOffset::UTC)
        .map_or(at.year(), |utc| utc.year());
    daylight_period(year).is_some_and(|(start, end)| start <= at && at < end)
}

/// The UTC instants daylight time starts and ends in `year`: 02:00 local standard
/// time (10:00 UTC) and 02:00 local daylight time (09:00 UTC).
fn daylight_period(year: i32) -> Option<(OffsetDateTime, OffsetDateTime)> {
    // `next_occurrence`/`prev_occurrence` are strictly after/before the given day.
    let (start, end) = if year >= 2007 {
        (
            // Second Sunday of March: the first Sunday after the 7th.
            Date::from_calendar_date(year, Month::March, 7)
                .ok()?
                .next_occurrence(Weekday::Sunday),
            // First Sunday of November.
            Date::from_calendar_date(year, Month::October, 31)
                .ok()?
                .next_occurrence(Weekday::Sunday),
        )
    } else {
        (
            // First Sunday of April.
            Date::from_calendar_date(year, Month::March, 31)
                .ok()?
                .next_occurrence(Weekday::Sunday),
            // Last Sunday of October.
            Date::from_calendar_date(year, Month::November, 1)
                .ok()?
                .prev_occurrence(Weekday::Sunday),
        )
    };
    Some((
        start.with_time(time!(10:00)).assume_utc(),
        end.with_time(time!(09:00)).assume_utc(),
    ))
}

/// `s` as a decimal number of `min..=max` ASCII digits (at most 4, so no overflow).
fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn parses_the_vector() {
        assert_eq!(
            parse_payment_date("20:12:59 Jan 13, 2009 PST"),
            Ok(datetime!(2009-01-14 04:12:59 UTC))
        );
        let parsed = parse_payment_date("20:12:59 Jan 13, 2009 PST").unwrap();
        assert_eq!(parsed.offset(), UtcOffset::UTC);
    }

    #[test]
    fn parses_variants_seen_in_the_wild() {
        let cases = [
            ("10:00:00 Sep. 5, 2026 PDT", datetime!(2026-09-05 17:00 UTC)),
            ("10:00:00 Sep 05, 2026 PDT", datetime!(2026-09-05 17:00 UTC)),
            ("00:00:00 Jan. 1, 2026 PST", datetime!(2026-01-01 08:00 UTC)),
            (
                "23:59:59 Dec 31, 2026 PST",
                datetime!(2027-01-01 07:59:59 UTC),
            ),
            (
                "  01:30:00  Nov 01,  2026 PDT ",
                datetime!(2026-11-01 08:30 UTC),
            ),
            ("01:30:00 Nov 01, 2026 PST", datetime!(2026-11-01 09:30 UTC)),
            ("12:00:00 Feb 29, 2024 PST", datetime!(2024-02-29 20:00 UTC)),
            // The suffix is taken at its word.
            ("12:00:00 Jan 15, 2026 PDT", datetime!(2026-01-15 19:00 UTC)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_payment_date(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_invalid_dates_and_times() {
        for input in [
            "12:00:00 Feb 30, 2026 PST",
            "12:00:00 Feb 29, 2026 PST",
            "12:00:00 Apr 31, 2026 PST",
            "12:00:00 Jan 0, 2026 PST",
            "24:00:00 Jan 13, 2009 PST",
            "12:60:00 Jan 13, 2009 PST",
            "12:00:60 Jan 13, 2009 PST",
        ] {
            assert_eq!(
                parse_payment_date(input),
                Err(DateError::OutOfRange {
                    input: input.into()
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_unknown_months_and_zones() {
        assert_eq!(
            parse_payment_date("20:12:59 Foo 13, 2009 PST"),
            Err(DateError::UnknownMonth {
                input: "20:12:59 Foo 13, 2009 PST".into(),
                month: "Foo".into()
            })
        );
        for month in ["Sept", "jan", "JAN", "January", "Jan..", ".Jan"] {
            let input = format!("20:12:59 {month} 13, 2009 PST");
            assert!(
                matches!(
                    parse_payment_date(&input),
                    Err(DateError::UnknownMonth { .. })
                ),
                "{input}"
            );
        }
        for zone in ["EST", "UTC", "pst", "PT", "GMT-8"] {
            let input = format!("20:12:59 Jan 13, 2009 {zone}");
            assert_eq!(
                parse_payment_date(&input),
                Err(DateError::UnknownZone {
                    input: input.clone(),
                    zone: zone.into()
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            "",
            " ",
            "hello",
            "2009-01-14T04:12:59Z",
            "20:12:59 Jan 13 2009 PST",
            "20:12:59 Jan 13, 2009",
            "20:12:59 Jan 13, 2009 PST extra",
            "20:12 Jan 13, 2009 PST",
            "20:12:59:00 Jan 13, 2009 PST",
            "8:12:59 Jan 13, 2009 PST",
            "+1:12:59 Jan 13, 2009 PST",
            "20:12:59 Jan 013, 2009 PST",
            "20:12:59 Jan +1, 2009 PST",
            "20:12:59 Jan 13, 09 PST",
            "20:12:59 Jan 13, 20090 PST",
            "20:12:59 Jan 13,, 2009 PST",
            "20:12:59 Jan ,, 2009 PST",
            "２0:12:59 Jan 13, 2009 PST",
        ] {
            assert_eq!(
                parse_payment_date(input),
                Err(DateError::Malformed {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            DateError::UnknownZone {
                input: "x".into(),
                zone: "EST".into()
            }
            .to_string(),
            "unknown time zone \"EST\" in payment date \"x\", expected PST or PDT"
        );
    }

    #[test]
    fn formats_around_transitions() {
        let cases = [
            // The vector.
            (
                datetime!(2009-01-14 04:12:59 UTC),
                "20:12:59 Jan 13, 2009 PST",
            ),
            // 2009: second Sunday of March, first Sunday of November.
            (
                datetime!(2009-03-08 09:59:59 UTC),
                "01:59:59 Mar 08, 2009 PST",
            ),
            (
                datetime!(2009-03-08 10:00:00 UTC),
                "03:00:00 Mar 08, 2009 PDT",
            ),
            (
                datetime!(2009-11-01 08:59:59 UTC),
                "01:59:59 Nov 01, 2009 PDT",
            ),
            (
                datetime!(2009-11-01 09:00:00 UTC),
                "01:00:00 Nov 01, 2009 PST",
            ),
            (
                datetime!(2009-07-04 19:00:00 UTC),
                "12:00:00 Jul 04, 2009 PDT",
            ),
            // 2026.
            (
                datetime!(2026-03-08 09:59:59 UTC),
                "01:59:59 Mar 08, 2026 PST",
            ),
            (
                datetime!(2026-03-08 10:00:00 UTC),
                "03:00:00 Mar 08, 2026 PDT",
            ),
            (
                datetime!(2026-11-01 08:59:59 UTC),
                "01:59:59 Nov 01, 2026 PDT",
            ),
            (
                datetime!(2026-11-01 09:00:00 UTC),
                "01:00:00 Nov 01, 2026 PST",
            ),
            (
                datetime!(2027-01-01 07:59:59 UTC),
                "23:59:59 Dec 31, 2026 PST",
            ),
            // 2005: first Sunday of April, last Sunday of October.
            (
                datetime!(2005-04-03 09:59:59 UTC),
                "01:59:59 Apr 03, 2005 PST",
            ),
            (
                datetime!(2005-04-03 10:00:00 UTC),
                "03:00:00 Apr 03, 2005 PDT",
            ),
            (
                datetime!(2005-10-30 08:59:59 UTC),
                "01:59:59 Oct 30, 2005 PDT",
            ),
            (
                datetime!(2005-10-30 09:00:00 UTC),
                "01:00:00 Oct 30, 2005 PST",
            ),
            // Under the 2007 rule this would be daylight time; in 2005 it was not.
            (
                datetime!(2005-03-20 20:00:00 UTC),
                "12:00:00 Mar 20, 2005 PST",
            ),
            // The input's own offset does not matter, only the instant.
            (
                datetime!(2026-03-08 12:00:00 +02:00),
                "03:00:00 Mar 08, 2026 PDT",
            ),
            // Sub-second precision is dropped.
            (
                datetime!(2026-06-01 12:00:00.999 UTC),
                "05:00:00 Jun 01, 2026 PDT",
            ),
        ];
        for (at, expected) in cases {
            assert_eq!(format_payment_date(at), expected, "{at}");
        }
    }

    #[test]
    fn formatting_at_the_limits_does_not_panic() {
        let _ = format_payment_date(datetime!(-9999-01-01 00:00 UTC));
        let _ = format_payment_date(datetime!(9999-12-31 23:59:59 UTC));
        let _ = format_payment_date(datetime!(9999-12-31 23:59:59 -12:00));
        assert!(parse_payment_date("23:59:59 Dec 31, 9999 PST").is_err());
        assert!(parse_payment_date("00:00:00 Jan 01, 0000 PST").is_ok());
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            // 1990-01-01T00:00:00Z ..= 2100-01-01T00:00:00Z
            ts in 631_152_000i64..=4_102_444_800,
            offset_seconds in -86_399i32..=86_399,
        ) {
            let at = OffsetDateTime::from_unix_timestamp(ts).unwrap();
            let offset = UtcOffset::from_whole_seconds(offset_seconds).unwrap();
            let text = format_payment_date(at.to_offset(offset));
            prop_assert_eq!(parse_payment_date(&text), Ok(at));
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse_payment_date(&s);
        }

        #[test]
        fn parse_never_panics_on_date_like_text(
            s in "[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3} (Jan|Feb|Sep|Sep\\.|Foo) [0-9]{0,3},? [0-9]{1,5} (PST|PDT|EST)"
        ) {
            let _ = parse_payment_date(&s);
        }
    }
}
