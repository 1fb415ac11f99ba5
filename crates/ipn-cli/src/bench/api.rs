//! Talking to the gateway under test: the few API calls that set a run up,
//! `/metrics`, and the ingest requests the load generator sends.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::load::{Connection, Timing, Work};

/// Characters of padding in each event's data, for a body of about 600 bytes.
const PAD: usize = 520;

/// A fresh admin key for a gateway that lives for one run.
pub fn admin_key() -> String {
    format!("bench-admin-{:032x}", rand::random::<u128>())
}

/// An ingest body: a platform event with about 500 bytes of padding.
pub fn event_body(n: u64) -> String {
    const FILL: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
    let pad: String = FILL.chars().cycle().take(PAD).collect();
    format!(r#"{{"type":"bench.tick","data":{{"id":"t_{n}","n":{n},"pad":"{pad}"}}}}"#)
}

pub fn host(addr: SocketAddr) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&addr.to_string())?)
}

pub fn bearer(key: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {key}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The few API calls that set a run up.
#[derive(Debug)]
pub struct Api {
    pub addr: SocketAddr,
    host: HeaderValue,
    admin: HeaderValue,
}

impl Api {
    pub fn new(addr: SocketAddr, admin_key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: host(addr)?,
            admin: bearer(admin_key)?,
        })
    }

    /// A merchant with one endpoint at the receiver; returns the merchant's key.
    pub async fn setup(&self, receiver: SocketAddr) -> anyhow::Result<String> {
        let key = self.merchant_key("bench").await?;
        self.endpoint(&key, &format!("http://{receiver}/hooks"))
            .await?;
        Ok(key)
    }

    /// A new merchant's API key.
    pub async fn merchant_key(&self, name: &str) -> anyhow::Result<String> {
        let merchant = self.merchant(name).await?;
        Ok(merchant["api_key"]
            .as_str()
            .context("POST /v1/merchants: no api_key in the answer")?
            .to_owned())
    }

    /// An endpoint at `url` that takes every event type.
    pub async fn endpoint(&self, merchant_key: &str, url: &str) -> anyhow::Result<Value> {
        let endpoint = json!({"url": url, "description": "ipn bench"});
        self.post(&bearer(merchant_key)?, "/v1/endpoints", &endpoint)
            .await
    }

    /// Returns once every write queued before it has committed: the writer
    /// takes writes in order, and a new merchant is answered after its commit.
    pub async fn barrier(&self) -> anyhow::Result<()> {
        self.merchant("bench barrier").await.map(drop)
    }

    async fn merchant(&self, name: &str) -> anyhow::Result<Value> {
        let body = json!({"name": name, "receiver_email": "bench@example.com"});
        self.post(&self.admin, "/v1/merchants", &body).await
    }

    /// POSTs JSON and expects a 201.
    async fn post(&self, key: &HeaderValue, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = Request::post(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, key)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let (status, answer) = Connection::open(self.addr).await?.send(request).await?;
        if status != StatusCode::CREATED {
            bail!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        serde_json::from_slice(&answer)
            .with_context(|| format!("reading the answer to POST {path}"))
    }

    /// The gateway's `/metrics` (Prometheus text), on a connection of its
    /// own that closes at once, so that none lingers into a shutdown.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let request = Request::get("/metrics")
            .header(HOST, &self.host)
            .body(Full::new(Bytes::new()))?;
        let (status, answer) = Connection::open(self.addr).await?.send(request).await?;
        if status != StatusCode::OK {
            bail!("GET /metrics answered {status}");
        }
        Ok(Metrics(String::from_utf8_lossy(&answer).into_owned()))
    }
}

/// `/metrics` as read, with the few values a bench waits on.
#[derive(Debug)]
pub struct Metrics(String);

impl Metrics {
    /// The value of the sample named exactly `name` (labels included).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Deliveries in the schedule, not yet taken by a worker.
    pub fn queue_depth(&self) -> Option<u64> {
        self.value("ipn_queue_depth").map(|v| v as u64)
    }

    /// Deliveries parked behind open circuit breakers, out of the schedule.
    pub fn parked(&self) -> Option<u64> {
        self.value("ipn_deliveries_parked").map(|v| v as u64)
    }

    /// How long the earliest scheduled delivery has waited past its due
    /// time; zero when it is not due yet.
    pub fn oldest_due_age_s(&self) -> Option<f64> {
        self.value("ipn_oldest_due_age_seconds")
    }
}

/// What publishing one event keeps: its id, when it was sent, and when the
/// API accepted it (its 201 was in).
#[derive(Debug)]
pub struct Accepted {
    pub id: Box<str>,
    pub at: Timing,
}

/// `POST /v1/events` as load generator work.
#[derive(Debug)]
pub struct Ingest {
    pub addr: SocketAddr,
    host: HeaderValue,
    key: HeaderValue,
    /// Added to request numbers, so that each run's `data.id`s are new.
    first: u64,
}

impl Ingest {
    pub fn new(addr: SocketAddr, merchant_key: &str, first: u64) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: host(addr)?,
            key: bearer(merchant_key)?,
            first,
        })
    }
}

impl Work for Ingest {
    type Output = Accepted;

    fn request(&self, n: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        Ok(Request::post("/v1/events")
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.key)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(event_body(self.first + n))))?)
    }

    fn answer(&self, status: StatusCode, body: &[u8], at: Timing) -> anyhow::Result<Accepted> {
        #[derive(Deserialize)]
        struct Created<'a> {
            #[serde(borrow)]
            id: &'a str,
        }
        if status != StatusCode::CREATED {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            bail!("POST /v1/events answered {status}: {text}");
        }
        let created: Created =
            serde_json::from_slice(body).context("reading a 201 from POST /v1/events")?;
        Ok(Accepted {
            id: created.id.into(),
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_values_are_read_by_exact_name() {
        let text = "# HELP ipn_queue_depth Deliveries scheduled.\n\
                    # TYPE ipn_queue_depth gauge\n\
                    ipn_queue_depth 20000\n\
                    ipn_queue_depth_other 7\n\
                    ipn_attempts_total{outcome=\"rejected\"} 5\n\
                    ipn_oldest_due_age_seconds 0.250\n";
        let metrics = Metrics(text.to_owned());
        assert_eq!(metrics.queue_depth(), Some(20_000));
        assert_eq!(metrics.oldest_due_age_s(), Some(0.25));
        assert_eq!(
            metrics.value("ipn_attempts_total{outcome=\"rejected\"}"),
            Some(5.0)
        );
        assert_eq!(metrics.value("ipn_missing"), None);
    }
}
