//! An exact, order-keeping `application/x-www-form-urlencoded` codec for PayPal IPN.
//!
//! PayPal verifies a notification only if the listener posts back the very bytes
//! it received, so a [`Form`] never goes through a map: it keeps the body as
//! received, every pair in its original order, and the decoded text next to the
//! raw byte ranges it came from.
//!
//! Text is decoded with the charset the body names in its own `charset` field
//! (windows-1252 when there is none, as PayPal does). [`encode`] writes a body
//! the way PayPal does, so `encode(form.pairs(), form.charset())` gives back a
//! PayPal-made body byte for byte.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use encoding_rs::{Encoding, WINDOWS_1252};

/// The charset of a body without a `charset` field (PayPal's default).
pub const DEFAULT_CHARSET: &Encoding = WINDOWS_1252;

/// Why a body cannot be parsed, or pairs cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("empty body")]
    EmptyBody,
    #[error("empty field (stray '&') at byte {offset}")]
    EmptySegment { offset: usize },
    #[error("empty field name at byte {offset}")]
    EmptyName { offset: usize },
    #[error("bad percent escape at byte {offset}")]
    BadEscape { offset: usize },
    #[error("duplicate field {name:?}")]
    DuplicateField { name: String },
    #[error("unknown charset {label:?}")]
    UnknownCharset { label: String },
    /// A charset that is not ASCII-compatible (UTF-16, the WHATWG "replacement"
    /// encoding) cannot carry a form body whose names and delimiters are ASCII.
    #[error("charset {name} cannot carry a form body")]
    UnsupportedCharset { name: &'static str },
    #[error("field {field:?} at byte {offset} is not valid {charset}")]
    InvalidText {
        field: String,
        offset: usize,
        charset: &'static str,
    },
    #[error("field {field:?} has text that {charset} cannot encode")]
    Unmappable {
        field: String,
        charset: &'static str,
    },
    #[error("no fields")]
    NoFields,
    #[error("field {index} to encode has an empty name")]
    UnnamedField { index: usize },
}

/// What [`Form::parse_with`] does with an empty segment.
#[derive(Debug, Clone, Copy)]
enum Segments {
    Strict,
    SkipEmpty,
}

/// One `name=value` segment: where its raw bytes are in the body, and its decoded text.
#[derive(Clone, PartialEq, Eq)]
struct RawPair {
    key: Range<usize>,
    /// Empty (at the segment's end) when the segment has no '='.
    value: Range<usize>,
    name: String,
    text: String,
}

/// A parsed form body: the raw bytes as received, and each pair's raw key and value
/// with its decoded text.
#[derive(Clone, PartialEq, Eq)]
pub struct Form {
    raw: Vec<u8>,
    pairs: Vec<RawPair>,
    /// Decoded name to its position in `pairs`, so [`Form::get`] costs the
    /// same on a 20 000-field body as on a short one.
    index: HashMap<String, usize>,
    charset: &'static Encoding,
}

