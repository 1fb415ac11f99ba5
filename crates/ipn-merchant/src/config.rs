//! The merchant's settings: [`Config`], validated once at start, each
//! error naming its setting; secret settings are [`Hidden`], whose `Debug`
//! prints `***`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ipn_core::standard::{PublicKey, Verifier, VerifyKey, WebhookSecret};

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::mail::Transport;
use crate::storage::Database;
use crate::verify::postback::Postback;

/// The largest request body a receiver reads: the gateway's largest
/// payload, so anything the gateway may send fits.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Everything the merchant server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the inbox and everything else is kept: a SQLite file (created
    /// if missing) or a PostgreSQL database.
    pub database: Database,
    /// Secrets whose `v1` signatures `/webhooks` accepts: the endpoint's
    /// current one, plus the previous one while a rotation is under way.
    pub webhook_secrets: Vec<WebhookSecret>,
    /// A public key whose `v1a` (ed25519) signatures `/webhooks` accepts.
    pub webhook_public_key: Option<PublicKey>,
    /// The gateway's base URL (postbacks, checkout sessions,
    /// reconciliation).
    pub gateway_url: String,
    /// The merchant's API key at the gateway.
    pub gateway_key: GatewayKey,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// What the shop sells.
    pub catalog: Catalog,
    /// This shop's base URL as customers' browsers reach it (behind a proxy,
    /// the proxy's); the gateway's checkout returns them to
    /// `{public_url}/orders/{id}`. `None`: `http://` + the listening address
    /// (loopback when listening on all addresses).
    pub public_url: Option<String>,
    /// Where customer emails go: an SMTP server (`smtp://HOST:PORT`,
    /// `smtps://…`), else `.eml` files in `mail_dir`.
    pub smtp_url: Option<String>,
    /// The folder emails are written to when there is no SMTP server.
    pub mail_dir: PathBuf,
    /// The sender of customer emails (`Shop <shop@example.com>`).
    pub mail_from: String,
    /// The shop's name, in emails and pages.
    pub shop_name: String,
    /// The folder digital products are served from (`/downloads/{token}`).
    pub downloads_dir: Option<PathBuf>,
    /// How long a download link lasts and how many times it works.
    pub download_policy: crate::downloads::Policy,
    /// Live mode: take only live payments (test mode: only test ones).
    pub live: bool,
    /// The shop's merchant id at the gateway, when known: subscription
    /// notices (which have no order to check against) must name it.
    pub merchant_id: Option<String>,
    /// The user name of the shop's admin pages (HTTP Basic), `admin` by
    /// default.
    pub admin_user: String,
    /// The password of the shop's admin pages (`/admin`, HTTP Basic);
    /// `None`: the admin pages are off (404).
    pub admin_password: Option<Hidden>,
    /// How often reconciliation reads the gateway's event list once caught
    /// up; `None` turns it off.
    pub reconcile_every: Option<Duration>,
    /// The shop's endpoint at the gateway (`ep_…`): reconciliation reads
    /// only the events it takes. `None`: the payment and subscription events
    /// the handler acts on.
    pub endpoint_id: Option<String>,
    /// The shop's clock: real time, or a gateway's test clock.
    pub clock: Clock,
    /// Orders (`POST /api/orders`, the Buy form) one client address may
    /// make per window: each asks the gateway for a checkout session.
    pub order_limit: OrderLimit,
    /// How long HTTP clients may be slow or idle, and how many may be
    /// connected at once.
    pub http_limits: ipn_web::Limits,
}

/// At most `orders` per `window` from one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimit {
    pub orders: u32,
    pub window: Duration,
}

impl Default for OrderLimit {
    /// Far more than a person buys, or a test suite makes from one
    /// address; far fewer than a script could fill the gateway with.
    fn default() -> Self {
        Self {
            orders: 200,
            window: Duration::from_secs(600),
        }
    }
}

