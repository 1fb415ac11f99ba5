//! `ipn merchant`: the merchant server as a service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ipn_core::standard::{PublicKey, WebhookSecret};
use ipn_merchant::config::DEFAULT_BODY_LIMIT;
use ipn_merchant::{Catalog, Config, GatewayKey, Merchant, parse_database_url};

use crate::Fatal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on
    #[arg(long, env = "IPN_LISTEN", default_value = "127.0.0.1:7701")]
    listen: SocketAddr,
    /// Where to keep the inbox and the shop's data: sqlite://FILE, or
    /// postgres://user@host:port/db
    #[arg(long, env = "IPN_DATABASE_URL", default_value = "sqlite://shop.db")]
    database_url: String,
    /// The gateway's base URL (PayPal postbacks, checkout sessions)
    #[arg(long, env = "IPN_GATEWAY_URL", default_value = "http://127.0.0.1:7700")]
    gateway_url: String,
    /// The merchant's API key at the gateway
    #[arg(long, env = "IPN_GATEWAY_KEY", hide_env_values = true)]
    gateway_key: String,
    /// The endpoint's signing secret, whsec_… (repeat, or separate with commas,
    /// to accept the old and the new one during a rotation)
    #[arg(
        long = "webhook-secret",
        env = "IPN_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ',',
        required_unless_present = "webhook_public_key",
        value_parser = parse_secret
    )]
    webhook_secrets: Vec<WebhookSecret>,
    /// The endpoint's ed25519 public key, whpk_…, to accept v1a signatures
    #[arg(long, env = "IPN_WEBHOOK_PUBLIC_KEY", value_parser = parse_public_key)]
    webhook_public_key: Option<PublicKey>,
    /// The products on sale, a JSON file {"products": [{"sku", "name", "kind",
    /// "price": {"amount", "currency"}, "description", "download"}]};
    /// without it, a built-in demo catalog
    #[arg(long, env = "IPN_CATALOG")]
    catalog: Option<PathBuf>,
    /// This shop's URL as customers reach it, where the gateway's checkout
    /// sends them back (default: http:// + the listening address)
    #[arg(long, env = "IPN_PUBLIC_URL")]
    public_url: Option<String>,
    /// The SMTP server customer emails go through: smtp://HOST:PORT
    /// (STARTTLS with ?tls=required), smtps://HOST:PORT, with user:password@
    /// if it needs a login; without it, emails are written to --mail-dir
    #[arg(long, env = "IPN_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// Where emails are written as .eml files when there is no --smtp-url
    /// (default: a `mail` folder beside the SQLite file, or in the working
    /// directory on PostgreSQL)
    #[arg(long, env = "IPN_MAIL_DIR")]
    mail_dir: Option<PathBuf>,
    /// The sender of customer emails
    #[arg(
        long,
        env = "IPN_MAIL_FROM",
        default_value = "ipn shop <shop@localhost>"
    )]
    mail_from: String,
    /// The shop's name, in emails and pages
    #[arg(long, env = "IPN_SHOP_NAME", default_value = "ipn demo shop")]
    shop_name: String,
    /// The folder the catalog's digital products (their `download` files)
    /// are served from (default: a `downloads` folder beside the SQLite file,
    /// or in the working directory on PostgreSQL)
    #[arg(long, env = "IPN_DOWNLOADS_DIR")]
    downloads_dir: Option<PathBuf>,
    /// This shop's merchant id at the gateway (mer_…): subscription notices
    /// must name it (orders are checked against the merchant their checkout
    /// was made with)
    #[arg(long, env = "IPN_MERCHANT_ID")]
    merchant_id: Option<String>,
    /// Take live payments only (by default the shop is in test mode and
    /// takes test payments only)
    #[arg(long, env = "IPN_LIVE")]
    live: bool,
    /// The password of the shop's admin pages (/admin, HTTP Basic, at least
    /// 8 characters); without it the admin pages are off
    #[arg(long, env = "IPN_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The user name of the shop's admin pages, with --admin-password
    #[arg(long, env = "IPN_ADMIN_USER", default_value = "admin")]
    admin_user: String,
    /// Seconds between two reads of the gateway's event list, which applies
    /// any IPN that never arrived; 0 turns reconciliation off
    #[arg(long, env = "IPN_RECONCILE_EVERY", default_value_t = 60)]
    reconcile_every: u64,
    /// The shop's endpoint at the gateway (ep_…): reconciliation reads only
    /// the events it takes; without it, the payment and subscription events
    #[arg(long, env = "IPN_ENDPOINT_ID")]
    endpoint_id: Option<String>,
}

