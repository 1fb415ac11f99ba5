//! `ipn up`: the gateway and the demo shop in one process, on one data
//! directory, set up on the first run and reused after: the README's first
//! command.
//!
//! The data directory holds `gateway.db`, `shop.db`, the shop's `mail/`
//! folder (emails as `.eml` files, unless `--smtp-url`), its `downloads/`
//! (the demo e-book), `credentials.json`: the admin key, the merchant's
//! id and API key, the endpoint's id and secret, the shop's admin password,
//! and `encryption.key`, the key that encrypts the secrets in `gateway.db`
//! (made on the first run, also on a data directory from a release without
//! it, whose secrets the gateway then encrypts; reused after). With
//! `--database-url postgres://…/DB` the two databases are `DB_gateway` and
//! `DB_shop` on that server instead (made if missing); everything else
//! stays in the data directory.
//! The first run creates the merchant and its endpoint through the
//! gateway's own API, as a platform would; later runs check them and point
//! the endpoint at the shop's current port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ipn_core::standard::WebhookSecret;
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_gateway::{EncryptionKey, Gateway};
use ipn_merchant::clock::Clock;
use ipn_merchant::{Catalog, Hidden, Merchant};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::Fatal;

/// The demo e-book's file name, as the demo catalog names it.
const EBOOK: &str = "webhooks-exactly-once.pdf";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where everything is kept: databases, mail, downloads, credentials
    #[arg(long, env = "IPN_DATA_DIR", default_value = "./ipn-data")]
    data_dir: PathBuf,
    /// The gateway's port on 127.0.0.1
    #[arg(long, env = "IPN_GATEWAY_PORT", default_value_t = 7700)]
    gateway_port: u16,
    /// The shop's port on 127.0.0.1
    #[arg(long, env = "IPN_SHOP_PORT", default_value_t = 7701)]
    shop_port: u16,
    /// An SMTP server for the shop's emails (smtp://HOST:PORT); without it
    /// they are written to DATA_DIR/mail and shown on the shop's /admin page
    #[arg(long, env = "IPN_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// Keep both services' data in PostgreSQL instead of SQLite files in
    /// DATA_DIR: postgres://user@host:port/DB gives the gateway the database
    /// DB_gateway and the shop DB_shop on that server, each created if
    /// missing (by that user); credentials, keys, mail and
    /// downloads stay in DATA_DIR
    #[arg(
        long,
        env = "IPN_DATABASE_URL",
        hide_env_values = true,
        value_name = "postgres://user@host:port/DB"
    )]
    database_url: Option<String>,
}

/// Where each service keeps its data.
#[derive(Debug)]
struct Databases {
    gateway: ipn_gateway::Database,
    shop: ipn_merchant::Database,
    /// Said in the banner: SQLite files in the data directory, or which
    /// databases on which server.
    shown: String,
}

impl Databases {
    /// SQLite files in `dir`, or a database for each service on the
    /// PostgreSQL server of `url`, made if missing.
    fn open(dir: &Path, url: Option<&str>) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self {
                gateway: ipn_gateway::Database::Sqlite(dir.join("gateway.db")),
                shop: ipn_merchant::Database::Sqlite(dir.join("shop.db")),
                shown: format!("gateway.db and shop.db in {}", dir.display()),
            });
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!(
                "--database-url (IPN_DATABASE_URL): ipn up keeps its SQLite files in \
                 --data-dir by itself; give a postgres://user@host:port/db URL to use \
                 PostgreSQL instead, or none"
            );
        }
        let base = ipn_storage::postgres::database_name(url).context("--database-url")?;
        let make = |service: &str| {
            let name = format!("{base}_{service}");
            ipn_storage::postgres::ensure_database(url, &name)
                .with_context(|| format!("--database-url: the database {name}"))
        };
        // Shown as given, its password hidden.
        let server = ipn_merchant::Database::Postgres(url.to_owned());
        Ok(Self {
            gateway: ipn_gateway::Database::parse(&make("gateway")?)?,
            shop: ipn_merchant::Database::Postgres(make("shop")?),
            shown: format!("PostgreSQL: {base}_gateway and {base}_shop beside {server}"),
        })
    }
}

/// `DATA_DIR/credentials.json`. Scripts read its field names: keep them
/// stable (new ones only added).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub gateway_url: String,
    pub shop_url: String,
    pub admin_key: String,
    pub merchant_id: String,
    pub merchant_api_key: String,
    pub endpoint_id: String,
    pub endpoint_secret: String,
    pub admin_password: String,
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let up = Up::start(&args).await?;
    let stop = crate::gateway::shutdown_signal();
    println!("{}", up.banner());
    stop.await;
    eprintln!("stopping: finishing what is in flight");
    up.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// The gateway and the shop, running.
