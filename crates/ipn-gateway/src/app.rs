//! Wiring: open the store, load the directory and the schedule, start the
//! writer, the delivery engine and the HTTP server; stop them in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::delivery::ssrf::{HostResolver, NetworkPolicy, SystemResolver};
use crate::delivery::{DeliveryConfig, Engine, Job, Parts};
use crate::directory::Directory;
use crate::http::{AppState, hash_key};
use crate::metrics::Metrics;
use crate::secrets::EncryptionKey;
use crate::storage::Store;
use crate::storage::postgres::Postgres;
use crate::storage::sqlite::{Durability, Sqlite};

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: Database,
    pub admin_key: String,
    /// Seals endpoint secrets and the gateway's own keys at rest; the same
    /// key on every start of one database.
    pub encryption_key: EncryptionKey,
    pub network: NetworkPolicy,
    pub test_clock: bool,
    pub delivery: DeliveryConfig,
    /// SQLite's; PostgreSQL keeps its own `synchronous_commit` (on by
    /// default: a commit is on disk before the gateway answers).
    pub durability: Durability,
    /// How endpoint host names are resolved (tests substitute their own).
    pub resolver: Arc<dyn HostResolver>,
    /// Where browsers reach the gateway, for checkout page URLs; `None`
    /// for the listening address (loopback when it listens on all).
    pub public_url: Option<String>,
    /// Wrong keys an address may send in a minute before it gets 429
    /// (`api/auth.rs`); tests that send many on purpose raise it.
    pub key_failure_limit: u32,
    /// How long HTTP clients may be slow or idle, and how many may be
    /// connected at once.
    pub http_limits: ipn_web::Limits,
}

impl Config {
    /// A gateway on `database` with the defaults: full durability, the
    /// standard retry schedule, loopback refused as a target.
    pub fn new(
        database: Database,
        admin_key: impl Into<String>,
        encryption_key: EncryptionKey,
    ) -> Self {
        Self {
            database,
            admin_key: admin_key.into(),
            encryption_key,
            network: NetworkPolicy::public_only(),
            test_clock: false,
            delivery: DeliveryConfig::default(),
            durability: Durability::Full,
            resolver: Arc::new(SystemResolver),
            public_url: None,
            key_failure_limit: crate::http::FAILURE_LIMIT,
            http_limits: ipn_web::Limits::default(),
        }
    }
}

/// The shortest admin key taken, in characters.
pub const ADMIN_KEY_MIN: usize = 32;
/// The fewest distinct characters an admin key must have: a random key of
/// 32 characters has far more, `aaaa…` or `1234…1234` fewer.
const ADMIN_KEY_DISTINCT: usize = 10;

/// Refuses an admin key that is short or plainly not random: it opens
/// every merchant's data, and wrong keys are only throttled, not stopped.
pub fn check_admin_key(key: &str) -> anyhow::Result<()> {
    let key = key.trim();
    let length = key.chars().count();
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let make_one = "make one with `openssl rand -hex 24`";
    if length < ADMIN_KEY_MIN {
        bail!(
            "the admin key (--admin-key, IPN_ADMIN_KEY) is {length} characters: \
             at least {ADMIN_KEY_MIN} random ones are needed; {make_one}"
        );
    }
    if distinct.len() < ADMIN_KEY_DISTINCT {
        bail!(
            "the admin key (--admin-key, IPN_ADMIN_KEY) has only {} different characters, \
             so it is not random; {make_one}",
            distinct.len()
        );
    }
    Ok(())
}

/// Where the gateway keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://user@host:port/db` URL.
    Postgres(String),
}

impl Database {
    /// Reads `sqlite://FILE` (or `sqlite:FILE`), or
    /// `postgres://user@host:port/db` (or `postgresql://…`).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                bail!("database URL {url:?} names no file: use sqlite://FILE");
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            crate::storage::postgres::check_url(url)?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        bail!("database URL {url:?} is neither sqlite://FILE nor postgres://user@host:port/db");
    }

    fn open(&self, durability: Durability, key: EncryptionKey) -> anyhow::Result<Arc<dyn Store>> {
        match self {
            Self::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                Ok(Arc::new(Sqlite::open(path, durability, key)?))
            }
            Self::Postgres(url) => Ok(Arc::new(Postgres::open(url, key)?)),
        }
    }
}

/// The URL without its password, which may be in it.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => {
                let shown = match url::Url::parse(url) {
                    Ok(mut parsed) if parsed.password().is_some() => {
                        let _ = parsed.set_password(Some("***"));
                        parsed.to_string()
                    }
                    Ok(_) => url.clone(),
                    Err(_) => "(unparsed)".to_owned(),
                };
                f.debug_tuple("Postgres").field(&shown).finish()
            }
        }
    }
}

