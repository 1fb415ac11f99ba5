//! One connection: hyper's HTTP/1.1 state machine, with a watchdog that
//! closes it when a request head is too slow or it sits idle too long.
//!
//! The connection's parts report what it is doing to one `Activity`: the
//! socket when a new request's first byte arrives, the service when a head
//! is complete, the response body when the last byte is handed to hyper.
//! The watchdog reads it after every step of the connection: all of it runs
//! in the connection's one task, so it is never stale when read.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::Limits;
use super::activity::{Activity, Wait};
use super::body::{EndOfRequest, TimedBody};

/// What one connection needs besides its socket.
pub(super) struct Connection {
    pub peer: SocketAddr,
    pub router: Router,
    pub limits: Limits,
    /// Turns true when the server stops.
    pub stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until the client closes it, a timeout closes
    /// it, or the server stops and its request in flight is answered.
    pub async fn run(self, stream: TcpStream) {
        let Self {
            peer,
            router,
            limits,
            mut stopping,
        } = self;
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |request: Request<Incoming>| {
                activity.request_started();
                respond(router.clone(), request, peer, limits, Arc::clone(&activity))
            })
        };
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
        });
        let mut builder = http1::Builder::new();
        // Off: its clock runs while a kept-alive connection waits, which is
        // the idle timeout's business (see the module doc of `serve`).
        builder.header_read_timeout(None);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut watchdog = Watchdog {
            activity: Arc::clone(&activity),
            limits,
            timer: Box::pin(tokio::time::sleep_until(
                Instant::now() + limits.header_read,
            )),
            armed: None,
        };
        let mut shutting_down = false;
        loop {
            // `biased`: the connection is polled first, so the watchdog reads
            // what it just did.
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                expired = poll_fn(|cx| watchdog.poll_expired(cx)) => match expired {
                    Wait::Head => {
                        tracing::debug!(%peer, "request head too slow; connection closed");
                        return;
                    }
                    Wait::Idle => {
                        // Nothing in flight: hyper closes it at once, after
                        // flushing what it still has to write, for which it
                        // gets as long as a head would.
                        conn.as_mut().graceful_shutdown();
                        activity.closing();
                    }
                },
                _ = stopping.wait_for(|stop| *stop), if !shutting_down => {
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
        }
    }
}

/// Answers one request: the router's answer, or 408 if the body was too
/// slow; either way the end of its body marks the connection idle.
async fn respond(
    mut router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    limits: Limits,
    activity: Arc<Activity>,
) -> Result<Response<EndOfRequest>, std::convert::Infallible> {
    let mut request = request.map(|body| TimedBody::new(body, limits.body, Arc::clone(&activity)));
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = match tower_service::Service::call(&mut router, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let response = if activity.take_body_timeout() {
        body_timeout(limits)
    } else {
        response
    };
    Ok(response.map(|body| EndOfRequest::new(body, activity)))
}

/// The answer to a request whose body did not arrive in time. It closes the
/// connection: the rest of the body may still come, and would be read as
/// the next request.
fn body_timeout(limits: Limits) -> Response<Body> {
    let body = format!(
        r#"{{"error":{{"code":"request_timeout","message":"the request body did not arrive within {:?}"}}}}"#,
        limits.body
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// One timer per connection, moved to whatever the connection now waits for.
struct Watchdog {
    activity: Arc<Activity>,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Watchdog {
    /// Ready when the current wait has run out. Pending without a timer
    /// while a request is in flight: the connection's next step wakes the
    /// task and this is polled again.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Wait> {
        let Some((deadline, wait)) = self.activity.deadline(&self.limits) else {
            return Poll::Pending;
        };
        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        ready!(self.timer.as_mut().poll(cx));
        self.armed = None;
        Poll::Ready(wait)
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