impl Config {
    /// A merchant server on `database` that accepts messages signed with
    /// `webhook_secret`, with the default body limit, in test mode, writing
    /// emails to a `mail` folder and serving downloads from a `downloads`
    /// folder, both beside a SQLite file (see [`Config::beside_database`]).
    pub fn new(
        database: Database,
        gateway_url: impl Into<String>,
        gateway_key: GatewayKey,
        webhook_secret: WebhookSecret,
    ) -> Self {
        let mail_dir = Self::beside_database(&database, "mail");
        let downloads_dir = Self::beside_database(&database, "downloads");
        Self {
            database,
            webhook_secrets: vec![webhook_secret],
            webhook_public_key: None,
            gateway_url: gateway_url.into(),
            gateway_key,
            body_limit: DEFAULT_BODY_LIMIT,
            catalog: Catalog::demo(),
            public_url: None,
            smtp_url: None,
            mail_dir,
            mail_from: "ipn shop <shop@localhost>".to_owned(),
            shop_name: "ipn demo shop".to_owned(),
            downloads_dir: Some(downloads_dir),
            download_policy: crate::downloads::Policy::default(),
            live: false,
            merchant_id: None,
            admin_user: "admin".to_owned(),
            admin_password: None,
            reconcile_every: Some(Duration::from_secs(60)),
            endpoint_id: None,
            clock: Clock::system(),
            order_limit: OrderLimit::default(),
            http_limits: ipn_web::Limits::default(),
        }
    }

    /// The folder `name` beside the SQLite file, or in the working
    /// directory on PostgreSQL: where the merchant's files go by default.
    pub fn beside_database(database: &Database, name: &str) -> PathBuf {
        database
            .folder()
            .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
    }

    /// Checks every setting once, naming the one that is wrong; returns the
    /// verifier `/webhooks` uses and the postback client. (The catalog was
    /// checked when it was built.)
    pub(crate) fn validate(&self) -> anyhow::Result<(Verifier, Postback, Transport)> {
        if let Some(public) = &self.public_url {
            check_http_url("public_url", public)?;
        }
        check_http_url("gateway_url", &self.gateway_url)?;
        if self.gateway_key.0.trim().is_empty() {
            bail!("gateway_key is empty: give the merchant's API key at the gateway");
        }
        if let Some(endpoint_id) = &self.endpoint_id
            && ipn_core::id::EndpointId::parse(endpoint_id).is_err()
        {
            bail!("endpoint_id {endpoint_id:?} is not an endpoint id (ep_…)");
        }
        if let Some(password) = &self.admin_password
            && password.reveal().len() < 8
        {
            bail!("admin_password must be at least 8 characters");
        }
        if self.admin_user.is_empty() || self.admin_user.contains(':') {
            bail!("admin_user must be a name without ':' (HTTP Basic splits at the first one)");
        }
        if self.body_limit == 0 {
            bail!("body_limit must be at least one byte");
        }
        if self.order_limit.orders == 0 || self.order_limit.window.is_zero() {
            bail!("order_limit must allow at least one order in a window longer than zero");
        }
        self.http_limits
            .validate("http_limits")
            .map_err(anyhow::Error::msg)?;
        let mut keys: Vec<VerifyKey> = self
            .webhook_secrets
            .iter()
            .cloned()
            .map(VerifyKey::Secret)
            .collect();
        keys.extend(self.webhook_public_key.map(VerifyKey::Ed25519));
        if keys.is_empty() {
            bail!("webhook_secret: give at least one whsec_ secret (or a whpk_ public key)");
        }
        let transport = match &self.smtp_url {
            Some(url) => Transport::smtp(url).context("smtp_url")?,
            None => Transport::folder(&self.mail_dir),
        };
        if self.shop_name.trim().is_empty() {
            bail!("shop_name is empty");
        }
        Ok((
            Verifier::new(keys),
            Postback::new(&self.gateway_url)?,
            transport,
        ))
    }
}

