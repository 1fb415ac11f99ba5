//! A gateway started inside the bench process: one monotonic clock for every
//! instant, and no process boundary between the load and what it measures.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::storage::sqlite::Durability;
use ipn_gateway::{Config, Database, EncryptionKey, Gateway};
use ipn_storage::postgres::TestDatabase;

use super::api;

/// Longest wait for the gateway to stop at the end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Where the gateway under test keeps its data, fresh for the run.
#[derive(Debug)]
pub enum Store {
    Sqlite(PathBuf, Durability),
    /// A database made on a PostgreSQL server for the run, dropped after.
    Postgres(Box<TestDatabase>),
}

impl Store {
    /// A fresh database on the server `url` names.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        let url = url.to_owned();
        let database = tokio::task::spawn_blocking(move || TestDatabase::create(&url))
            .await?
            .context("making a database for the run")?;
        Ok(Self::Postgres(Box::new(database)))
    }

    fn database(&self) -> Database {
        match self {
            Self::Sqlite(path, _) => Database::Sqlite(path.clone()),
            Self::Postgres(database) => Database::Postgres(database.url().to_owned()),
        }
    }
}

/// A gateway on `store` (loopback deliveries allowed), and its admin key.
pub async fn start(store: &Store) -> anyhow::Result<(Gateway, String)> {
    let admin_key = api::admin_key();
    // The database lives one run: a random key that is never written down.
    let mut config = Config::new(
        store.database(),
        admin_key.clone(),
        EncryptionKey::generate()?,
    );
    config.network = NetworkPolicy::allow_private();
    if let Store::Sqlite(_, durability) = store {
        config.durability = *durability;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(config, listener)
        .await
        .context("starting the gateway")?;
    match store {
        Store::Sqlite(path, durability) => println!(
            "gateway: {} on SQLite in {} (synchronous={durability:?})",
            gateway.url(),
            path.display(),
        ),
        Store::Postgres(database) => println!(
            "gateway: {} on PostgreSQL, database {} (synchronous_commit on)",
            gateway.url(),
            database.name(),
        ),
    }
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