/// Applies the schema to a database and says how many migrations ran.
/// Needs no key: the secrets a database holds are sealed by the gateway's
/// first start with a key.
pub fn migrate(database: &Database) -> anyhow::Result<usize> {
    match database {
        Database::Sqlite(path) => crate::storage::sqlite::migrate(path),
        Database::Postgres(url) => crate::storage::postgres::migrate(url),
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    delivery: JoinHandle<()>,
    billing: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

impl Gateway {
    /// Starts the gateway on an already bound listener (port 0 in tests).
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        check_admin_key(&config.admin_key)?;
        config
            .http_limits
            .validate("http_limits")
            .map_err(anyhow::Error::msg)?;
        let addr = listener.local_addr()?;
        let public_url = public_url(config.public_url.as_deref(), addr)?;
        let database = config.database.clone();
        let durability = config.durability;
        let key = config.encryption_key.clone();
        let (store, merchants, endpoints, offset, idempotency_hash_key) =
            tokio::task::spawn_blocking(move || {
                let store = database.open(durability, key)?;
                let merchants = store.merchants()?;
                let endpoints = store.endpoints()?;
                let offset = store.clock_offset()?;
                let idempotency_hash_key = store.idempotency_hash_key()?;
                Ok::<_, anyhow::Error>((store, merchants, endpoints, offset, idempotency_hash_key))
            })
            .await??;
        let clock = Arc::new(if config.test_clock {
            Clock::test(offset)
        } else {
            Clock::system()
        });
        let (writer, writer_thread) = crate::writes::start(Arc::clone(&store))?;
        let engine = Engine::new(
            Parts {
                clock,
                store,
                writer,
                directory: Arc::new(Directory::load(merchants, endpoints)),
                metrics: Arc::new(Metrics::default()),
                policy: Arc::new(config.network.clone()),
                resolver: config.resolver.clone(),
            },
            config.delivery.clone(),
        )?;
        let recovered = tokio::task::spawn_blocking({
            let engine = Arc::clone(&engine);
            move || recover_schedule(&engine)
        })
        .await??;
        tracing::info!(%addr, scheduled = recovered, "gateway started");

        let (shutdown, stop) = watch::channel(false);
        let delivery = tokio::spawn(Arc::clone(&engine).run(stop.clone()));
        let billing = tokio::spawn(crate::processor::billing::run(
            Arc::clone(&engine),
            stop.clone(),
        ));
        let state = AppState {
            engine: Arc::clone(&engine),
            admin_key_hash: hash_key(config.admin_key.trim()).into(),
            idempotency_hash_key: idempotency_hash_key.into(),
            public_url: public_url.into(),
            key_failures: Arc::new(crate::http::key_failures(config.key_failure_limit)),
        };
        let mut stop_http = stop;
        let server = tokio::spawn(ipn_web::serve(
            listener,
            crate::routes::router(state),
            config.http_limits,
            async move {
                let _ = stop_http.wait_for(|stop| *stop).await;
            },
        ));
        Ok(Self {
            addr,
            engine,
            shutdown,
            server,
            delivery,
            billing,
            writer: writer_thread,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The gateway's clock (a test clock when started with one), for a shop
    /// run beside it that must agree on what time it is.
    pub fn clock(&self) -> Arc<Clock> {
        Arc::clone(&self.engine.clock)
    }

    /// Stops accepting requests, lets attempts in flight finish, commits
    /// what is queued, and returns when everything has stopped.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await?;
        self.billing.await?;
        self.delivery.await?;
        drop(self.engine);
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        Ok(())
    }
}

/// The configured public URL without its trailing slash, or else the
/// listening address; a wildcard address becomes loopback, the one address
/// that surely reaches it from this machine.
fn public_url(configured: Option<&str>, addr: SocketAddr) -> anyhow::Result<String> {
    if let Some(text) = configured {
        let url = url::Url::parse(text)
            .with_context(|| format!("public_url {text:?} is not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            bail!("public_url {text:?} must be an http(s) URL with a host");
        }
        return Ok(text.trim_end_matches('/').to_owned());
    }
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

/// Puts every pending delivery back into the schedule, in chunks as they are
/// read, so that they are never all held twice.
fn recover_schedule(engine: &Engine) -> anyhow::Result<usize> {
    const CHUNK: usize = 10_000;
    let mut chunk = Vec::with_capacity(CHUNK);
    let count = engine.store.pending_deliveries(&mut |delivery| {
        chunk.push(Job::new(delivery, None));
        if chunk.len() == CHUNK {
            engine.schedule(chunk.drain(..));
        }
    })?;
    engine.schedule(chunk);
    Ok(count)
}
