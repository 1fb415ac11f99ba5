//! Signing and verifying `webhook-signature` headers.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::keys::{PublicKey, SigningKey, WebhookSecret, b64_decode_strict, b64_encode};

/// Seconds a `webhook-timestamp` may differ from the receiver's clock, either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Entries of a `webhook-signature` header that are looked at; the rest are
/// ignored. A sender has one per key (two during a rotation, plus an ed25519
/// one), so this is plenty, and a huge header cannot cost unbounded ed25519
/// work.
const MAX_SIGNATURE_ENTRIES: usize = 16;

/// The bytes every signature covers: `{id}.{timestamp}.{body}`.
pub fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    [
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]
    .concat()
}

fn hmac_sha256(secret: &WebhookSecret, content: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this constructor cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("HMAC accepts any key");
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// A key that signs outgoing messages.
#[derive(Debug, Clone)]
pub enum Signer {
    /// Symmetric, `v1,…` signatures.
    Secret(WebhookSecret),
    /// Asymmetric, `v1a,…` signatures.
    Ed25519(SigningKey),
}

impl Signer {
    /// One `version,base64` signature of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let content = signed_content(id, timestamp, body);
        match self {
            Self::Secret(secret) => format!("v1,{}", b64_encode(&hmac_sha256(secret, &content))),
            Self::Ed25519(key) => format!("v1a,{}", b64_encode(&key.sign(&content))),
        }
    }
}

/// The `webhook-signature` header value: one signature per signer, space-separated
/// (several while a secret is being rotated).
pub fn signature_header(signers: &[Signer], id: &str, timestamp: i64, body: &[u8]) -> String {
    signers
        .iter()
        .map(|signer| signer.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A key that checks incoming messages.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    /// Checks `v1,…` (HMAC) signatures.
    Secret(WebhookSecret),
    /// Checks `v1a,…` (ed25519) signatures.
    Ed25519(PublicKey),
}

/// The three Standard Webhooks header values of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`: the message id, the same on every retry.
    pub id: &'a str,
    /// `webhook-timestamp`: unix seconds, as sent.
    pub timestamp: &'a str,
    /// `webhook-signature`: space-separated `version,base64` entries.
    pub signature: &'a str,
}

impl<'a> WebhookHeaders<'a> {
    /// The message id header's name.
    pub const ID: &'static str = "webhook-id";
    /// The timestamp header's name.
    pub const TIMESTAMP: &'static str = "webhook-timestamp";
    /// The signature header's name.
    pub const SIGNATURE: &'static str = "webhook-signature";

    /// Takes the three headers from any header map, given a lookup by
    /// lowercase name; a missing, empty or non-ASCII value is an error.
    pub fn from_lookup(
        get: impl Fn(&'static str) -> Option<&'a [u8]>,
    ) -> Result<Self, VerifyError> {
        let value = |name: &'static str| {
            let bytes = get(name).ok_or(VerifyError::MissingHeader(name))?;
            match std::str::from_utf8(bytes) {
                Ok(text) if !text.trim().is_empty() && text.bytes().all(is_header_char) => {
                    Ok(text.trim())
                }
                _ => Err(VerifyError::InvalidHeader(name)),
            }
        };
        Ok(Self {
            id: value(Self::ID)?,
            timestamp: value(Self::TIMESTAMP)?,
            signature: value(Self::SIGNATURE)?,
        })
    }
}

fn is_header_char(b: u8) -> bool {
    b == b' ' || b == b'\t' || b.is_ascii_graphic()
}

/// Which kind of signature matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HMAC-SHA256 with a `whsec_` secret.
    V1,
    /// ed25519 with a `whpk_` public key.
    V1a,
}

/// Why a message failed verification; each variant names the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("{0} header is empty or not printable ASCII")]
    InvalidHeader(&'static str),
    #[error("webhook-timestamp {0:?} is not a whole number of seconds")]
    InvalidTimestamp(String),
    #[error("webhook-timestamp {timestamp} is {age} s old, more than the {tolerance} s allowed")]
    TimestampTooOld {
        timestamp: i64,
        age: i64,
        tolerance: i64,
    },
    #[error(
        "webhook-timestamp {timestamp} is {ahead} s in the future, more than the {tolerance} s allowed"
    )]
    TimestampTooNew {
        timestamp: i64,
        ahead: i64,
        tolerance: i64,
    },
    #[error("webhook-signature holds no v1 or v1a signature")]
    NoSignature,
    #[error("no signature in webhook-signature matches the message and the given keys")]
    NoMatchingSignature,
}

/// Checks messages against one or more keys (several during a rotation).
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyKey>,
    tolerance: i64,
}

