//! Reconciliation: a worker that reads the gateway's event list after a
//! saved cursor and puts every event in the inbox, so that an IPN that
//! never arrived (an endpoint disabled, a message lost on the way) is
//! applied all the same, through the same handler.
//!
//! Events come over the merchant's authenticated API from the configured
//! gateway, so they are stored as verified standard messages, keyed by
//! their event id: one that also arrives (or arrived) as an IPN is a
//! duplicate there or in the handler, never a second effect. The cursor
//! moves in the same transaction as the messages it covers, so a crash
//! repeats a page at worst, which dedupe absorbs.

use std::time::Duration;

use anyhow::Context as _;
use ipn_core::Dialect;
use ipn_core::event::{EventType, ObjectKind};
use reqwest::Url;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::GatewayKey;
use crate::storage::{InboxStatus, NewMessage, Reader};
use crate::writer::{WriteError, Writer};

/// Events asked for per request (the gateway's maximum is 100).
const PAGE: u32 = 100;
/// Longest wait for one page.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One page of `GET /v1/events`, each event kept as the bytes sent.
#[derive(Debug, Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    has_more: bool,
}

/// The fields read from each event: its id and type.
#[derive(Debug, Deserialize)]
struct EventId {
    id: String,
    #[serde(rename = "type", default)]
    event_type: String,
}

impl EventId {
    /// Whether the notification handler acts on this type: a payment's or
    /// a subscription's. Without an endpoint to ask for, reconciliation keeps
    /// only these, so a platform's own types never fill the inbox.
    fn handled(&self) -> bool {
        EventType::parse_lenient(&self.event_type).is_ok_and(|t| {
            matches!(
                t.object(),
                Some(ObjectKind::Payment | ObjectKind::Subscription)
            )
        })
    }
}

/// The worker; [`Reconciler::spawn`] runs it until `stop` is set.
#[derive(Debug)]
pub struct Reconciler {
    client: reqwest::Client,
    events_url: Url,
    key: GatewayKey,
    /// The shop's endpoint at the gateway: only the events it takes are
    /// read, what it would have been sent.
    endpoint_id: Option<String>,
    pub reader: Reader,
    pub writer: Writer,
    /// How long to wait after catching up before asking again.
    pub every: Duration,
    pub stop: watch::Receiver<bool>,
}

impl Reconciler {
    pub fn new(
        gateway_url: &str,
        key: GatewayKey,
        endpoint_id: Option<String>,
        reader: Reader,
        writer: Writer,
        every: Duration,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let base = format!("{}/", gateway_url.trim_end_matches('/'));
        let events_url = Url::parse(&base)
            .and_then(|base| base.join("v1/events"))
            .with_context(|| format!("gateway_url {gateway_url:?}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("ipn-merchant/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the reconciliation HTTP client")?;
        Ok(Self {
            client,
            events_url,
            key,
            endpoint_id,
            reader,
            writer,
            every,
            stop,
        })
    }

    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut stop = self.stop.clone();
        tracing::debug!(url = %self.events_url, every_ms = self.every.as_millis(), "reconciliation started");
        loop {
            if *stop.borrow() || stop.has_changed().is_err() {
                break;
            }
            let caught_up = tokio::select! {
                result = self.round() => result,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            match caught_up {
                Ok(false) => continue, // more pages wait
                Ok(true) => {}
                Err(RoundError::Closed) => break,
                Err(RoundError::Failed(error)) => tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = self.every.as_millis(),
                    "reconciliation could not read the gateway's events; will retry"
                ),
            }
            tokio::select! {
                () = tokio::time::sleep(self.every) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        tracing::debug!("reconciliation stopped");
    }

    /// Reads one page after the cursor and stores it; true once caught up.
    async fn round(&self) -> Result<bool, RoundError> {
        let after = self
            .reader
            .read(|r| r.reconcile_cursor())
            .await
            .map_err(RoundError::Failed)?;
        let mut url = self.events_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &PAGE.to_string());
            if let Some(after) = &after {
                query.append_pair("after", after);
            }
            if let Some(endpoint_id) = &self.endpoint_id {
                query.append_pair("endpoint_id", endpoint_id);
            }
        }
        let response = self
            .client
            .get(url)
            .bearer_auth(self.key.reveal())
            .send()
            .await
            .context("asking the gateway for its events")?;
        let status = response.status();
        let body = response.bytes().await.context("reading the event list")?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(RoundError::Failed(anyhow::anyhow!(
                "the gateway answered {status}: {text}"
            )));
        }
        let page: Page<'_> = serde_json::from_slice(&body).context("the event list")?;
        let Some(last) = page.data.last() else {
            return Ok(true);
        };
        let last: EventId = serde_json::from_str(last.get()).context("an event without id")?;
        let received_at = crate::clock::wall_ms();
        let mut messages = Vec::with_capacity(page.data.len());
        for raw in &page.data {
            let event: EventId = serde_json::from_str(raw.get()).context("an event without id")?;
            // The gateway filtered by the endpoint; else keep what the handler acts on.
            if self.endpoint_id.is_none() && !event.handled() {
                continue;
            }
            messages.push(NewMessage {
                dialect: Dialect::Standard,
                webhook_id: Some(event.id.clone()),
                headers: vec![
                    ("webhook-id".to_owned(), event.id),
                    ("x-ipn-source".to_owned(), "reconciliation".to_owned()),
                ],
                body: raw.get().as_bytes().to_vec(),
                status: InboxStatus::Received,
                received_at,
            });
        }
        let count = messages.len();
        match self.writer.reconcile(messages, last.id.clone()).await {
            Ok(new) => {
                if new > 0 {
                    tracing::info!(
                        new,
                        of = count,
                        cursor = last.id,
                        "reconciliation found events that had not arrived"
                    );
                }
            }
            Err(WriteError::Closed) => return Err(RoundError::Closed),
            Err(error) => return Err(RoundError::Failed(error.into())),
        }
        Ok(!page.has_more)
    }
}

#[derive(Debug)]
enum RoundError {
    /// The writer has stopped: the server is shutting down.
    Closed,
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for RoundError {
    fn from(error: anyhow::Error) -> Self {
        Self::Failed(error)
    }
}
