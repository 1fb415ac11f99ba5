//! The HTTP client that deliveries use: HTTP/1.1 on hyper's connection API,
//! with idle keep-alive connections pooled per origin and checked address.
//!
//! Why not a general-purpose client: the engine needs things such a client
//! hides or makes optional, and it cost twice as much CPU per request
//! (measured with `ipn bench delivery`):
//! - it connects only to the addresses the SSRF guard has just checked, and a
//!   pooled connection is reused only while its address still passes;
//! - it never follows redirects and never uses a proxy (there is no code for
//!   either);
//! - it reads at most the first KiB of an answer.
//!
//! TLS is rustls with the ring provider (the one provider of the whole
//! workspace) and the Mozilla roots from `webpki-roots`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

/// How much of an answer's body is read.
pub const KEPT_BODY_BYTES: usize = 1024;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the URL cannot be requested: {0}")]
    Url(String),
    #[error("connecting to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake with {host} failed: {source}")]
    Tls { host: String, source: io::Error },
    #[error("{0}")]
    Http(String),
    /// The deadline passed before an answer's status line arrived.
    #[error("no answer before the deadline")]
    TimedOut,
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// At most [`KEPT_BODY_BYTES`] of the body.
    pub body_start: Vec<u8>,
}

/// A connection is reused only for the same scheme, host (the TLS name and
/// `Host` header) and checked address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    addr: SocketAddr,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Idle connections kept per origin and address.
    pub max_idle: usize,
    /// An idle connection older than this is closed rather than reused.
    pub idle_timeout: Duration,
    /// Trusted in addition to the Mozilla roots (tests, private CAs).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