#[derive(Debug)]
pub struct Up {
    pub gateway: Gateway,
    pub shop: Merchant,
    pub credentials: Credentials,
    pub data_dir: PathBuf,
    pub mail_dir: Option<PathBuf>,
    /// Where the two databases are, as the banner says it.
    pub databases: String,
}

impl Up {
    pub async fn start(args: &Args) -> anyhow::Result<Self> {
        let dir = &args.data_dir;
        let url = args.database_url.clone();
        let data_dir = dir.clone();
        let databases =
            tokio::task::spawn_blocking(move || Databases::open(&data_dir, url.as_deref()))
                .await??;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let gateway_listener = bind(args.gateway_port, "--gateway-port").await?;
        let shop_listener = bind(args.shop_port, "--shop-port").await?;
        let gateway_url = format!("http://{}", gateway_listener.local_addr()?);
        let shop_url = format!("http://{}", shop_listener.local_addr()?);

        let saved = read_credentials(dir)?;
        // A key saved by an older version may be shorter than the gateway
        // now takes: the gateway keeps only its hash in memory, so a new
        // one simply replaces it in credentials.json.
        let admin_key = saved
            .as_ref()
            .map(|c| c.admin_key.clone())
            .filter(|key| ipn_gateway::check_admin_key(key).is_ok())
            .unwrap_or_else(|| random_token(40));
        let mut gateway_config = ipn_gateway::Config::new(
            databases.gateway.clone(),
            admin_key.clone(),
            encryption_key(dir)?,
        );
        // A sandbox: the shop is on this machine, and time can be advanced
        // to watch subscriptions renew.
        gateway_config.network = NetworkPolicy::allow_private();
        gateway_config.test_clock = true;
        let gateway = Gateway::start(gateway_config, gateway_listener)
            .await
            .with_context(|| {
                format!(
                    "starting the gateway on {:?} with the key in {}",
                    databases.gateway,
                    dir.join(KEY_FILE).display()
                )
            })?;

        let api = Api::new(&gateway_url)?;
        let webhooks = format!("{shop_url}/webhooks");
        let mut credentials = match saved {
            Some(saved) => reuse(&api, saved, &gateway_url, &shop_url, &webhooks).await?,
            None => create(&api, &admin_key, &gateway_url, &shop_url, &webhooks).await?,
        };
        credentials.admin_key = admin_key;
        write_credentials(dir, &credentials)?;

        let downloads = dir.join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let ebook = downloads.join(EBOOK);
        if !ebook.exists() {
            std::fs::write(&ebook, demo_ebook())
                .with_context(|| format!("writing {}", ebook.display()))?;
        }
        let mut config = ipn_merchant::Config::new(
            databases.shop.clone(),
            gateway_url.clone(),
            Hidden::new(credentials.merchant_api_key.clone()),
            WebhookSecret::parse(&credentials.endpoint_secret)
                .context("credentials.json: endpoint_secret")?,
        );
        config.catalog = Catalog::demo();
        config.merchant_id = Some(credentials.merchant_id.clone());
        config.endpoint_id = Some(credentials.endpoint_id.clone());
        config.downloads_dir = Some(downloads);
        config.mail_dir = dir.join("mail");
        config.smtp_url = args.smtp_url.clone();
        config.admin_password = Some(Hidden::new(credentials.admin_password.clone()));
        config.public_url = Some(shop_url.clone());
        // The shop and the gateway agree on the time, test clock included.
        let clock = gateway.clock();
        config.clock = Clock::from_fn(move || clock.now());
        let mail_dir = args.smtp_url.is_none().then(|| config.mail_dir.clone());
        let shop = Merchant::start(config, shop_listener).await?;
        Ok(Self {
            gateway,
            shop,
            credentials,
            data_dir: dir.clone(),
            mail_dir,
            databases: databases.shown,
        })
    }

    pub fn banner(&self) -> String {
        let c = &self.credentials;
        let mail = match &self.mail_dir {
            Some(dir) => format!(
                "written to {} (and shown on the shop's admin page)",
                dir.display()
            ),
            None => "sent to the SMTP server".to_owned(),
        };
        let rows = [
            (
                "shop",
                format!("{}/", c.shop_url),
                "buy something".to_owned(),
            ),
            (
                "admin",
                format!("{}/admin", c.shop_url),
                format!("user admin, password {}", c.admin_password),
            ),
            (
                "dashboard",
                format!("{}/dashboard", c.gateway_url),
                "sign in with merchant_api_key from the credentials".to_owned(),
            ),
            (
                "gateway",
                c.gateway_url.clone(),
                "the API; the merchant key is in the credentials".to_owned(),
            ),
        ];
        let mut text = "ipn is up.\n\n".to_owned();
        for (name, url, what) in rows {
            text.push_str(&format!("  {name:<9} {url:<34} {what}\n"));
        }
        text.push_str(&format!("  {:<9} {mail}\n", "emails"));
        text.push_str(&format!("  {:<9} {}\n", "data", self.databases));
        text.push_str(&format!(
            "  {:<9} {}\n",
            "keys",
            self.data_dir.join("credentials.json").display()
        ));
        text.push_str(
            "\nTest cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, \
             4000 0000 0000 0077 stays pending.\nCtrl-C stops.",
        );
        text
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        // The shop first: it may still be posting back to the gateway.
        self.shop.shutdown().await?;
        self.gateway.shutdown().await?;
        Ok(())
    }
}

