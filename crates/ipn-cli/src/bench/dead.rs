//! An endpoint that never takes a delivery, in one of two ways:
//!
//! - `Hang`: it accepts each connection and never reads or answers, so every
//!   attempt holds a connection until the gateway's timeout (15 s by
//!   default). The worst realistic case: a server whose process is stuck.
//! - `Refused`: nothing listens on its port, so every attempt fails at once
//!   (a server that is down).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    Hang,
    Refused,
}

impl Dead {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hang => "hang",
            Self::Refused => "refused",
        }
    }
}

/// A dead endpoint on 127.0.0.1. Dropping it closes the connections it
/// holds (a reset, since what was sent is unread): attempts still waiting on
/// it end at once instead of at their timeout.
#[derive(Debug)]
pub struct DeadEndpoint {
    addr: SocketAddr,
    held: Arc<AtomicU64>,
    holder: Option<JoinHandle<()>>,
}

impl DeadEndpoint {
    pub async fn start(kind: Dead) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("opening a port for the dead endpoint")?;
        let addr = listener.local_addr()?;
        let held = Arc::new(AtomicU64::new(0));
        let holder = match kind {
            Dead::Hang => Some(tokio::spawn(hold(listener, Arc::clone(&held)))),
            // Closed again at once: a port that was just free refuses.
            Dead::Refused => None,
        };
        Ok(Self { addr, held, holder })
    }

    pub fn url(&self) -> String {
        format!("http://{}/dead", self.addr)
    }

    /// Connections it accepted (and holds), for a hanging one.
    pub fn connections(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for DeadEndpoint {
    fn drop(&mut self) {
        if let Some(holder) = &self.holder {
            holder.abort();
        }
    }
}

/// Accepts connections and keeps them, unread, until aborted.
async fn hold(listener: TcpListener, held: Arc<AtomicU64>) {
    let mut streams = Vec::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                streams.push(stream);
                held.fetch_add(1, Ordering::Relaxed);
            }
            // Out of file descriptors, most likely: wait for some to close.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