impl Form {
    /// Parses a body.
    ///
    /// Keys and values are percent-decoded (`+` is a space), then decoded as
    /// text with the charset named by the body's `charset` field, wherever it
    /// appears (PayPal's labels such as "UTF-8", "windows-1252", "ISO-8859-1",
    /// "Shift_JIS", matched case-insensitively by [`Encoding::for_label`]). A
    /// body without a `charset` field is windows-1252.
    ///
    /// Raw bytes that need no escaping in the grammar (control characters,
    /// bytes above 0x7F) are decoded with the charset like escaped ones, so they
    /// are accepted exactly when the charset decodes them. A segment without
    /// '=' is a field with an empty value. Empty bodies, empty segments, empty
    /// names, bad escapes, duplicate names, unknown charsets and text invalid
    /// in the charset are errors.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        Self::parse_with(body, Segments::Strict)
    }

    /// Parses a body as PayPal reads a postback: like [`Form::parse`], but
    /// empty segments (a leading, trailing or doubled '&') are skipped.
    ///
    /// Listener libraries rebuild the body they post back from the fields
    /// they parsed, and some write `&name=value` for every field, so their
    /// body starts with '&'. Skipping an empty segment loses nothing: it
    /// carries no field. A body with no field at all is still an error.
    pub fn parse_lenient(body: &[u8]) -> Result<Form, FormError> {
        Self::parse_with(body, Segments::SkipEmpty)
    }

    fn parse_with(body: &[u8], segments_rule: Segments) -> Result<Form, FormError> {
        if body.is_empty() {
            return Err(FormError::EmptyBody);
        }

        // Pass 1: split and percent-decode, so the charset can be known before any text is decoded.
        let mut segments = Vec::new();
        let mut start = 0;
        for piece in body.split(|&b| b == b'&') {
            let end = start + piece.len();
            if piece.is_empty() {
                match segments_rule {
                    Segments::Strict => return Err(FormError::EmptySegment { offset: start }),
                    Segments::SkipEmpty => {
                        start = end + 1;
                        continue;
                    }
                }
            }
            let (key, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (start..start + eq, start + eq + 1..end),
                None => (start..end, end..end),
            };
            if key.is_empty() {
                return Err(FormError::EmptyName { offset: start });
            }
            let key_bytes = percent_decode(body, key.clone())?;
            let value_bytes = percent_decode(body, value.clone())?;
            segments.push((key, value, key_bytes, value_bytes));
            start = end + 1;
        }

        if segments.is_empty() {
            return Err(FormError::NoFields);
        }
        let mut label = None;
        for (_, _, key_bytes, value_bytes) in &segments {
            if key_bytes == b"charset" {
                if label.is_some() {
                    return Err(FormError::DuplicateField {
                        name: "charset".to_owned(),
                    });
                }
                label = Some(value_bytes.as_slice());
            }
        }
        let charset = match label {
            None => DEFAULT_CHARSET,
            Some(label) => Encoding::for_label(label).ok_or_else(|| FormError::UnknownCharset {
                label: String::from_utf8_lossy(label).into_owned(),
            })?,
        };
        check_supported(charset)?;

        let mut pairs = Vec::with_capacity(segments.len());
        let mut index = HashMap::with_capacity(segments.len());
        for (key, value, key_bytes, value_bytes) in segments {
            let name = decode(charset, &key_bytes).ok_or_else(|| FormError::InvalidText {
                field: charset
                    .decode_without_bom_handling(&key_bytes)
                    .0
                    .into_owned(),
                offset: key.start,
                charset: charset.name(),
            })?;
            // A stateful charset (ISO-2022-JP) can decode non-empty bytes to nothing.
            if name.is_empty() {
                return Err(FormError::EmptyName { offset: key.start });
            }
            let text = decode(charset, &value_bytes).ok_or_else(|| FormError::InvalidText {
                field: name.clone(),
                offset: value.start,
                charset: charset.name(),
            })?;
            if index.insert(name.clone(), pairs.len()).is_some() {
                return Err(FormError::DuplicateField { name });
            }
            pairs.push(RawPair {
                key,
                value,
                name,
                text,
            });
        }

        Ok(Form {
            raw: body.to_vec(),
            pairs,
            index,
            charset,
        })
    }

    /// Exactly the bytes given to [`Form::parse`]: what to post back to PayPal.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The charset the text was decoded with.
    pub fn charset(&self) -> &'static Encoding {
        self.charset
    }

    /// How many `name=value` segments the body has (a segment without '='
    /// counts).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no fields (never true for a parsed body).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Decoded `(name, value)` pairs in body order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|p| (p.name.as_str(), p.text.as_str()))
    }

    /// Raw `(name, value)` bytes in body order, still percent-encoded as received.
    pub fn raw_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs
            .iter()
            .map(|p| (&self.raw[p.key.clone()], &self.raw[p.value.clone()]))
    }

    /// The decoded value of a field, found in constant time; names are
    /// unique (parse refuses duplicates).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.pairs[i].text.as_str())
    }
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("charset", &self.charset.name())
            .field("pairs", &self.pairs().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds a body the way PayPal encodes one: text is encoded into `charset`
/// (a character it cannot encode is an error), then space becomes '+' and
/// every byte outside `[A-Za-z0-9*-._]` becomes `%XX` with uppercase hex.
///
/// Names must be non-empty and unique, so the result always parses. The
/// caller keeps any `charset` pair consistent with `charset`: it is written as
/// given, and a reader decodes by it.
pub fn encode(pairs: &[(&str, &str)], charset: &'static Encoding) -> Result<Vec<u8>, FormError> {
    check_supported(charset)?;
    if pairs.is_empty() {
        return Err(FormError::NoFields);
    }
    let mut seen = HashSet::with_capacity(pairs.len());
    let mut out = Vec::new();
    for (index, &(name, value)) in pairs.iter().enumerate() {
        if name.is_empty() {
            return Err(FormError::UnnamedField { index });
        }
        if !seen.insert(name) {
            return Err(FormError::DuplicateField {
                name: name.to_owned(),
            });
        }
        if index > 0 {
            out.push(b'&');
        }
        push_encoded(&mut out, name, name, charset)?;
        out.push(b'=');
        push_encoded(&mut out, value, name, charset)?;
    }
    Ok(out)
}

fn check_supported(charset: &'static Encoding) -> Result<(), FormError> {
    // `output_encoding` differs exactly for UTF-16BE/LE and "replacement", which
    // encoding_rs would silently write as UTF-8.
    if charset.output_encoding() == charset {
        Ok(())
    } else {
        Err(FormError::UnsupportedCharset {
            name: charset.name(),
        })
    }
}

fn decode(charset: &'static Encoding, bytes: &[u8]) -> Option<String> {
    charset
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
}

/// Percent-decodes `body[range]`; offsets in errors are into `body`.
fn percent_decode(body: &[u8], range: Range<usize>) -> Result<Vec<u8>, FormError> {
    let start = range.start;
    let bytes = &body[range];
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(FormError::BadEscape { offset: start + i });
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_encoded(
    out: &mut Vec<u8>,
    text: &str,
    field: &str,
    charset: &'static Encoding,
) -> Result<(), FormError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let (bytes, _, unmappable) = charset.encode(text);
    if unmappable {
        return Err(FormError::Unmappable {
            field: field.to_owned(),
            charset: charset.name(),
        });
    }
    for &b in bytes.iter() {
        match b {
            b' ' => out.push(b'+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b),
            _ => {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]])
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{SHIFT_JIS, UTF_8, UTF_16LE};
    use proptest::prelude::*;

    // The bodies of /work/shared/vectors/paypal-ipn.json, as PayPal sends them.
    const EXPRESS_CHECKOUT: &str = "mc_gross=19.95&protection_eligibility=Eligible&address_status=confirmed&payer_id=LPLWNMTBWMFAY&tax=0.00&address_street=1+Main+St&payment_date=20%3A12%3A59+Jan+13%2C+2009+PST&payment_status=Completed&charset=windows-1252&address_zip=95131&first_name=Test&mc_fee=0.88&address_country_code=US&address_name=Test+User&notify_version=2.6&custom=&payer_status=verified&address_country=United+States&address_city=San+Jose&quantity=1&verify_sign=AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf&payer_email=gpmac_1231902590_per%40paypal.com&txn_id=61E67681CH3238416&payment_type=instant&last_name=User&address_state=CA&receiver_email=gpmac_1231902686_biz%40paypal.com&payment_fee=0.88&receiver_id=S8XGHLYDW9T3S&txn_type=express_checkout&item_name=&mc_currency=USD&item_number=&residence_country=US&test_ipn=1&handling_amount=0.00&transaction_subject=&payment_gross=19.95&shipping=0.00";
    const WINDOWS_1252_NAME: &str = "mc_gross=5.00&payment_status=Completed&charset=windows-1252&first_name=J%F6rg&last_name=M%FCller&txn_id=8X1234567A1234567&txn_type=web_accept&mc_currency=EUR&receiver_email=shop%40example.com";
    const REVERSAL: &str = "mc_gross=-9.26&mc_fee=-0.74&payment_status=Reversed&reason_code=chargeback&parent_txn_id=46L99229E45560012&txn_id=9RR084994V5565645&mc_currency=USD&charset=UTF-8&receiver_email=shop%40example.com&ipn_track_id=c91be0ff44d0d";
    const VECTORS: [&str; 3] = [EXPRESS_CHECKOUT, WINDOWS_1252_NAME, REVERSAL];

    fn parse(body: &[u8]) -> Result<Form, FormError> {
        Form::parse(body)
    }

    fn pairs_of(form: &Form) -> Vec<(String, String)> {
        form.pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn reencode(form: &Form) -> Result<Vec<u8>, FormError> {
        let pairs: Vec<(&str, &str)> = form.pairs().collect();
        encode(&pairs, form.charset())
    }

    #[test]
    fn vectors_round_trip_byte_for_byte() {
        for body in VECTORS {
            let form = parse(body.as_bytes()).unwrap();
            assert_eq!(form.as_bytes(), body.as_bytes());
            assert_eq!(reencode(&form).unwrap(), body.as_bytes());
            assert_eq!(form.len(), body.split('&').count());
            assert!(!form.is_empty());
        }
    }

    #[test]
    fn express_checkout_fields() {
        let form = parse(EXPRESS_CHECKOUT.as_bytes()).unwrap();
        assert_eq!(form.charset(), WINDOWS_1252);
        assert_eq!(form.get("txn_id"), Some("61E67681CH3238416"));
        assert_eq!(form.get("payment_status"), Some("Completed"));
        assert_eq!(form.get("txn_type"), Some("express_checkout"));
        assert_eq!(form.get("mc_gross"), Some("19.95"));
        assert_eq!(form.get("mc_currency"), Some("USD"));
        assert_eq!(
            form.get("receiver_email"),
            Some("gpmac_1231902686_biz@paypal.com")
        );
        assert_eq!(
            form.get("payer_email"),
            Some("gpmac_1231902590_per@paypal.com")
        );
        assert_eq!(form.get("payment_date"), Some("20:12:59 Jan 13, 2009 PST"));
        assert_eq!(form.get("address_street"), Some("1 Main St"));
        assert_eq!(form.get("custom"), Some(""));
        assert_eq!(form.get("nope"), None);
        assert_eq!(form.pairs().next(), Some(("mc_gross", "19.95")));
        assert_eq!(form.pairs().last(), Some(("shipping", "0.00")));
    }

    #[test]
    fn windows_1252_name_fields() {
        let form = parse(WINDOWS_1252_NAME.as_bytes()).unwrap();
        assert_eq!(form.get("first_name"), Some("Jörg"));
        assert_eq!(form.get("last_name"), Some("Müller"));
        assert_eq!(form.get("mc_gross"), Some("5.00"));
        assert_eq!(form.get("mc_currency"), Some("EUR"));
        let raw: Vec<_> = form.raw_pairs().collect();
        assert_eq!(raw[3], (&b"first_name"[..], &b"J%F6rg"[..]));
    }

    #[test]
    fn reversal_fields() {
        let form = parse(REVERSAL.as_bytes()).unwrap();
        assert_eq!(form.charset(), UTF_8);
        assert_eq!(form.get("payment_status"), Some("Reversed"));
        assert_eq!(form.get("parent_txn_id"), Some("46L99229E45560012"));
        assert_eq!(form.get("mc_gross"), Some("-9.26"));
        assert_eq!(form.get("txn_type"), None);
    }

    #[test]
    fn text_decodes_with_the_body_charset() {
        let form = parse(b"first_name=J%F6rg&charset=windows-1252").unwrap();
        assert_eq!(form.get("first_name"), Some("Jörg"));
        let form = parse(b"first_name=J%C3%B6rg&charset=UTF-8").unwrap();
        assert_eq!(form.get("first_name"), Some("Jörg"));
        // No charset field: windows-1252, so the same UTF-8 bytes are mojibake.
        let form = parse(b"first_name=J%C3%B6rg").unwrap();
        assert_eq!(form.charset(), WINDOWS_1252);
        assert_eq!(form.get("first_name"), Some("JÃ¶rg"));
        // The charset applies to fields before it, labels are case-insensitive.
        let form = parse(b"name=%93%FA%96%7B&charset=shift_jis").unwrap();
        assert_eq!(form.charset(), SHIFT_JIS);
        assert_eq!(form.get("name"), Some("日本"));
        assert_eq!(form.get("charset"), Some("shift_jis"));
        // WHATWG: ISO-8859-1 is read as windows-1252.
        let form = parse(b"charset=ISO-8859-1&x=%80").unwrap();
        assert_eq!(form.charset(), WINDOWS_1252);
        assert_eq!(form.get("x"), Some("€"));
    }

    #[test]
    fn windows_1252_decodes_every_byte() {
        let body: String = (0..=255u8).map(|b| format!("%{b:02X}")).collect();
        let form = parse(format!("x={body}").as_bytes()).unwrap();
        let text = form.get("x").unwrap();
        assert_eq!(text.chars().count(), 256);
        // Every char maps back to its byte.
        let again = parse(&reencode(&form).unwrap()).unwrap();
        assert_eq!(again.get("x"), Some(text));
        let (bytes, _, unmappable) = WINDOWS_1252.encode(text);
        assert!(!unmappable);
        assert_eq!(bytes, (0..=255u8).collect::<Vec<_>>());
    }

    #[test]
    fn segment_without_equals_is_an_empty_value() {
        let form = parse(b"a&b=1&c=").unwrap();
        assert_eq!(
            pairs_of(&form),
            [("a", ""), ("b", "1"), ("c", "")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // Only the first '=' separates; a raw '=' in a value is kept.
        assert_eq!(parse(b"a=b=c").unwrap().get("a"), Some("b=c"));
    }

    #[test]
    fn every_field_of_a_large_body_is_found() {
        let body: Vec<String> = (0..20_000).map(|n| format!("f{n}={n}")).collect();
        let form = parse(body.join("&").as_bytes()).unwrap();
        assert_eq!(form.len(), 20_000);
        for n in [0, 1, 9_999, 19_999] {
            assert_eq!(form.get(&format!("f{n}")), Some(n.to_string().as_str()));
        }
        assert_eq!(form.get("f20000"), None);
    }

    #[test]
    fn plus_and_escapes_decode() {
        let form = parse(b"a+b=1+2&c=%2b%2B%41%6a&d=%20").unwrap();
        assert_eq!(form.get("a b"), Some("1 2"));
        assert_eq!(form.get("c"), Some("++Aj"));
        assert_eq!(form.get("d"), Some(" "));
    }

    #[test]
    fn empty_body_is_an_error() {
        assert_eq!(parse(b""), Err(FormError::EmptyBody));
    }

    #[test]
    fn empty_segments_are_errors() {
        assert_eq!(
            parse(b"a=1&&b=2"),
            Err(FormError::EmptySegment { offset: 4 })
        );
        assert_eq!(parse(b"&a=1"), Err(FormError::EmptySegment { offset: 0 }));
        assert_eq!(parse(b"a=1&"), Err(FormError::EmptySegment { offset: 4 }));
        assert_eq!(parse(b"&"), Err(FormError::EmptySegment { offset: 0 }));
    }

    #[test]
    fn a_lenient_parse_skips_empty_segments_only() {
        for body in [&b"&a=1&b=x+y"[..], b"a=1&&b=x+y&", b"&&a=1&b=x%20y&&"] {
            let form = Form::parse_lenient(body).unwrap();
            assert_eq!(
                pairs_of(&form),
                [("a", "1"), ("b", "x y")].map(|(k, v)| (k.to_owned(), v.to_owned())),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(form.as_bytes(), body, "the bytes stay as received");
        }
        assert_eq!(Form::parse_lenient(b""), Err(FormError::EmptyBody));
        assert_eq!(Form::parse_lenient(b"&&"), Err(FormError::NoFields));
        // Everything else is as strict as `parse`.
        assert_eq!(
            Form::parse_lenient(b"&=5"),
            Err(FormError::EmptyName { offset: 1 })
        );
        assert_eq!(
            Form::parse_lenient(b"a=1&&a=2"),
            Err(FormError::DuplicateField { name: "a".into() })
        );
        assert_eq!(
            Form::parse_lenient(b"&a=%zz"),
            Err(FormError::BadEscape { offset: 3 })
        );
    }

    #[test]
    fn empty_names_are_errors() {
        assert_eq!(parse(b"=5"), Err(FormError::EmptyName { offset: 0 }));
        assert_eq!(parse(b"a=1&="), Err(FormError::EmptyName { offset: 4 }));
        // ISO-2022-JP: an escape sequence alone decodes to no text at all.
        assert_eq!(
            parse(b"charset=ISO-2022-JP&%1B(B=1"),
            Err(FormError::EmptyName { offset: 20 })
        );
    }

    #[test]
    fn bad_escapes_name_the_offset() {
        assert_eq!(parse(b"a=%G1"), Err(FormError::BadEscape { offset: 2 }));
        assert_eq!(parse(b"a=1&b=%4"), Err(FormError::BadEscape { offset: 6 }));
        assert_eq!(parse(b"a=%"), Err(FormError::BadEscape { offset: 2 }));
        assert_eq!(parse(b"%=1"), Err(FormError::BadEscape { offset: 0 }));
        assert_eq!(parse(b"a=%4&b=1"), Err(FormError::BadEscape { offset: 2 }));
        assert_eq!(parse(b"a=%1G"), Err(FormError::BadEscape { offset: 2 }));
    }

    #[test]
    fn duplicate_names_are_errors() {
        assert_eq!(
            parse(b"a=1&b=2&a=3"),
            Err(FormError::DuplicateField { name: "a".into() })
        );
        // Names are compared decoded.
        assert_eq!(
            parse(b"a+b=1&a%20b=2"),
            Err(FormError::DuplicateField { name: "a b".into() })
        );
        assert_eq!(
            parse(b"charset=UTF-8&x=1&charset=UTF-8"),
            Err(FormError::DuplicateField {
                name: "charset".into()
            })
        );
    }

    #[test]
    fn unknown_or_unsupported_charsets_are_errors() {
        assert_eq!(
            parse(b"a=1&charset=klingon"),
            Err(FormError::UnknownCharset {
                label: "klingon".into()
            })
        );
        assert_eq!(
            parse(b"charset="),
            Err(FormError::UnknownCharset { label: "".into() })
        );
        assert_eq!(
            parse(b"charset=UTF-16"),
            Err(FormError::UnsupportedCharset { name: "UTF-16LE" })
        );
        assert_eq!(
            parse(b"charset=ISO-2022-KR"),
            Err(FormError::UnsupportedCharset {
                name: "replacement"
            })
        );
    }

    #[test]
    fn text_invalid_in_the_charset_names_the_field() {
        assert_eq!(
            parse(b"charset=UTF-8&first_name=J%F6rg"),
            Err(FormError::InvalidText {
                field: "first_name".into(),
                offset: 25,
                charset: "UTF-8",
            })
        );
        // An invalid name is shown with replacement characters.
        assert_eq!(
            parse(b"charset=UTF-8&J%F6rg=1"),
            Err(FormError::InvalidText {
                field: "J\u{FFFD}rg".into(),
                offset: 14,
                charset: "UTF-8",
            })
        );
    }

    #[test]
    fn raw_bytes_are_decoded_with_the_charset() {
        let form = parse("charset=UTF-8&name=Jörg".as_bytes()).unwrap();
        assert_eq!(form.get("name"), Some("Jörg"));
        let form = parse(b"name=J\xF6rg").unwrap();
        assert_eq!(form.get("name"), Some("Jörg"));
        let form = parse(b"charset=UTF-8&note=a\nb\tc").unwrap();
        assert_eq!(form.get("note"), Some("a\nb\tc"));
        assert_eq!(
            parse(b"charset=UTF-8&name=J\xF6rg"),
            Err(FormError::InvalidText {
                field: "name".into(),
                offset: 19,
                charset: "UTF-8",
            })
        );
        // Kept as received, even where the canonical encoding would differ.
        assert_eq!(form.as_bytes(), b"charset=UTF-8&note=a\nb\tc");
    }

    #[test]
    fn debug_shows_decoded_pairs() {
        let form = parse(b"first_name=J%F6rg&x=a+b").unwrap();
        assert_eq!(
            format!("{form:?}"),
            r#"Form { charset: "windows-1252", pairs: [("first_name", "Jörg"), ("x", "a b")] }"#
        );
    }

    #[test]
    fn encode_is_paypal_canonical() {
        let body = encode(
            &[("a b", "x*-._~ +&=%/é"), ("charset", "UTF-8"), ("e", "")],
            UTF_8,
        )
        .unwrap();
        assert_eq!(
            body,
            b"a+b=x*-._%7E+%2B%26%3D%25%2F%C3%A9&charset=UTF-8&e=".as_slice()
        );
        assert_eq!(
            encode(&[("first_name", "Jörg")], WINDOWS_1252).unwrap(),
            b"first_name=J%F6rg".as_slice()
        );
    }

    #[test]
    fn encode_errors() {
        assert_eq!(
            encode(&[("name", "日本")], WINDOWS_1252),
            Err(FormError::Unmappable {
                field: "name".into(),
                charset: "windows-1252",
            })
        );
        assert_eq!(encode(&[], UTF_8), Err(FormError::NoFields));
        assert_eq!(
            encode(&[("a", "1"), ("", "2")], UTF_8),
            Err(FormError::UnnamedField { index: 1 })
        );
        assert_eq!(
            encode(&[("a", "1"), ("a", "2")], UTF_8),
            Err(FormError::DuplicateField { name: "a".into() })
        );
        assert_eq!(
            encode(&[("a", "1")], UTF_16LE),
            Err(FormError::UnsupportedCharset { name: "UTF-16LE" })
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            FormError::BadEscape { offset: 7 }.to_string(),
            "bad percent escape at byte 7"
        );
        assert_eq!(
            FormError::DuplicateField { name: "a".into() }.to_string(),
            "duplicate field \"a\""
        );
        assert_eq!(
            FormError::InvalidText {
                field: "name".into(),
                offset: 3,
                charset: "UTF-8"
            }
            .to_string(),
            "field \"name\" at byte 3 is not valid UTF-8"
        );
    }

    /// Unique non-empty names, none of them "charset" (added by the caller).
    fn unique(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut seen = HashSet::new();
        pairs
            .into_iter()
            .filter(|(k, _)| !k.is_empty() && k != "charset" && seen.insert(k.clone()))
            .collect()
    }

    fn assert_round_trip(
        pairs: &[(String, String)],
        charset: &'static Encoding,
    ) -> Result<(), TestCaseError> {
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = encode(&borrowed, charset).unwrap();
        let form = Form::parse(&body).unwrap();
        prop_assert_eq!(form.charset(), charset);
        prop_assert_eq!(&pairs_of(&form), pairs);
        prop_assert_eq!(reencode(&form).unwrap(), body);
        Ok(())
    }

    /// Writes '+' as `%20` and escapes in lowercase hex.
    fn non_canonical(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut escape = 0;
        for &b in body {
            if escape > 0 {
                out.push(b.to_ascii_lowercase());
                escape -= 1;
            } else if b == b'+' {
                out.extend_from_slice(b"%20");
            } else {
                if b == b'%' {
                    escape = 2;
                }
                out.push(b);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn utf8_pairs_round_trip(
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
            at in any::<usize>(),
        ) {
            let mut pairs = unique(pairs);
            pairs.insert(at % (pairs.len() + 1), ("charset".into(), "UTF-8".into()));
            assert_round_trip(&pairs, UTF_8)?;
        }

        #[test]
        fn windows_1252_pairs_round_trip(
            pairs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)),
                0..8,
            ),
            at in any::<usize>(),
        ) {
            // Text decoded from windows-1252 bytes is exactly the text it can encode.
            let text = |b: &[u8]| WINDOWS_1252.decode_without_bom_handling(b).0.into_owned();
            let pairs = pairs.iter().map(|(k, v)| (text(k), text(v))).collect();
            let mut pairs = unique(pairs);
            pairs.insert(at % (pairs.len() + 1), ("charset".into(), "windows-1252".into()));
            assert_round_trip(&pairs, WINDOWS_1252)?;
        }

        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(form) = Form::parse(&body) {
                prop_assert_eq!(form.as_bytes(), body.as_slice());
            }
        }

        #[test]
        fn parse_never_panics_on_form_like_bytes(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'&'), Just(b'='), Just(b'%'), Just(b'+'), Just(b'a'), Just(b'F'),
                    Just(b'4'), Just(b'\xF6'), Just(b'\xC3'), Just(b'\x1B'),
                    Just(b'c'), any::<u8>(),
                ],
                0..32,
            ),
            charset in prop_oneof![Just(""), Just("charset=UTF-8&"), Just("charset=Shift_JIS&"), Just("charset=ISO-2022-JP&")],
        ) {
            let body = [charset.as_bytes(), &body].concat();
            if let Ok(form) = Form::parse(&body) {
                prop_assert_eq!(form.as_bytes(), body.as_slice());
                prop_assert!(form.pairs().all(|(name, _)| !name.is_empty()));
            }
        }

        #[test]
        fn percent_20_and_lowercase_hex_parse_the_same(
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 1..8),
        ) {
            let mut pairs = unique(pairs);
            pairs.push(("charset".into(), "UTF-8".into()));
            let borrowed: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let canonical = encode(&borrowed, UTF_8).unwrap();
            let other = non_canonical(&canonical);
            let a = Form::parse(&canonical).unwrap();
            let b = Form::parse(&other).unwrap();
            prop_assert_eq!(pairs_of(&a), pairs_of(&b));
            prop_assert_eq!(b.as_bytes(), other.as_slice());
        }
    }

    #[test]
    fn non_canonical_vectors_parse_the_same() {
        for body in VECTORS {
            let canonical = parse(body.as_bytes()).unwrap();
            let bytes = non_canonical(body.as_bytes());
            let other = parse(&bytes).unwrap();
            assert_eq!(pairs_of(&canonical), pairs_of(&other));
            assert_eq!(other.as_bytes(), bytes);
            assert_eq!(reencode(&other).unwrap(), body.as_bytes());
        }
    }
}