impl Verifier {
    /// A verifier accepting a signature by any of `keys`, with the default
    /// tolerance of [`DEFAULT_TOLERANCE_SECS`].
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        Self {
            keys,
            tolerance: DEFAULT_TOLERANCE_SECS,
        }
    }

    /// Shorthand for the common case of one shared secret.
    pub fn with_secret(secret: WebhookSecret) -> Self {
        Self::new(vec![VerifyKey::Secret(secret)])
    }

    /// Sets how many seconds the timestamp may differ from `now`, either way.
    pub fn tolerance(mut self, seconds: i64) -> Self {
        self.tolerance = seconds;
        self
    }

    /// Verifies the timestamp against `now` (unix seconds), then the signatures.
    pub fn verify(
        &self,
        headers: &WebhookHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<Scheme, VerifyError> {
        let timestamp = parse_timestamp(headers.timestamp)?;
        let age = now.saturating_sub(timestamp);
        if age > self.tolerance {
            return Err(VerifyError::TimestampTooOld {
                timestamp,
                age,
                tolerance: self.tolerance,
            });
        }
        let ahead = timestamp.saturating_sub(now);
        if ahead > self.tolerance {
            return Err(VerifyError::TimestampTooNew {
                timestamp,
                ahead,
                tolerance: self.tolerance,
            });
        }
        self.verify_signature(headers, body)
    }

    /// Verifies the signatures only, for a message captured long ago
    /// (`ipn verify --ignore-timestamp`). A receiver must use [`Self::verify`],
    /// or replays are accepted. Only the header's first 16 entries are
    /// considered.
    pub fn verify_signature(
        &self,
        headers: &WebhookHeaders<'_>,
        body: &[u8],
    ) -> Result<Scheme, VerifyError> {
        let timestamp = parse_timestamp(headers.timestamp)?;
        let candidates: Vec<(Scheme, Vec<u8>)> = headers
            .signature
            .split_ascii_whitespace()
            .take(MAX_SIGNATURE_ENTRIES)
            .filter_map(|entry| {
                let (version, encoded) = entry.split_once(',')?;
                let scheme = match version {
                    "v1" => Scheme::V1,
                    "v1a" => Scheme::V1a,
                    _ => return None, // versions from a future spec are skipped, not errors
                };
                // An undecodable entry cannot match; other entries still may.
                Some((scheme, b64_decode_strict(encoded).unwrap_or_default()))
            })
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::NoSignature);
        }
        let content = signed_content(headers.id, timestamp, body);
        for key in &self.keys {
            let matched = match key {
                VerifyKey::Secret(secret) => {
                    let expected = hmac_sha256(secret, &content);
                    candidates.iter().any(|(scheme, sig)| {
                        *scheme == Scheme::V1 && bool::from(sig.as_slice().ct_eq(&expected))
                    })
                }
                VerifyKey::Ed25519(public) => candidates
                    .iter()
                    .any(|(scheme, sig)| *scheme == Scheme::V1a && public.verify(&content, sig)),
            };
            if matched {
                return Ok(match key {
                    VerifyKey::Secret(_) => Scheme::V1,
                    VerifyKey::Ed25519(_) => Scheme::V1a,
                });
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    // Digits only: `i64::from_str` would also take "+5". No leading zeros:
    // the signed content holds the number written plainly, so "0017…" would
    // pass as a second spelling of "17…".
    let canonical = !text.is_empty()
        && text.len() <= 18
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(VerifyError::InvalidTimestamp(text.to_owned()));
    }
    text.parse()
        .map_err(|_| VerifyError::InvalidTimestamp(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn verifier() -> Verifier {
        Verifier::with_secret(WebhookSecret::parse(SECRET).unwrap())
    }

    fn signed(body: &[u8], ts: i64) -> String {
        Signer::Secret(WebhookSecret::parse(SECRET).unwrap()).sign("msg_1", ts, body)
    }

    #[test]
    fn timestamp_must_be_within_tolerance_both_ways() {
        let sig = signed(b"{}", 1_000_000);
        let ts = "1000000";
        let h = WebhookHeaders {
            id: "msg_1",
            timestamp: ts,
            signature: &sig,
        };
        assert_eq!(verifier().verify(&h, b"{}", 1_000_300), Ok(Scheme::V1));
        assert_eq!(verifier().verify(&h, b"{}", 999_700), Ok(Scheme::V1));
        assert!(matches!(
            verifier().verify(&h, b"{}", 1_000_301),
            Err(VerifyError::TimestampTooOld { age: 301, .. })
        ));
        assert!(matches!(
            verifier().verify(&h, b"{}", 999_699),
            Err(VerifyError::TimestampTooNew { ahead: 301, .. })
        ));
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for ts in [
            "",
            "abc",
            "+5",
            "-5",
            "1.5",
            "1e9",
            " 1",
            "99999999999999999999",
            "0001700000000",
            "01",
            "00",
        ] {
            let h = WebhookHeaders {
                id: "msg_1",
                timestamp: ts,
                signature: "v1,AAAA",
            };
            assert!(
                matches!(
                    verifier().verify(&h, b"", 0),
                    Err(VerifyError::InvalidTimestamp(_))
                ),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn zero_alone_is_a_timestamp() {
        let sig = signed(b"", 0);
        let h = WebhookHeaders {
            id: "msg_1",
            timestamp: "0",
            signature: &sig,
        };
        assert_eq!(verifier().verify(&h, b"", 0), Ok(Scheme::V1));
    }

    #[test]
    fn extreme_clocks_are_refused_without_overflow() {
        let sig = signed(b"", 5);
        let h = WebhookHeaders {
            id: "msg_1",
            timestamp: "5",
            signature: &sig,
        };
        assert!(matches!(
            verifier().verify(&h, b"", i64::MIN),
            Err(VerifyError::TimestampTooNew { .. })
        ));
        assert!(matches!(
            verifier().verify(&h, b"", i64::MAX),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        let lax = verifier().tolerance(i64::MAX);
        assert_eq!(lax.verify(&h, b"", i64::MIN), Ok(Scheme::V1));
    }

    #[test]
    fn only_the_first_16_signature_entries_count() {
        let good = signed(b"x", 5);
        let with_junk_before = |junk: usize| {
            let mut entries = vec!["v1,AAAA"; junk];
            entries.push(&good);
            entries.join(" ")
        };
        let check = |header: &str| {
            let h = WebhookHeaders {
                id: "msg_1",
                timestamp: "5",
                signature: header,
            };
            verifier().verify_signature(&h, b"x")
        };
        assert_eq!(check(&with_junk_before(15)), Ok(Scheme::V1));
        assert_eq!(
            check(&with_junk_before(16)),
            Err(VerifyError::NoMatchingSignature)
        );
        let unknown_versions = ["v9,AAAA"; 16].join(" ") + " " + &good;
        assert_eq!(check(&unknown_versions), Err(VerifyError::NoSignature));
    }

    #[test]
    fn headers_without_a_known_version_say_so() {
        for sig in ["", "v2,abc", "garbage", "v1a"] {
            let h = WebhookHeaders {
                id: "msg_1",
                timestamp: "5",
                signature: sig,
            };
            assert_eq!(
                verifier().verify_signature(&h, b""),
                Err(VerifyError::NoSignature),
                "{sig:?}"
            );
        }
        let h = WebhookHeaders {
            id: "msg_1",
            timestamp: "5",
            signature: "v1,!!!! v1,",
        };
        assert_eq!(
            verifier().verify_signature(&h, b""),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn header_lookup_names_the_missing_or_bad_header() {
        let all = |name: &str| -> Option<&'static [u8]> {
            match name {
                "webhook-id" => Some(b"msg_1"),
                "webhook-timestamp" => Some(b"5"),
                "webhook-signature" => Some(b"v1,x"),
                _ => None,
            }
        };
        assert!(WebhookHeaders::from_lookup(all).is_ok());
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let got = WebhookHeaders::from_lookup(|n| if n == missing { None } else { all(n) });
            assert_eq!(got, Err(VerifyError::MissingHeader(missing)));
        }
        let bad: &[u8] = b"\xff\xfe";
        let got =
            WebhookHeaders::from_lookup(|n| if n == "webhook-id" { Some(bad) } else { all(n) });
        assert_eq!(got, Err(VerifyError::InvalidHeader("webhook-id")));
        let got = WebhookHeaders::from_lookup(|n| {
            if n == "webhook-id" {
                Some(b"  ")
            } else {
                all(n)
            }
        });
        assert_eq!(got, Err(VerifyError::InvalidHeader("webhook-id")));
    }

    #[test]
    fn rotation_header_verifies_with_either_key() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let header = signature_header(
            &[Signer::Secret(old.clone()), Signer::Secret(new.clone())],
            "msg_9",
            42,
            b"body",
        );
        assert_eq!(header.split(' ').count(), 2);
        let h = WebhookHeaders {
            id: "msg_9",
            timestamp: "42",
            signature: &header,
        };
        for key in [old, new] {
            assert_eq!(
                Verifier::with_secret(key).verify(&h, b"body", 42),
                Ok(Scheme::V1)
            );
        }
        let other = Verifier::with_secret(WebhookSecret::generate());
        assert_eq!(
            other.verify(&h, b"body", 42),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn ed25519_signatures_verify_with_the_public_key_only() {
        let key = SigningKey::generate();
        let sig = Signer::Ed25519(key.clone()).sign("msg_1", 7, b"x");
        assert!(sig.starts_with("v1a,"));
        let h = WebhookHeaders {
            id: "msg_1",
            timestamp: "7",
            signature: &sig,
        };
        let v = Verifier::new(vec![VerifyKey::Ed25519(key.public_key())]);
        assert_eq!(v.verify(&h, b"x", 7), Ok(Scheme::V1a));
        assert_eq!(v.verify(&h, b"y", 7), Err(VerifyError::NoMatchingSignature));
        // A v1a signature is never checked as HMAC, nor the reverse.
        assert_eq!(
            verifier().verify(&h, b"x", 7),
            Err(VerifyError::NoMatchingSignature)
        );
    }
}