pub struct Client {
    config: ClientConfig,
    tls: TlsConnector,
    user_agent: HeaderValue,
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    pub fn new(config: ClientConfig) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in &config.extra_roots {
            roots.add(root.clone())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config,
            tls: TlsConnector::from(Arc::new(tls)),
            user_agent: HeaderValue::from_static(concat!(
                "ipn-gateway/",
                env!("CARGO_PKG_VERSION")
            )),
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// POSTs `body` to `url`, connecting only to one of `addrs` (the
    /// addresses the SSRF guard allowed), answered by `deadline`. An answer
    /// whose status arrived in time counts, even if its body does not.
    pub async fn post(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, SendError> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(SendError::Url(format!("scheme {other} is not http(s)"))),
        };
        let host = url
            .host_str()
            .ok_or_else(|| SendError::Url("no host".to_owned()))?;
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = || {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(HOST, &host_header)
                .header(USER_AGENT, self.user_agent.clone())
                .header(CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .map_err(|e| SendError::Url(e.to_string()))?;
            request.headers_mut().extend(headers.iter().cloned());
            Ok::<_, SendError>(request)
        };

        // A kept-alive connection first. If it fails (the peer closed it as
        // the request arrived, the usual race with idle timeouts), the
        // request goes once more on a fresh connection: deliveries are at
        // least once, and that race must not count as a failed attempt.
        if let Some((key, mut sender)) = self.take_idle(https, host, addrs).await {
            match tokio::time::timeout_at(deadline, sender.try_send_request(request()?)).await {
                Err(_) => return Err(SendError::TimedOut),
                Ok(Ok(response)) => {
                    return Ok(self.read_answer(key, sender, response, deadline).await);
                }
                Ok(Err(_)) => {}
            }
        }
        let (key, mut sender) = self.connect(https, host, addrs, deadline).await?;
        match tokio::time::timeout_at(deadline, sender.send_request(request()?)).await {
            Err(_) => Err(SendError::TimedOut),
            Ok(Ok(response)) => Ok(self.read_answer(key, sender, response, deadline).await),
            Ok(Err(error)) => Err(SendError::Http(describe(&error))),
        }
    }

    /// An idle connection to one of `addrs`, ready for a request.
    async fn take_idle(
        &self,
        https: bool,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Option<(PoolKey, SendRequest<Full<Bytes>>)> {
        loop {
            let (key, idle) = {
                let mut pool = lock(&self.idle);
                let found = addrs.iter().find_map(|addr| {
                    let key = PoolKey {
                        https,
                        host: host.to_owned(),
                        addr: *addr,
                    };
                    let idle = pool.get_mut(&key)?.pop()?;
                    Some((key, idle))
                });
                let (key, idle) = found?;
                if pool.get(&key).is_some_and(Vec::is_empty) {
                    pool.remove(&key);
                }
                (key, idle)
            };
            if idle.since.elapsed() > self.config.idle_timeout {
                continue; // dropping the sender closes the connection
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some((key, sender));
            }
        }
    }

    async fn connect(
        &self,
        https: bool,
        host: &str,
        addrs: &[SocketAddr],
        deadline: tokio::time::Instant,
    ) -> Result<(PoolKey, SendRequest<Full<Bytes>>), SendError> {
        let timeout = self.config.connect_timeout;
        // Each address gets the connect timeout (within the deadline), so
        // one unreachable address does not use up the others' time.
        let mut connected = None;
        let mut last_error = None;
        for addr in addrs {
            let until = deadline.min(tokio::time::Instant::now() + timeout);
            match tokio::time::timeout_at(until, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    connected = Some((*addr, stream));
                    break;
                }
                Ok(Err(source)) => {
                    last_error = Some(SendError::Connect {
                        addr: *addr,
                        source,
                    })
                }
                Err(_) => last_error = Some(SendError::ConnectTimeout(timeout)),
            }
        }
        let Some((addr, stream)) = connected else {
            return Err(
                last_error.unwrap_or_else(|| SendError::Url("no address to connect to".into()))
            );
        };
        let _ = stream.set_nodelay(true);
        let key = PoolKey {
            https,
            host: host.to_owned(),
            addr,
        };
        let sender = if https {
            let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .map_err(|e| SendError::Url(format!("{host} is not a TLS server name: {e}")))?
                .to_owned();
            let until = deadline.min(tokio::time::Instant::now() + timeout);
            let tls = tokio::time::timeout_at(until, self.tls.connect(name, stream))
                .await
                .map_err(|_| SendError::ConnectTimeout(timeout))?
                .map_err(|source| SendError::Tls {
                    host: host.to_owned(),
                    source,
                })?;
            handshake(TokioIo::new(tls)).await?
        } else {
            handshake(TokioIo::new(stream)).await?
        };
        Ok((key, sender))
    }

    /// Reads the status, `Retry-After` and the start of the body; a
    /// connection whose answer was read to its end goes back to the pool.
    async fn read_answer(
        &self,
        key: PoolKey,
        sender: SendRequest<Full<Bytes>>,
        response: hyper::Response<hyper::body::Incoming>,
        deadline: tokio::time::Instant,
    ) -> Answer {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let mut body_start = Vec::new();
        let mut ended = false;
        while body_start.len() < KEPT_BODY_BYTES {
            let Ok(frame) = tokio::time::timeout_at(deadline, body.frame()).await else {
                break; // the status is in: a slow body does not undo it
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        body_start.extend_from_slice(data);
                    }
                }
                Some(Err(_)) => break,
                None => {
                    ended = true;
                    break;
                }
            }
        }
        body_start.truncate(KEPT_BODY_BYTES);
        // The rest of a long answer is never read: dropping it closes the
        // connection, so only a fully read one goes back to the pool.
        if ended || hyper::body::Body::is_end_stream(&body) {
            self.put_idle(key, sender);
        }
        Answer {
            status,
            retry_after,
            body_start,
        }
    }

    /// Closes idle connections that timed out or that the peer closed, so
    /// connections to endpoints no longer sent to (disabled, or whose DNS
    /// moved) do not stay open until someone uses them.
    pub fn sweep(&self) {
        let timeout = self.config.idle_timeout;
        let mut pool = lock(&self.idle);
        pool.retain(|_, idle| {
            idle.retain(|i| !i.sender.is_closed() && i.since.elapsed() <= timeout);
            !idle.is_empty()
        });
    }

    /// Idle connections kept (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        lock(&self.idle).values().map(Vec::len).sum()
    }

    fn put_idle(&self, key: PoolKey, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut pool = lock(&self.idle);
        let idle = pool.entry(key).or_default();
        if idle.len() < self.config.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| SendError::Http(describe(&e)))?;
    // The connection runs on its own task; it ends when the sender is
    // dropped (no more requests) or the peer closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The error and its causes in one line: hyper's own message alone
