//! A gateway started inside the bench process: one monotonic clock for every
//! instant, and no process boundary between the load and what it measures.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::storage::sqlite::Durability;
use ipn_gateway::{Config, Database, EncryptionKey, Gateway};

use super::api;

/// Longest wait for the gateway to stop at the end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A gateway on a fresh database in `dir` (loopback deliveries allowed),
/// and its admin key.
pub async fn start(durability: Durability, dir: &Path) -> anyhow::Result<(Gateway, String)> {
    let admin_key = api::admin_key();
    // The database lives one run: a random key that is never written down.
    let mut config = Config::new(
        Database::Sqlite(dir.join("gateway.db")),
        admin_key.clone(),
        EncryptionKey::generate()?,
    );
    config.network = NetworkPolicy::allow_private();
    config.durability = durability;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(config, listener)
        .await
        .context("starting the gateway")?;
    println!(
        "gateway: {} on SQLite in {} (synchronous={:?})",
        gateway.url(),
        dir.display(),
        durability
    );
    Ok((gateway, admin_key))
}

/// Stops the gateway; a slow or failed stop is worth a warning, not the run.
pub async fn stop(gateway: Gateway) {
    match tokio::time::timeout(SHUTDOWN_GRACE, gateway.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), "stopping the gateway"),
        Err(_) => tracing::warn!("the gateway did not stop within {SHUTDOWN_GRACE:?}"),
    }
}
