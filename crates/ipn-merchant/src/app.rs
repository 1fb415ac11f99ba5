//! Wiring: validate the configuration, open the database (SQLite or
//! PostgreSQL, running its migrations), start the writer and the HTTP server; stop them in order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::downloads::{Downloads, SigningKey};
use crate::handler::{Handler, Settings};
use crate::mail::{MailWorker, Templates};
use crate::receiver::{self, Receiver};
use crate::reconcile::Reconciler;
use crate::shop::gateway::Checkout;
use crate::shop::{self, Shop};
use crate::storage::Reader;
use crate::verify::Worker;

/// A running merchant server.
#[derive(Debug)]
pub struct Merchant {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    postbacks: JoinHandle<()>,
    mailer: JoinHandle<()>,
    reconciler: Option<JoinHandle<()>>,
    writer: std::thread::JoinHandle<()>,
    reader: Reader,
}

impl Merchant {
    /// Starts the server on an already bound listener (port 0 in tests).
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let (verifier, postback, transport) = config.validate()?;
        let addr = listener.local_addr()?;
        let checkout = Checkout::new(&config.gateway_url, config.gateway_key.clone())?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", reachable(addr)))
            .trim_end_matches('/')
            .to_owned();
        let database = config.database.clone();
        let store = tokio::task::spawn_blocking(move || crate::storage::open(&database)).await??;
        let reader = Reader::new(Arc::clone(&store));
        let key = SigningKey::from_bytes(reader.read(|r| r.download_key()).await?);
        let catalog = Arc::new(config.catalog.clone());
        let mail_wake = Arc::new(Notify::new());
        let handler = Handler::new(
            Settings {
                live: config.live,
                merchant_id: config.merchant_id.clone(),
                shop_name: config.shop_name.clone(),
                public_url: public_url.clone(),
                catalog: Arc::clone(&catalog),
                templates: Arc::new(Templates::builtin()),
                downloads: config.download_policy,
                download_key: key.clone(),
                clock: config.clock.clone(),
            },
            Arc::clone(&mail_wake),
        );
        let (writer, writer_thread) = crate::writer::start(store, Some(handler))?;
        let (shutdown, mut stop) = watch::channel(false);
        let mailer = MailWorker {
            reader: reader.clone(),
            writer: writer.clone(),
            transport,
            from: config.mail_from.clone(),
            wake: mail_wake,
            stop: stop.clone(),
        };
        mailer.check().context("mail_from / smtp_url")?;
        let mailer = mailer.spawn();
        let reconciler = match config.reconcile_every {
            Some(every) => Some(
                Reconciler::new(
                    &config.gateway_url,
                    config.gateway_key.clone(),
                    config.endpoint_id.clone(),
                    reader.clone(),
                    writer.clone(),
                    every,
                    stop.clone(),
                )?
                .spawn(),
            ),
            None => None,
        };

        let downloads = Downloads::new(
            reader.clone(),
            writer.clone(),
            key.clone(),
            config.downloads_dir.clone(),
        )
        .with_clock(config.clock.clone());
        let postback_wake = Arc::new(Notify::new());
        let postbacks = Worker {
            reader: reader.clone(),
            writer: writer.clone(),
            postback,
            wake: Arc::clone(&postback_wake),
            stop: stop.clone(),
        }
        .spawn();
        let shop_state = Shop {
            catalog,
            checkout,
            writer: writer.clone(),
            reader: reader.clone(),
            public_url,
            body_limit: config.body_limit,
            clock: config.clock.clone(),
            order_limit: Arc::new(ipn_web::throttle::Throttle::new(
                config.order_limit.orders,
                config.order_limit.window,
            )),
        };
        let pages = crate::pages::router(crate::pages::Pages {
            shop: shop_state.clone(),
            shop_name: config.shop_name.clone(),
            device_key: key,
            admin_user: config.admin_user.clone(),
            admin_password: config
                .admin_password
                .as_ref()
                .map(|password| password.reveal().to_owned()),
            mail_dir: config.smtp_url.is_none().then(|| config.mail_dir.clone()),
            gateway_url: config.gateway_url.clone(),
        });
        let shop = shop::router(shop_state).merge(pages);
        let state = Receiver {
            verifier: Arc::new(verifier),
            writer,
            body_limit: config.body_limit,
            postback_wake,
            clock: config.clock.clone(),
        };
        let routes = shop.merge(crate::downloads::router(downloads));
        // `ipn_web::serve` gives handlers the peer's address, which counts
        // wrong admin passwords (`pages/throttle.rs`) and orders (`shop/mod.rs`).
        let server = tokio::spawn(ipn_web::serve(
            listener,
            receiver::router(state, routes),
            config.http_limits,
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        ));
        warn_missing_downloads(&config);
        tracing::info!(%addr, database = %config.database, "merchant started");
        Ok(Self {
            addr,
            shutdown,
            server,
            postbacks,
            mailer,
            reconciler,
            writer: writer_thread,
            reader,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Typed reads of the shop's database, as the server sees it.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Stops accepting requests, lets those in flight finish (their
    /// messages committed), stops the postback worker (postbacks in flight
    /// are dropped; their rows stay `unverified`), and returns once the
    /// writer has stopped.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        // The server and the worker own the last writer handles; once both
        // have stopped, the writer drains its queue and ends.
        let served = self.server.await;
        let worked = self.postbacks.await;
        let mailed = self.mailer.await;
        let reconciled = match self.reconciler {
            Some(task) => task.await,
            None => Ok(()),
        };
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        served?;
        worked.context("the postback worker failed")?;
        mailed.context("the mail worker failed")?;
        reconciled.context("reconciliation failed")?;
        Ok(())
    }
}

/// The listening address as a browser on this host can reach it: listening
/// on all addresses (`0.0.0.0`, `::`) means loopback is one of them, as the
/// gateway's page URLs do.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Says at start which digital products' files are not where downloads are
/// served from: their links would answer that the file is missing.
fn warn_missing_downloads(config: &Config) {
    for product in config.catalog.products() {
        let Some(file) = &product.download else {
            continue;
        };
        let found = config
            .downloads_dir
            .as_ref()
            .is_some_and(|dir| dir.join(file).is_file());
        if !found {
            tracing::warn!(
                sku = product.sku,
                file,
                downloads_dir = ?config.downloads_dir,
                "a digital product's file is missing; its download links will fail"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_url_is_reachable() {
        for (listen, url) in [
            ("0.0.0.0:7701", "127.0.0.1:7701"),
            ("[::]:7701", "[::1]:7701"),
            ("10.0.0.5:80", "10.0.0.5:80"),
        ] {
            let addr: SocketAddr = listen.parse().unwrap();
            assert_eq!(reachable(addr).to_string(), url, "{listen}");
        }
    }
}
