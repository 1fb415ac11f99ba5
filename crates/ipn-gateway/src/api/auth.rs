//! Who is calling: the admin (manages merchants, the test clock) or a
//! merchant (sees only its own objects). Keys arrive as `Authorization:
//! Bearer <key>`; merchant keys are stored as SHA-256 hashes only.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use ipn_core::id::MerchantId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Merchant(MerchantId),
}

impl Caller {
    /// The merchant, or 403 for the admin key on a merchant's route.
    pub fn merchant(self) -> Result<MerchantId, ApiError> {
        match self {
            Self::Merchant(id) => Ok(id),
            Self::Admin => Err(ApiError::forbidden(
                "this route takes a merchant's API key, not the admin key",
            )),
        }
    }

    pub fn admin(self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Merchant(_) => Err(ApiError::forbidden("this route takes the admin key")),
        }
    }

    /// The namespace of this caller's Idempotency-Keys.
    pub fn scope(self) -> String {
        match self {
            Self::Admin => "admin".to_owned(),
            Self::Merchant(id) => id.to_string(),
        }
    }
}

/// Hex SHA-256 of an API key. Keys are 256-bit random, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Lowercase hex of bytes (on every request: no `format!` per byte).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A new merchant API key: `sk_test_` and 32 random bytes.
pub fn new_api_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "sk_test_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = hash_key(key);
        if bool::from(hash.as_bytes().ct_eq(state.admin_key_hash.as_bytes())) {
            return Ok(Self::Admin);
        }
        state
            .engine
            .directory
            .merchant_by_key_hash(&hash)
            .map(Self::Merchant)
            .ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_to_the_sha256_hex_digest() {
        // SHA-256("abc"), from FIPS 180-2.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }
}
