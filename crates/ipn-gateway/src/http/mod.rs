//! What every HTTP route of the gateway shares, below the API, the
//! dashboard and the checkout page alike: the application state, who the
//! caller is (keys, the wrong-key throttle), the error answer, and the
//! actions both the API and the dashboard offer.

mod auth;
mod error;
mod resend;

use std::sync::Arc;

pub use auth::{
    Caller, Client, FAILURE_LIMIT, KeyFailures, bearer_key, caller_of, hash_key, hex, key_failures,
    new_api_key,
};
pub use error::{ApiError, payment_refused, subscription_refused};
pub use resend::resend_event;

use crate::delivery::Engine;

#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// SHA-256 of the admin key, compared in constant time.
    pub admin_key_hash: Arc<str>,
    /// The secret that keys request hashes for `Idempotency-Key`s.
    pub idempotency_hash_key: Arc<[u8]>,
    /// Where browsers reach the gateway (`http://127.0.0.1:7700`, no
    /// trailing slash): checkout pages' URLs start with it.
    pub public_url: Arc<str>,
    /// Wrong keys per client address (`auth.rs`), the API's and the
    /// dashboard's sign-in together.
    pub key_failures: Arc<KeyFailures>,
}