async fn bind(port: u16, flag: &str) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} (choose another with {flag})"))
}

/// The first run: a merchant and its endpoint, made through the API.
async fn create(
    api: &Api,
    admin_key: &str,
    gateway_url: &str,
    shop_url: &str,
    webhooks: &str,
) -> anyhow::Result<Credentials> {
    let merchant = api
        .call(
            admin_key,
            reqwest::Method::POST,
            "/v1/merchants",
            Some(json!({"name": "ipn demo shop", "receiver_email": "shop@example.com"})),
        )
        .await
        .context("creating the demo merchant")?;
    let merchant_id = text(&merchant, "id")?;
    let merchant_key = text(&merchant, "api_key")?;
    let endpoint = api
        .call(
            &merchant_key,
            reqwest::Method::POST,
            "/v1/endpoints",
            Some(json!({
                "url": webhooks,
                "dialect": "standard",
                "events": ["payment.*", "subscription.*"],
            })),
        )
        .await
        .context("creating the shop's endpoint")?;
    Ok(Credentials {
        gateway_url: gateway_url.to_owned(),
        shop_url: shop_url.to_owned(),
        admin_key: admin_key.to_owned(),
        merchant_id,
        merchant_api_key: merchant_key,
        endpoint_id: text(&endpoint, "id")?,
        endpoint_secret: text(&endpoint, "secret")?,
        admin_password: random_token(12),
    })
}

/// A later run: the merchant and endpoint are checked, and the endpoint
/// follows the shop if its port changed.
async fn reuse(
    api: &Api,
    mut saved: Credentials,
    gateway_url: &str,
    shop_url: &str,
    webhooks: &str,
) -> anyhow::Result<Credentials> {
    let path = format!("/v1/endpoints/{}", saved.endpoint_id);
    let endpoint = api
        .call(&saved.merchant_api_key, reqwest::Method::GET, &path, None)
        .await
        .context(
            "credentials.json does not match the gateway's database (remove the data \
             directory to start afresh)",
        )?;
    if endpoint["url"] != webhooks {
        api.call(
            &saved.merchant_api_key,
            reqwest::Method::PATCH,
            &path,
            Some(json!({"url": webhooks})),
        )
        .await
        .context("pointing the endpoint at the shop's new address")?;
    }
    saved.gateway_url = gateway_url.to_owned();
    saved.shop_url = shop_url.to_owned();
    Ok(saved)
}

fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the gateway's answer has no {field:?}: {value}"))
}

/// The gateway's API, called as a client would.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            base: base.to_owned(),
        })
    }

    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let answer: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: the gateway answered {status}: {answer}");
        }
        Ok(answer)
    }
}

/// The gateway's encryption key in the data directory, made on the first
/// run, so the directory keeps working without a flag. The database alone
/// cannot sign; the directory as a whole can (as `credentials.json` can).
const KEY_FILE: &str = "encryption.key";

/// Reads the data directory's encryption key, or makes one.
fn encryption_key(dir: &Path) -> anyhow::Result<EncryptionKey> {
    let path = dir.join(KEY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = EncryptionKey::generate_base64()? + "\n";
            write_private(dir, KEY_FILE, &text)?;
            text
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    EncryptionKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn credentials_path(dir: &Path) -> PathBuf {
    dir.join("credentials.json")
}

fn read_credentials(dir: &Path) -> anyhow::Result<Option<Credentials>> {
    let path = credentials_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_credentials(dir: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(credentials)? + "\n";
    write_private(dir, "credentials.json", &text)
}

/// Writes `dir/name` readable by its owner only, through a temporary file
/// so a crash never leaves half a file.
fn write_private(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Letters and digits, `len` of them, from the OS's generator.
fn random_token(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A one-page PDF that says what it is: the demo e-book's file.
fn demo_ebook() -> Vec<u8> {
    let text = "(Webhooks, exactly once - the ipn demo e-book) Tj";
    let stream = format!("BT /F1 18 Tf 72 720 Td {text} ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", n + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_plain() {
        let token = random_token(24);
        assert_eq!(token.len(), 24);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(token, random_token(24));
    }

    #[test]
    fn the_demo_ebook_is_a_pdf() {
        let pdf = demo_ebook();
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(pdf.ends_with(b"%%EOF\n"));
    }
}
