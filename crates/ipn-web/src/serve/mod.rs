//! The HTTP/1.1 server of both services: an accept loop over hyper's
//! connection, serving an axum `Router` with the limits `axum::serve` lacks.
//!
//! - A cap on open connections ([`Limits::max_connections`]). Past it the
//!   loop stops accepting, so new connections wait in the listen backlog
//!   rather than being refused: every connection holding a slot is closed
//!   within a timeout below unless it is doing real work, so a waiting
//!   client is served within seconds, where a refused one would have failed
//!   outright. Waiting clients hold no descriptor of ours either.
//! - A header-read timeout, an idle keep-alive timeout and a request-body
//!   timeout ([`Limits`]), kept per connection by `connection.rs`.
//! - Graceful shutdown: stop accepting, let requests in flight finish,
//!   close idle connections, return once every connection has ended.
//! - The peer's address as `ConnectInfo<SocketAddr>` in every request.
//!
//! Why not hyper's own `header_read_timeout`: hyper (1.12) starts that clock
//! whenever it waits for a request head, at accept and again as soon as a
//! response on a kept-alive connection is written. So it is also the limit on
//! how long a kept-alive connection may sit idle: a 10 s header timeout
//! would close idle connections after 10 s, and a 60 s idle allowance would
//! give a slowloris 60 s. `connection.rs` keeps the two apart instead: the
//! head of a request must be complete within `header_read` of its first byte
//! (of the accept, for a connection's first request), and a kept-alive
//! connection may wait `idle` for that first byte.

mod activity;
mod body;
mod connection;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest a request's head (request line and headers) may take to
    /// arrive, from its first byte, or from the accept for a connection's
    /// first request. A real client sends its head in one packet; this
    /// only has to outlast a poor link.
    pub header_read: Duration,
    /// The longest a kept-alive connection may wait, with no request in
    /// flight, for the next request to begin; then it is closed.
    pub idle: Duration,
    /// The longest a request's body may take to arrive once its head has:
    /// past it the request is answered 408 and the connection closed.
    pub body: Duration,
    /// The most connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    /// - headers 10 s: a slowloris then holds a slot 10 s, not forever;
    /// - idle 90 s: longer than our own delivery client keeps a connection
    ///   for reuse (60 s), so the server never closes one just as the
    ///   client sends on it (the client gives up first);
    /// - body 30 s: a 256 KiB body (the largest either service takes) over
    ///   a link of 10 KB/s still arrives;
    /// - 4,096 connections: `ipn up` runs two of these servers in one
    ///   process, commonly allowed 20,000 descriptors, which must also hold
    ///   the databases and the outgoing deliveries; clients keep connections
    ///   alive, so a few thousand is far beyond what the throughput needs.
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(90),
            body: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

impl Limits {
    /// Checks each limit, naming the one that is wrong (`setting` is the
    /// configuration's name for these limits).
    pub fn validate(&self, setting: &str) -> Result<(), String> {
        // Longer would hold a slot for no client's good; and a deadline
        // must stay representable.
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        for (name, value) in [
            ("header_read", self.header_read),
            ("idle", self.idle),
            ("body", self.body),
        ] {
            if value.is_zero() || value > DAY {
                return Err(format!(
                    "{setting}.{name} must be longer than zero and at most a day, not {value:?}"
                ));
            }
        }
        if self.max_connections == 0 || u32::try_from(self.max_connections).is_err() {
            return Err(format!(
                "{setting}.max_connections must be between 1 and {}",
                u32::MAX
            ));
        }
        Ok(())
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes;
/// then stops accepting, lets the requests in flight finish, and returns
/// once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    // `validate` bounds it; a cap beyond u32 would only matter to the final
    // wait below, which takes every slot back at once.
    let cap = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(cap as usize));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = shutdown.as_mut() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = connection::Connection {
                    peer,
                    router: router.clone(),
                    limits,
                    stopping: stopping.clone(),
                };
                tokio::spawn(async move {
                    connection.run(stream).await;
                    drop(slot);
                });
            }
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                // Out of descriptors, most likely: connections closing will
                // free some, so wait a little rather than spin.
                tracing::error!(%error, "accepting a connection failed; retrying in a second");
                drop(slot);
                tokio::select! {
                    () = shutdown.as_mut() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    // Closed, so clients still in the backlog are refused rather than left
    // waiting for a server that will not accept them.
    drop(listener);
    let _ = stop.send(true);
    // Each connection holds a slot until it ends.
    let _ = slots.acquire_many(cap).await;
}

/// An error of one connection that was being accepted, not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_limit_is_named() {
        assert_eq!(Limits::default().validate("http_limits"), Ok(()));
        type Spoil = fn(&mut Limits);
        let cases: [(&str, Spoil); 5] = [
            ("http_limits.header_read", |l| {
                l.header_read = Duration::ZERO
            }),
            ("http_limits.idle", |l| l.idle = Duration::MAX),
            ("http_limits.body", |l| l.body = Duration::ZERO),
            ("http_limits.max_connections", |l| l.max_connections = 0),
            ("http_limits.max_connections", |l| {
                l.max_connections = usize::MAX
            }),
        ];
        for (name, spoil) in cases {
            let mut limits = Limits::default();
            spoil(&mut limits);
            let error = limits.validate("http_limits").unwrap_err();
            assert!(error.starts_with(name), "{name}: {error}");
        }
    }
}
