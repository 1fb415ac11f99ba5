//! What every store seals the same way: where each sealed value belongs
//! (its associated data: a value moved to another row or column does not
//! open), and the key check that refuses a wrong key at start, even on an
//! empty database. The cipher is `crate::secrets`; the SQL is each store's.

use anyhow::{Context as _, anyhow};
use ipn_core::id::EndpointId;
use ipn_core::standard::WebhookSecret;

use crate::model::Endpoint;
use crate::secrets::EncryptionKey;
use crate::storage::StoreError;

/// The `secrets` row holding a known text sealed with the database's key.
pub(crate) const KEY_CHECK: &str = "key_check";
const KEY_CHECK_TEXT: &[u8] = b"the ipn gateway's encryption key";

/// The gateway's own secrets: each 32 random bytes, made once.
pub(crate) const OWN_SECRETS: &[&str] = &["idempotency_hash_key"];

/// Where a sealed endpoint secret belongs.
pub(crate) fn endpoint_place(column: &str, id: &str) -> String {
    format!("endpoints.{column} {id}")
}

/// An endpoint's secrets sealed for their row and column: the current one,
/// and the rotated-out one while it overlaps.
pub(crate) fn seal_endpoint_secrets(
    key: &EncryptionKey,
    endpoint: &Endpoint,
) -> Result<(String, Option<String>), StoreError> {
    let id = endpoint.id.to_string();
    let secret = key.seal(
        endpoint.secret.reveal().as_bytes(),
        &endpoint_place("secret", &id),
    )?;
    let previous = match &endpoint.previous_secret {
        Some((previous, _)) => Some(key.seal(
            previous.reveal().as_bytes(),
            &endpoint_place("previous_secret", &id),
        )?),
        None => None,
    };
    Ok((secret, previous))
}

/// An endpoint's secret, opened from its column. The key was checked at
/// start, so a value that does not open was changed or moved.
pub(crate) fn open_endpoint_secret(
    key: &EncryptionKey,
    sealed: &str,
    column: &str,
    id: EndpointId,
) -> Result<WebhookSecret, StoreError> {
    let place = endpoint_place(column, &id.to_string());
    let opened = key
        .open(sealed, &place)
        .map_err(|e| anyhow!("{place}: {e}"))?;
    let text =
        String::from_utf8(opened).map_err(|_| anyhow!("{place}: not UTF-8 once decrypted"))?;
    WebhookSecret::parse(&text).map_err(|e| anyhow!("{place}: {e}"))
}

/// Seals a value a store kept in plain text (from before the database had
/// a key). A value already sealed where plain text is expected was not
/// written by the gateway: an error, never sealed twice.
pub(crate) fn seal_plain(
    key: &EncryptionKey,
    value: &[u8],
    place: &str,
) -> Result<String, StoreError> {
    if crate::secrets::is_sealed(value) {
        return Err(anyhow!(
            "{place} is already encrypted where plain text was expected: the database \
             was changed outside the gateway"
        ));
    }
    key.seal(value, place)
        .with_context(|| format!("encrypting {place}"))
}

/// Where one of the gateway's own sealed secrets belongs.
pub(crate) fn secret_place(name: &str) -> String {
    format!("secrets.{name}")
}

/// The key check to store with a database's first key.
pub(crate) fn key_check(key: &EncryptionKey) -> Result<String, StoreError> {
    Ok(key.seal(KEY_CHECK_TEXT, &secret_place(KEY_CHECK))?)
}

/// Refuses a key that did not seal this database's key check.
pub(crate) fn check_key(key: &EncryptionKey, stored: &str) -> Result<(), StoreError> {
    match key.open(stored, &secret_place(KEY_CHECK)) {
        Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
        _ => Err(anyhow!(
            "the encryption key does not match this database: give the key it was \
             first started with"
        )),
    }
}