/// ("connection error") does not say what failed.
fn describe(error: &hyper::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    fn client(extra_roots: Vec<CertificateDer<'static>>) -> Client {
        Client::new(ClientConfig {
            connect_timeout: Duration::from_secs(5),
            max_idle: 4,
            idle_timeout: Duration::from_secs(60),
            extra_roots,
        })
        .unwrap()
    }

    /// An HTTP/1.1 server answering every request with `body`; counts the
    /// connections it accepted and keeps the last `Host` header.
    struct Server {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        host: Arc<Mutex<String>>,
    }

    async fn server(body: &'static [u8]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let host = Arc::new(Mutex::new(String::new()));
        let (counted, seen) = (Arc::clone(&connections), Arc::clone(&host));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&seen);
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let host = request.headers().get(HOST).unwrap().to_str().unwrap();
                    *lock(&seen) = host.to_owned();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            body,
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            connections,
            host,
        }
    }

    async fn post(client: &Client, url: &str, addr: SocketAddr) -> Result<Answer, SendError> {
        let url = Url::parse(url).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        client
            .post(
                &url,
                &[addr],
                Vec::new(),
                Bytes::from_static(b"{}"),
                deadline,
            )
            .await
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_reused() {
        let server = server(b"ok").await;
        let client = client(Vec::new());
        for _ in 0..3 {
            let answer = post(
                &client,
                &format!("http://{}/hook", server.addr),
                server.addr,
            )
            .await
            .unwrap();
            assert_eq!((answer.status, &answer.body_start[..]), (200, &b"ok"[..]));
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn it_connects_to_the_checked_address_and_names_the_host() {
        let server = server(b"").await;
        let client = client(Vec::new());
        // The host does not resolve anywhere: only the given address is used.
        let url = format!("http://merchant.invalid:{}/ipn", server.addr.port());
        post(&client, &url, server.addr).await.unwrap();
        assert_eq!(
            *lock(&server.host),
            format!("merchant.invalid:{}", server.addr.port())
        );
    }

    #[tokio::test]
    async fn only_the_first_kib_of_a_long_answer_is_read_and_its_connection_closed() {
        static LONG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let server = server(&LONG).await;
        let client = client(Vec::new());
        let url = format!("http://{}/", server.addr);
        for _ in 0..2 {
            let answer = post(&client, &url, server.addr).await.unwrap();
            assert_eq!(answer.body_start.len(), KEPT_BODY_BYTES);
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_while_idle_is_replaced() {
        // Answers one request per connection, then closes it without saying so.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.ends_with(b"{}") {
                    let n = stream.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let client = client(Vec::new());
        let url = format!("http://{addr}/");
        // Whether the close is seen before the next request (hyper hands
        // the request back) or races it (the request goes once more on a
        // fresh connection), every request is answered.
        for _ in 0..5 {
            assert_eq!(post(&client, &url, addr).await.unwrap().status, 204);
        }
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = post(&client(Vec::new()), &format!("http://{addr}/"), addr)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Connect { addr: a, .. } if *a == addr),
            "{error}"
        );
    }

    #[tokio::test]
    async fn https_is_verified_against_the_trusted_roots() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"secure",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let url = format!("https://localhost:{}/hook", addr.port());

        let trusting = client(vec![der]);
        let answer = post(&trusting, &url, addr).await.unwrap();
        assert_eq!(
            (answer.status, &answer.body_start[..]),
            (200, &b"secure"[..])
        );

        let error = post(&client(Vec::new()), &url, addr).await.unwrap_err();
        assert!(matches!(error, SendError::Tls { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_sweep_closes_idle_connections_past_their_timeout() {
        let server = server(b"ok").await;
        let client = Client::new(ClientConfig {
            connect_timeout: Duration::from_secs(5),
            max_idle: 4,
            idle_timeout: Duration::ZERO,
            extra_roots: Vec::new(),
        })
        .unwrap();
        post(&client, &format!("http://{}/", server.addr), server.addr)
            .await
            .unwrap();
        assert_eq!(client.idle_connections(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        client.sweep();
        assert_eq!(client.idle_connections(), 0);
    }
}
