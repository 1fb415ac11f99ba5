//! Key material for the `standard` dialect, in its textual forms:
//! `whsec_` (shared HMAC secret), `whsk_` (ed25519 signing key) and `whpk_`
//! (ed25519 public key), each followed by standard base64.
//!
//! None of these types prints its secret in `Debug`; revealing a secret is an
//! explicit call (`reveal`).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::Signer as _;

/// Standard base64 for output; input may omit the padding, as some
/// providers' secrets do.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// Signatures are compared in their canonical padded form only, as every
/// Standard Webhooks library writes them.
pub(crate) fn b64_decode_strict(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Why a key string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key must start with {expected:?}")]
    MissingPrefix { expected: &'static str },
    #[error("key after {prefix:?} is not valid base64")]
    InvalidBase64 { prefix: &'static str },
    #[error("key after {prefix:?} holds {len} bytes, expected {expected}")]
    WrongLength {
        prefix: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("whpk_ key is not a valid ed25519 public key")]
    InvalidPublicKey,
}

fn decode_prefixed(text: &str, prefix: &'static str) -> Result<Vec<u8>, KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let body = text
        .strip_prefix(prefix)
        .ok_or(KeyError::MissingPrefix { expected: prefix })?;
    if body.is_empty() {
        return Err(KeyError::Empty);
    }
    b64_decode(body).ok_or(KeyError::InvalidBase64 { prefix })
}

fn exact_32(bytes: Vec<u8>, prefix: &'static str) -> Result<[u8; 32], KeyError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        prefix,
        len,
        expected: "32",
    })
}

/// A shared HMAC-SHA256 secret (`whsec_…`), 24 to 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// What the textual form starts with.
    pub const PREFIX: &'static str = "whsec_";
    /// The shortest secret accepted, in bytes.
    pub const MIN_BYTES: usize = 24;
    /// The longest secret accepted, in bytes.
    pub const MAX_BYTES: usize = 64;

    /// Reads a secret in its `whsec_…` form (padding optional).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Self::from_bytes(decode_prefixed(text, Self::PREFIX)?)
    }

    /// Takes raw secret bytes, as stored, checking only their length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if (Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(KeyError::WrongLength {
                prefix: Self::PREFIX,
                len: bytes.len(),
                expected: "24 to 64",
            })
        }
    }

    /// A fresh random 32-byte secret (from `rand`'s cryptographically secure generator).
    pub fn generate() -> Self {
        Self(rand::random::<[u8; 32]>().to_vec())
    }

    /// The secret in its `whsec_…` form, to show a user once.
    pub fn reveal(&self) -> String {
        format!("{}{}", Self::PREFIX, b64_encode(&self.0))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for WebhookSecret {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_***")
    }
}

/// An ed25519 signing key (`whsk_…`: base64 of the 32-byte seed).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// What the textual form starts with.
    pub const PREFIX: &'static str = "whsk_";

    /// Reads a key in its `whsk_…` form.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let seed = exact_32(decode_prefixed(text, Self::PREFIX)?, Self::PREFIX)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// A fresh random key (from `rand`'s cryptographically secure generator).
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    /// The key receivers verify with, safe to publish.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key in its `whsk_…` form.
    pub fn reveal(&self) -> String {
        format!("{}{}", Self::PREFIX, b64_encode(self.0.as_bytes()))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl FromStr for SigningKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsk_***")
    }
}

/// An ed25519 public key (`whpk_…`), safe to publish.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// What the textual form starts with.
    pub const PREFIX: &'static str = "whpk_";

    /// Reads a key in its `whpk_…` form (what `Display` writes).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = exact_32(decode_prefixed(text, Self::PREFIX)?, Self::PREFIX)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, b64_encode(self.0.as_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_and_reveal_round_trip() {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(WebhookSecret::parse(text).unwrap().reveal(), text);
        let fresh = WebhookSecret::generate();
        assert_eq!(WebhookSecret::parse(&fresh.reveal()), Ok(fresh));
    }

    #[test]
    fn bad_secrets_say_what_is_wrong() {
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::Empty),
            ("whsec_", KeyError::Empty),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                KeyError::MissingPrefix { expected: "whsec_" },
            ),
            (
                "whsec_not base64!",
                KeyError::InvalidBase64 { prefix: "whsec_" },
            ),
            (
                "whsec_c2hvcnQ=",
                KeyError::WrongLength {
                    prefix: "whsec_",
                    len: 5,
                    expected: "24 to 64",
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(WebhookSecret::parse(text).as_ref(), Err(want), "{text:?}");
        }
        let too_long = format!("whsec_{}", b64_encode(&[7u8; 65]));
        assert!(matches!(
            WebhookSecret::parse(&too_long),
            Err(KeyError::WrongLength { len: 65, .. })
        ));
    }

    #[test]
    fn debug_never_shows_secret_material() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{secret:?}"), "whsec_***");
        let key = SigningKey::generate();
        assert_eq!(format!("{key:?}"), "whsk_***");
    }

    #[test]
    fn ed25519_keys_parse_and_derive_the_published_public_key() {
        let key = SigningKey::parse("whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").unwrap();
        assert_eq!(
            key.public_key().to_string(),
            "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        assert!(matches!(
            PublicKey::parse("whpk_AAAA"),
            Err(KeyError::WrongLength { len: 3, .. })
        ));
        assert!(matches!(
            SigningKey::parse("whsec_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="),
            Err(KeyError::MissingPrefix { expected: "whsk_" })
        ));
    }

    #[test]
    fn keys_parse_with_from_str_as_with_parse() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(
            secret.parse::<WebhookSecret>(),
            WebhookSecret::parse(secret)
        );
        assert_eq!("whsec_".parse::<WebhookSecret>(), Err(KeyError::Empty));
        let key: SigningKey = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
            .parse()
            .unwrap();
        let public: PublicKey = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
            .parse()
            .unwrap();
        assert_eq!(key.public_key(), public);
        assert!(matches!(
            "whpk_AAAA".parse::<PublicKey>(),
            Err(KeyError::WrongLength { .. })
        ));
        assert!(matches!(
            "nope".parse::<SigningKey>(),
            Err(KeyError::MissingPrefix { .. })
        ));
    }
}
