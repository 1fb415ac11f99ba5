//! The `standard` dialect: Standard Webhooks 1.0.
//!
//! A message is a JSON body with three headers: `webhook-id`,
//! `webhook-timestamp` (unix seconds) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256>` and `v1a,<base64 ed25519>`
//! signatures over `{id}.{timestamp}.{body}`. Receivers check the timestamp
//! (5 minutes either way) and accept the message if any signature matches any
//! of their keys, which is what lets a secret be rotated without a gap.

mod keys;
mod signature;

pub use keys::{KeyError, PublicKey, SigningKey, WebhookSecret};
pub use signature::{
    DEFAULT_TOLERANCE_SECS, Scheme, Signer, Verifier, VerifyError, VerifyKey, WebhookHeaders,
    signature_header, signed_content,
};
