//! `ipn gateway` and `ipn migrate`: the gateway as a service.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::{Config, Database, EncryptionKey, Gateway};

use crate::Fatal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on
    #[arg(long, env = "IPN_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Where to keep the data: sqlite://FILE, or postgres://user@host:port/db
    #[arg(long, env = "IPN_DATABASE_URL", default_value = "sqlite://gateway.db")]
    database_url: String,
    /// The key that manages merchants: at least 32 random characters (`openssl rand -hex 24`)
    #[arg(long, env = "IPN_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// The key that encrypts endpoint secrets in the database: 32 random bytes
    /// in standard base64, e.g. "$(openssl rand -base64 32)". Keep it apart
    /// from the database and give the same one at every start; the first
    /// start with a key encrypts the secrets an older release left in plain
    /// text
    #[arg(
        long,
        env = "IPN_ENCRYPTION_KEY",
        hide_env_values = true,
        value_name = "BASE64"
    )]
    encryption_key: String,
    /// Allow deliveries to private, loopback and link-local addresses (development only)
    #[arg(long, env = "IPN_ALLOW_PRIVATE_NETWORKS")]
    allow_private_networks: bool,
    /// Allow these networks only, besides public addresses (CIDR, repeatable)
    #[arg(
        long = "allow-network",
        env = "IPN_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    allow_networks: Vec<String>,
    /// Run on a test clock that POST /v1/test/clock/advance moves forward
    #[arg(long, env = "IPN_TEST_CLOCK")]
    test_clock: bool,
    /// Delays between attempts, e.g. 5s,5m,30m,2h (default: Standard Webhooks' three days)
    #[arg(long, env = "IPN_RETRY_SCHEDULE", value_delimiter = ',', value_parser = parse_duration)]
    retry_schedule: Vec<Duration>,
    /// Wrong API keys one client address may send in a minute before its
    /// further wrong keys get 429 (valid keys always go through)
    #[arg(long, env = "IPN_KEY_FAILURE_LIMIT", default_value_t = ipn_gateway::api::FAILURE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    key_failure_limit: u32,
    /// The gateway's address as customers' browsers reach it, for hosted
    /// checkout pages (default: the listening address)
    #[arg(long, env = "IPN_PUBLIC_URL")]
    public_url: Option<String>,
}

// The schema only: it needs no key; the gateway's first start with
// --encryption-key encrypts the secrets a database holds.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The database to migrate: sqlite://FILE, or postgres://user@host:port/db
    #[arg(long, env = "IPN_DATABASE_URL", default_value = "sqlite://gateway.db")]
    database_url: String,
}

/// `90`, `90s`, `5m`, `2h`, `1d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s, 5m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "ms" => return Ok(Duration::from_millis(number)),
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let database = Database::parse(&args.database_url)?;
    let encryption_key = EncryptionKey::parse(&args.encryption_key)
        .map_err(|e| anyhow!("--encryption-key (IPN_ENCRYPTION_KEY): {e}"))?;
    let mut config = Config::new(database, args.admin_key, encryption_key);
    config.test_clock = args.test_clock;
    config.public_url = args.public_url;
    config.network = if args.allow_private_networks {
        NetworkPolicy::allow_private()
    } else {
        let nets: Vec<&str> = args.allow_networks.iter().map(String::as_str).collect();
        NetworkPolicy::with_allow_list(&nets).context("--allow-network")?
    };
    config.key_failure_limit = args.key_failure_limit;
    if !args.retry_schedule.is_empty() {
        config.delivery.retry.delays = args.retry_schedule;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let gateway = Gateway::start(config, listener).await?;
    let stop = shutdown_signal();
    eprintln!("ipn gateway listening on {}", gateway.url());
    stop.await;
    eprintln!("stopping: finishing attempts in flight");
    gateway.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

pub fn migrate(args: MigrateArgs) -> Result<ExitCode, Fatal> {
    let database = Database::parse(&args.database_url)?;
    let applied = ipn_gateway::migrate(&database)?;
    println!("{applied} migration(s) applied to {}", args.database_url);
    Ok(ExitCode::SUCCESS)
}

/// Listens for Ctrl-C and SIGTERM and resolves at the first: either stops
/// a service gracefully. On Unix it listens from the moment it is called:
/// call it before saying the service is up, so a signal sent as soon as a
/// script reads that line is never missed (a handler set up later would let
/// it kill the process instead). Elsewhere, Ctrl-C from its first poll.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match streams {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "s", "5x", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_database_urls_are_refused() {
        assert!(Database::parse("sqlite://x.db").is_ok());
        for bad in ["", "sqlite://", "mysql://x", "x.db"] {
            assert!(Database::parse(bad).is_err(), "{bad:?}");
        }
    }
}
