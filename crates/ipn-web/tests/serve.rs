//! `serve` on its own, over raw TCP: what the services rely on besides the
//! timeouts (which their own `slow_clients` tests cover).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use ipn_web::{Limits, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// Longest wait for anything that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Starts `serve` with `router`; the sender stops it, the handle ends when
/// it has stopped.
async fn start(
    router: Router,
    limits: Limits,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, limits, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Sends `GET path` on `stream` and reads the whole answer (it has a
/// `content-length`); returns its status line and body.
async fn get_on(stream: &mut TcpStream, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.parse().ok())
                .expect("a content-length");
            if body.len() >= length {
                let status = head.lines().next().unwrap_or_default().to_owned();
                return (status, body.to_owned());
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before the answer was complete: {text:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let router = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let (addr, stop, server) = start(router, Limits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (status, body) = get_on(&mut stream, "/peer").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, stream.local_addr().unwrap().to_string());
    drop(stream);
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_kept_alive_connection_waits_by_the_idle_time_and_sends_by_the_header_time() {
    // The idle time is twice `WAIT`: only the header timeout can close the
    // connection within it.
    let limits = Limits {
        header_read: Duration::from_millis(300),
        idle: 2 * WAIT,
        ..Limits::default()
    };
    let router = Router::new().route("/", get(|| async { "hello" }));
    let (addr, stop, server) = start(router, limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut stream, "/").await.0, "HTTP/1.1 200 OK");
    // Well past the header timeout, within the idle one: still open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get_on(&mut stream, "/").await.0, "HTTP/1.1 200 OK");
    // The next head begins and stalls: its clock runs from its first byte.
    stream.write_all(b"G").await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("a stalled head is closed by the header timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(stream);
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_request_in_flight_outlives_the_timeouts_and_the_shutdown() {
    let release = Arc::new(Notify::new());
    let router = Router::new().route(
        "/slow",
        get({
            let release = Arc::clone(&release);
            || async move {
                release.notified().await;
                "done"
            }
        }),
    );
    let limits = Limits {
        header_read: Duration::from_millis(200),
        idle: Duration::from_millis(200),
        body: Duration::from_millis(200),
        max_connections: 4,
    };
    let (addr, stop, server) = start(router, limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = tokio::spawn(async move { get_on(&mut stream, "/slow").await });
    // The request is in flight; the server is told to stop, and stops
    // accepting, but waits for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !server.is_finished(),
        "the server stopped with a request in flight"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a stopping server accepted a connection"
    );
    release.notify_one();
    let (status, body) = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "done")
    );
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}
