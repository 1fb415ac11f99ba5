//! Secrets at rest. What the gateway stores that could sign or forge (the
//! endpoints' secrets, rotated ones still in their overlap, the gateway's
//! own keys) is sealed with the [`EncryptionKey`] given at start-up before
//! it reaches the database, so a copy of the database alone cannot sign a
//! message. API keys are not sealed: they are stored as hashes.
//!
//! A sealed value is text, versioned: `enc1:` then the standard base64 of
//! `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, AES-256-GCM from
//! `ring` (already rustls' one crypto provider, so no second crypto crate).
//! The nonce is random for every sealing: a key seals a handful of values
//! per endpoint, far below the 2^32 that random 96-bit nonces allow. The
//! value's place (table, column, row) is the associated data, so a
//! ciphertext copied into another row or column does not open.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

/// What every value sealed in this format starts with.
const PREFIX: &str = "enc1:";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The key that seals secrets at rest: 32 bytes, given in standard base64
/// (as `openssl rand -base64 32` prints them). Its `Debug` prints `***`.
#[derive(Clone)]
pub struct EncryptionKey(LessSafeKey);

/// Why a given encryption key is refused. Never shows the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("it is empty; give 32 random bytes in base64, e.g. from `openssl rand -base64 32`")]
    Empty,
    #[error(
        "it is not valid standard base64; give 32 random bytes in base64, e.g. from `openssl rand -base64 32`"
    )]
    NotBase64,
    #[error(
        "it decodes to {0} bytes, not 32; give 32 random bytes in base64, e.g. from `openssl rand -base64 32`"
    )]
    WrongLength(usize),
}

/// Why a stored value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("it is not encrypted (no {PREFIX:?} prefix)")]
    NotSealed,
    #[error("it is encrypted but malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "it does not decrypt: another encryption key sealed it, or it was changed or moved from another row"
    )]
    DoesNotOpen,
    #[error("the system's random number generator failed")]
    NoRandom,
}

impl EncryptionKey {
    /// Reads a key in standard base64; surrounding whitespace (a key file's
    /// newline) is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let bytes = STANDARD.decode(text).map_err(|_| KeyError::NotBase64)?;
        if bytes.len() != KEY_LEN {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// A new random key in the text form [`EncryptionKey::parse`] reads:
    /// for a key file (`ipn up`), and for gateways that live one run.
    pub fn generate_base64() -> Result<String, SecretError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::NoRandom)?;
        Ok(STANDARD.encode(bytes))
    }

    /// A new random key, for a database that lives one run (benchmarks,
    /// tests): nothing else will ever open what it seals.
    pub fn generate() -> Result<Self, SecretError> {
        let text = Self::generate_base64()?;
        Self::parse(&text).map_err(|_| SecretError::NoRandom)
    }

    /// Seals `plaintext` for the place named by `place` (table, column, row).
    pub fn seal(&self, plaintext: &[u8], place: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::NoRandom)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        let mut in_out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| SecretError::Malformed("too long to seal"))?;
        sealed.extend_from_slice(&in_out);
        Ok(format!("{PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// Opens a value sealed for `place`. A plaintext value is an error, never
    /// passed through: after the first start with a key, none is stored.
    pub fn open(&self, sealed: &str, place: &str) -> Result<Vec<u8>, SecretError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(SecretError::NotSealed)?;
        let mut bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed("not base64 after the prefix"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed("too short for a nonce and a tag"));
        }
        let (nonce, in_out) = bytes.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SecretError::Malformed("bad nonce"))?;
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(place.as_bytes()), in_out)
            .map_err(|_| SecretError::DoesNotOpen)?;
        Ok(plaintext.to_vec())
    }
}

/// Whether a stored value is in the sealed format (it may still not open).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(PREFIX.as_bytes())
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_key() -> EncryptionKey {
        EncryptionKey::generate().unwrap()
    }

    #[test]
    fn a_sealed_value_opens_in_its_place_with_its_key() {
        let key = random_key();
        let sealed = key
            .seal(b"whsec_c2VjcmV0", "endpoints.secret ep_1")
            .unwrap();
        assert!(sealed.starts_with("enc1:"), "{sealed}");
        assert!(!sealed.contains("whsec_"));
        assert_eq!(
            key.open(&sealed, "endpoints.secret ep_1").unwrap(),
            b"whsec_c2VjcmV0"
        );
        // A fresh nonce each time: the same secret never seals the same way.
        assert_ne!(
            sealed,
            key.seal(b"whsec_c2VjcmV0", "endpoints.secret ep_1")
                .unwrap()
        );
    }

    #[test]
    fn a_wrong_key_another_place_or_a_changed_byte_does_not_open() {
        let key = random_key();
        let sealed = key.seal(b"secret", "endpoints.secret ep_1").unwrap();
        let wrong = random_key();
        assert_eq!(
            wrong.open(&sealed, "endpoints.secret ep_1"),
            Err(SecretError::DoesNotOpen)
        );
        for place in ["endpoints.secret ep_2", "endpoints.previous_secret ep_1"] {
            assert_eq!(key.open(&sealed, place), Err(SecretError::DoesNotOpen));
        }
        let mut bytes = STANDARD.decode(&sealed[PREFIX.len()..]).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            let tampered = format!("{PREFIX}{}", STANDARD.encode(&bytes));
            assert_eq!(
                key.open(&tampered, "endpoints.secret ep_1"),
                Err(SecretError::DoesNotOpen),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
    }

    #[test]
    fn plaintext_and_malformed_values_are_errors_not_passed_through() {
        let key = random_key();
        let place = "secrets.x";
        assert_eq!(
            key.open("whsec_c2VjcmV0", place),
            Err(SecretError::NotSealed)
        );
        for bad in [
            "enc1:",
            "enc1:!!!",
            "enc1:AAAA",
            "enc1:AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(key.open(bad, place), Err(SecretError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(is_sealed(key.seal(b"", place).unwrap().as_bytes()));
        assert!(!is_sealed(b"whsec_abc"));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(EncryptionKey::parse(&format!("{}\n", STANDARD.encode([7u8; 32]))).is_ok());
        assert_eq!(EncryptionKey::parse("  ").err(), Some(KeyError::Empty));
        assert_eq!(
            EncryptionKey::parse("not base64!").err(),
            Some(KeyError::NotBase64)
        );
        assert_eq!(
            EncryptionKey::parse(&STANDARD.encode([7u8; 16])).err(),
            Some(KeyError::WrongLength(16))
        );
        // A 32-character password is not a key.
        assert!(EncryptionKey::parse("0123456789abcdef0123456789abcdef").is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", random_key()), "***");
    }
}