fn check_http_url(setting: &str, text: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(text)
        .with_context(|| format!("{setting} {text:?} is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        bail!("{setting} {text:?} must be an http(s) URL with a host");
    }
    Ok(())
}

/// A secret setting (an API key, a password). Its `Debug` hides it, so it
/// never reaches a log through a printed `Config`.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(String);

/// The merchant's API key at the gateway.
pub type GatewayKey = Hidden;

impl Hidden {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, where it is used (an `Authorization` header, a
    /// password check).
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads `sqlite://FILE` (or `sqlite:FILE`), or
/// `postgres://user@host:port/db` (or `postgresql://…`).
pub fn parse_database_url(url: &str) -> anyhow::Result<Database> {
    Database::parse(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(
            Database::Sqlite("shop.db".into()),
            "http://127.0.0.1:7700",
            GatewayKey::new("key"),
            WebhookSecret::generate(),
        )
    }

    #[test]
    fn database_urls_name_a_file_or_a_postgres_database() {
        assert_eq!(
            parse_database_url("sqlite://shop.db").unwrap(),
            Database::Sqlite("shop.db".into())
        );
        assert_eq!(
            parse_database_url("sqlite:/tmp/x.db").unwrap(),
            Database::Sqlite("/tmp/x.db".into())
        );
        for url in ["postgres://u@h:5432/shop", "postgresql://u:pw@h/shop"] {
            assert_eq!(
                parse_database_url(url).unwrap(),
                Database::Postgres(url.into())
            );
        }
        for bad in [
            "",
            "sqlite://",
            "mysql://u:pw@h/x",
            "shop.db",
            "postgres://h:x/db",
        ] {
            let error = format!("{:#}", parse_database_url(bad).unwrap_err());
            assert!(!error.contains("pw"), "{bad:?}: {error}");
        }
        let shown = Database::Postgres("postgres://u:secret@h/shop".into());
        assert_eq!(shown.to_string(), "postgres://u:***@h/shop");
        assert!(!format!("{shown:?}").contains("secret"));
    }

    #[test]
    fn files_go_beside_a_sqlite_file_or_in_the_working_directory() {
        let beside = |database: &Database| Config::beside_database(database, "mail");
        assert_eq!(
            beside(&Database::Sqlite("/data/shop.db".into())),
            PathBuf::from("/data/mail")
        );
        assert_eq!(
            beside(&Database::Sqlite("shop.db".into())),
            PathBuf::from("mail")
        );
        assert_eq!(
            beside(&Database::Postgres("postgres://u@h/shop".into())),
            PathBuf::from("mail")
        );
    }

    #[test]
    fn each_bad_setting_is_named() {
        assert!(config().validate().is_ok());
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 9] = [
            ("public_url", |c| c.public_url = Some("shop.example".into())),
            ("public_url", |c| c.public_url = Some("mailto:a@b.c".into())),
            ("gateway_url", |c| c.gateway_url = "not a url".into()),
            ("gateway_url", |c| c.gateway_url = "ftp://host/".into()),
            ("gateway_key", |c| c.gateway_key = GatewayKey::new(" ")),
            ("body_limit", |c| c.body_limit = 0),
            ("http_limits.idle", |c| c.http_limits.idle = Duration::ZERO),
            ("http_limits.max_connections", |c| {
                c.http_limits.max_connections = 0
            }),
            ("webhook_secret", |c| c.webhook_secrets.clear()),
        ];
        for (setting, spoil) in cases {
            let mut config = config();
            spoil(&mut config);
            let error = format!("{:#}", config.validate().unwrap_err());
            assert!(error.contains(setting), "{setting}: {error}");
        }
    }

    #[test]
    fn a_public_key_alone_is_enough() {
        let mut config = config();
        config.webhook_secrets.clear();
        config.webhook_public_key = Some(ipn_core::standard::SigningKey::generate().public_key());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_gateway_key_is_not_printed() {
        let mut config = config();
        config.gateway_key = GatewayKey::new("sk_visible_if_leaked");
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk_visible_if_leaked"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }
}