fn parse_secret(text: &str) -> Result<WebhookSecret, String> {
    WebhookSecret::parse(text.trim()).map_err(|e| e.to_string())
}

fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    PublicKey::parse(text.trim()).map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let database = parse_database_url(&args.database_url).context("--database-url")?;
    // Checked before listening, so a bad catalog stops the start with the
    // product named instead of a shop that cannot sell.
    let catalog = match &args.catalog {
        Some(path) => Catalog::load(path).context("--catalog")?,
        None => Catalog::demo(),
    };
    let beside = |name: &str| Config::beside_database(&database, name);
    let mail_dir = args.mail_dir.clone().unwrap_or_else(|| beside("mail"));
    let downloads_dir = args
        .downloads_dir
        .clone()
        .unwrap_or_else(|| beside("downloads"));
    let config = Config {
        database,
        webhook_secrets: args.webhook_secrets,
        webhook_public_key: args.webhook_public_key,
        gateway_url: args.gateway_url,
        gateway_key: GatewayKey::new(args.gateway_key),
        body_limit: DEFAULT_BODY_LIMIT,
        catalog,
        public_url: args.public_url,
        smtp_url: args.smtp_url,
        mail_dir,
        mail_from: args.mail_from,
        shop_name: args.shop_name,
        downloads_dir: Some(downloads_dir),
        download_policy: Default::default(),
        live: args.live,
        merchant_id: args.merchant_id,
        reconcile_every: (args.reconcile_every > 0)
            .then(|| std::time::Duration::from_secs(args.reconcile_every)),
        endpoint_id: args.endpoint_id,
        clock: Default::default(),
        admin_user: args.admin_user,
        admin_password: args.admin_password.map(ipn_merchant::Hidden::new),
        order_limit: Default::default(),
        http_limits: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let merchant = Merchant::start(config, listener).await?;
    let stop = crate::gateway::shutdown_signal();
    eprintln!("ipn merchant listening on {}", merchant.url());
    stop.await;
    eprintln!("stopping: finishing requests in flight");
    merchant.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn secrets_are_parsed_and_bad_ones_refused() {
        let secret = WebhookSecret::generate().reveal();
        let other = WebhookSecret::generate().reveal();
        let cli = Cli::try_parse_from([
            "ipn",
            "--gateway-key",
            "k",
            "--webhook-secret",
            &format!("{secret},{other}"),
        ])
        .unwrap();
        assert_eq!(cli.args.webhook_secrets.len(), 2);
        for bad in ["whsec_", "nope", "whsec_!!!!"] {
            let got = Cli::try_parse_from(["ipn", "--gateway-key", "k", "--webhook-secret", bad]);
            assert!(got.is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["ipn", "--gateway-key", "k"]).is_err());
    }

    #[test]
    fn the_catalog_and_public_url_are_optional() {
        let secret = WebhookSecret::generate().reveal();
        let base = ["ipn", "--gateway-key", "k", "--webhook-secret", &secret];
        let cli = Cli::try_parse_from(base).unwrap();
        assert_eq!(cli.args.catalog, None);
        assert_eq!(cli.args.public_url, None);
        let mut given = base.to_vec();
        given.extend([
            "--catalog",
            "shop.json",
            "--public-url",
            "https://shop.test",
        ]);
        let cli = Cli::try_parse_from(given).unwrap();
        assert_eq!(cli.args.catalog, Some(PathBuf::from("shop.json")));
        assert_eq!(cli.args.public_url.as_deref(), Some("https://shop.test"));
    }
}
