//! The token in a download link:
//!
//! ```text
//! base64url(grant id) "." base64url(HMAC-SHA256(key, grant id))
//! ```
//!
//! both without padding, so the token is URL-safe as it is. The MAC is the
//! whole 32 bytes: the token is in a link, not typed, so there is no reason
//! to shorten it. Everything else (expiry, uses, revocation) is in the row.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The longest token [`verify`] reads; a real one is about 83 characters.
const MAX_TOKEN: usize = 128;

/// The key that signs download tokens: 32 random bytes the database made
/// (`DownloadReads::download_key`). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; 32 bytes cannot fail.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The token for grant `id`.
pub fn sign(key: &SigningKey, id: &str) -> String {
    let mut mac = key.mac();
    mac.update(id.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(id),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The grant id a token was signed for, or `None` if `key` did not sign it.
/// The tag is compared in constant time (`verify_slice`); a token that is
/// not canonical base64url (so that two spellings could name one token) is
/// refused before that.
pub fn verify(key: &SigningKey, token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let (id, tag) = token.split_once('.')?;
    let id = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut mac = key.mac();
    mac.update(id.as_bytes());
    mac.verify_slice(&tag).ok()?;
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "dl_01JF8ZQ4Y7V6T5R4E3W2Q1P0NM";

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_token_names_its_grant_and_is_url_safe() {
        let token = sign(&key(7), ID);
        assert_eq!(verify(&key(7), &token).as_deref(), Some(ID));
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{token}"
        );
        assert!(token.len() <= MAX_TOKEN, "{}", token.len());
        assert!(!token.contains(ID), "the id shows in {token}");
        // Deterministic: the same grant always has the same link.
        assert_eq!(sign(&key(7), ID), token);
        assert_eq!(format!("{:?}", key(7)), "SigningKey(***)");
    }

    #[test]
    fn any_one_changed_character_is_refused() {
        let key = key(7);
        let token = sign(&key, ID);
        for (index, original) in token.char_indices() {
            for replacement in ['A', 'B', 'a', 'z', '0', '9', '-', '_', '.', '=', '/', '+'] {
                if replacement == original {
                    continue;
                }
                let mut forged = token.clone();
                forged.replace_range(index..=index, replacement.encode_utf8(&mut [0; 4]));
                assert_eq!(verify(&key, &forged), None, "{forged} was accepted");
            }
        }
    }

    #[test]
    fn another_key_or_a_cut_or_extended_token_is_refused() {
        let token = sign(&key(7), ID);
        assert_eq!(verify(&key(8), &token), None);
        assert_eq!(verify(&key(7), &token[..token.len() - 1]), None);
        assert_eq!(verify(&key(7), &format!("{token}A")), None);
        assert_eq!(verify(&key(7), &format!("{token}.")), None);
        let (id, _) = token.split_once('.').unwrap();
        assert_eq!(verify(&key(7), id), None);
        // Another id under this token's tag.
        let other = URL_SAFE_NO_PAD.encode("dl_01JF8ZQ4Y7V6T5R4E3W2Q1P0NN");
        let (_, tag) = token.split_once('.').unwrap();
        assert_eq!(verify(&key(7), &format!("{other}.{tag}")), None);
        for junk in ["", ".", "..", "x", "%2e%2e", &"A".repeat(4096)] {
            assert_eq!(verify(&key(7), junk), None, "{junk:?}");
        }
    }
}
