//! Who is calling: the admin (manages merchants, the test clock) or a
//! merchant (sees only its own objects). Keys arrive as `Authorization:
//! Bearer <key>` (the scheme in any case, RFC 7235); merchant keys are
//! stored as SHA-256 hashes only.
//!
//! **Wrong keys are throttled per address.** After [`FAILURE_LIMIT`] wrong
//! keys (from the API or the dashboard's sign-in) within
//! [`FAILURE_WINDOW`], every further wrong key from the address gets 429
//! with `Retry-After` for the rest of the window: a client that keeps
//! sending wrong keys is told to stop. A request with no key at all is no
//! guess and always gets a plain 401. A valid key always
//! goes through, never counted: the shop, a browser and a mistyping person
//! share one address under `ipn up` (and every client shares a proxy's), and
//! one of them must not lock the others out (the hole the shop's admin had).
//! The keys themselves are what stops guessing: merchant keys are 32 random
//! bytes, the admin key at least 32 random characters. A valid key is looked
//! up and nothing else, so the API's throughput does not pay for the count.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine as _;
use ipn_core::id::MerchantId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Wrong keys an address may send within [`FAILURE_WINDOW`], by default
/// (`Config::key_failure_limit`).
pub const FAILURE_LIMIT: u32 = 10;
/// How long wrong keys are remembered, counted from the first.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Wrong API keys counted per client address (the API's and the
/// dashboard's sign-in share it).
pub type KeyFailures = ipn_web::throttle::Throttle<IpAddr>;

/// A fresh count of wrong keys, `limit` a window.
pub fn key_failures(limit: u32) -> KeyFailures {
    KeyFailures::new(limit, FAILURE_WINDOW)
}

pub use ipn_web::throttle::Client;

/// The key of an `Authorization: Bearer <key>` header, the scheme in any
/// case.
pub fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The caller an API key names: the admin, a merchant, or nobody.
pub fn caller_of(state: &AppState, key: &str) -> Option<Caller> {
    let hash = hash_key(key);
    if bool::from(hash.as_bytes().ct_eq(state.admin_key_hash.as_bytes())) {
        return Some(Caller::Admin);
    }
    state
        .engine
        .directory
        .merchant_by_key_hash(&hash)
        .map(Caller::Merchant)
}

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
        let key = bearer_key(&parts.headers);
        if let Some(caller) = key.and_then(|key| caller_of(state, key)) {
            return Ok(caller);
        }
        // No key is no guess: always a plain 401.
        if key.is_none() {
            return Err(ApiError::unauthorized());
        }
        // A wrong key: counted, and past the limit told to stop.
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        if let Some(ip) = client {
            let now = Instant::now();
            if let Some(wait) = state.key_failures.locked(&ip, now) {
                return Err(ApiError::too_many_failures(wait));
            }
            state.key_failures.count(ip, now);
        }
        Err(ApiError::unauthorized())
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

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            headers
        };
        for value in ["Bearer k1", "bearer k1", "BEARER  k1 ", "BeArEr k1"] {
            assert_eq!(bearer_key(&with(value)), Some("k1"), "{value}");
        }
        for value in ["Basic k1", "Bearer", "Bearer ", "Bearerk1", "k1"] {
            assert_eq!(bearer_key(&with(value)), None, "{value}");
        }
    }
}
