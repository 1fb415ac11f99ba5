//! `ipn listen`: follows a merchant's events at a gateway and forwards each
//! to a local URL, signed with a secret of its own, so a developer can
//! test a listener on a laptop the gateway cannot reach.
//!
//! It reads `GET /v1/events?after=…` with the merchant's key: at once while
//! pages are full, then every `--poll` interval. Each event is forwarded as
//! the gateway would deliver it in the standard dialect: the event's JSON as
//! stored, `webhook-id` = the event id, a fresh `webhook-timestamp`, a
//! `v1` signature with the printed secret. The cursor moves past an event
//! only once the local URL answered 2xx, so nothing is skipped: a local
//! listener that is down gets the event again (1 s, 2 s … 30 s apart), and
//! a gateway that restarts is read again from the same cursor.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ipn_core::standard::{Signer, WebhookSecret};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Fatal;

/// Events asked for per request (the gateway's maximum).
const PAGE: u32 = 100;
/// The longest wait between two tries, of the gateway or the local URL.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's base URL
    #[arg(long, env = "IPN_GATEWAY_URL", default_value = "http://127.0.0.1:7700")]
    gateway: String,
    /// The merchant's API key at the gateway
    #[arg(long, env = "IPN_GATEWAY_KEY", hide_env_values = true)]
    key: String,
    /// Where to forward each event (your listener), e.g. http://localhost:3000/webhooks
    #[arg(long)]
    forward_to: String,
    /// The whsec_ secret to sign forwarded events with (default: a new one, printed)
    #[arg(long, env = "IPN_LISTEN_SECRET", hide_env_values = true, value_parser = parse_secret)]
    secret: Option<WebhookSecret>,
    /// Start after this event id instead of after the newest event at start
    #[arg(long, conflicts_with = "from_start")]
    after: Option<String>,
    /// Forward every event the merchant has, oldest first, then follow
    #[arg(long)]
    from_start: bool,
    /// Milliseconds between two reads once caught up
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    poll_ms: u64,
}

fn parse_secret(text: &str) -> Result<WebhookSecret, String> {
    WebhookSecret::parse(text.trim()).map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> Result<ExitCode, Fatal> {
    let forward = reqwest::Url::parse(&args.forward_to).context("--forward-to")?;
    if !matches!(forward.scheme(), "http" | "https") {
        bail!("--forward-to must be an http(s) URL");
    }
    let secret = args.secret.clone().unwrap_or_else(WebhookSecret::generate);
    let mut listener = Listener::new(&args, secret.clone())?;
    let cursor = match (&args.after, args.from_start) {
        (Some(after), _) => Some(after.clone()),
        (None, true) => None,
        (None, false) => listener.newest().await?,
    };
    listener.cursor = cursor;
    let stop = crate::gateway::shutdown_signal();
    println!(
        "ipn listen: forwarding {}'s events to {} (Ctrl-C stops)",
        args.gateway, args.forward_to
    );
    println!("signing with {}", secret.reveal());
    tokio::select! {
        result = listener.follow() => result?,
        () = stop => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// One page of the event list, each event kept as the bytes sent.
#[derive(Debug, Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    has_more: bool,
}

/// What is read of each event to forward it.
#[derive(Debug, Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
}

struct Listener {
    client: reqwest::Client,
    events_url: reqwest::Url,
    key: String,
    forward_to: String,
    signer: Signer,
    poll: Duration,
    /// The last event forwarded (or skipped at start).
    cursor: Option<String>,
}

impl Listener {
    fn new(args: &Args, secret: WebhookSecret) -> anyhow::Result<Self> {
        let base = format!("{}/", args.gateway.trim_end_matches('/'));
        let events_url = reqwest::Url::parse(&base)
            .and_then(|base| base.join("v1/events"))
            .context("--gateway")?;
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            events_url,
            key: args.key.clone(),
            forward_to: args.forward_to.clone(),
            signer: Signer::Secret(secret),
            poll: Duration::from_millis(args.poll_ms),
            cursor: None,
        })
    }

    /// The newest event's id, read by paging to the end of the list (only
    /// at start), so that `listen` forwards what happens from now on.
    async fn newest(&self) -> anyhow::Result<Option<String>> {
        let mut cursor: Option<String> = None;
        loop {
            let body = self.page(cursor.as_deref()).await?;
            let page: Page<'_> = serde_json::from_slice(&body).context("the event list")?;
            if let Some(last) = page.data.last() {
                let head: Head = serde_json::from_str(last.get())?;
                cursor = Some(head.id);
            }
            if !page.has_more {
                return Ok(cursor);
            }
        }
    }

    /// Forwards events as they come, for ever.
    async fn follow(&mut self) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            let body = match self.page(self.cursor.as_deref()).await {
                Ok(body) => {
                    if failures > 0 {
                        eprintln!("the gateway answers again; reading after {:?}", self.cursor);
                    }
                    failures = 0;
                    body
                }
                Err(error) => {
                    failures += 1;
                    let wait = backoff(failures);
                    eprintln!("cannot read the gateway's events ({error:#}); again in {wait:?}");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let page: Page<'_> = serde_json::from_slice(&body).context("the event list")?;
            for raw in &page.data {
                let head: Head = serde_json::from_str(raw.get()).context("an event")?;
                self.forward(&head, raw.get().as_bytes()).await;
                self.cursor = Some(head.id);
            }
            if !page.has_more {
                tokio::time::sleep(self.poll).await;
            }
        }
    }

    /// Reads one page after `after`.
    async fn page(&self, after: Option<&str>) -> anyhow::Result<bytes::Bytes> {
        let mut url = self.events_url.clone();
        url.query_pairs_mut()
            .append_pair("limit", &PAGE.to_string());
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let response = self.client.get(url).bearer_auth(&self.key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "the gateway answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(body)
    }

    /// Forwards one event until the local URL takes it (2xx).
    async fn forward(&self, head: &Head, body: &[u8]) {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let signature = self.signer.sign(&head.id, timestamp, body);
            let started = Instant::now();
            let sent = self
                .client
                .post(&self.forward_to)
                .header("content-type", "application/json")
                .header("webhook-id", &head.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body.to_vec())
                .send()
                .await;
            let ms = started.elapsed().as_millis();
            match sent {
                Ok(response) if response.status().is_success() => {
                    println!(
                        "{} {} -> {} ({ms} ms)",
                        head.event_type,
                        head.id,
                        response.status().as_u16()
                    );
                    return;
                }
                Ok(response) => eprintln!(
                    "{} {} -> {} ({ms} ms); again in {:?}",
                    head.event_type,
                    head.id,
                    response.status().as_u16(),
                    backoff(attempts)
                ),
                Err(error) => eprintln!(
                    "{} {} -> not delivered: {error}; again in {:?}",
                    head.event_type,
                    head.id,
                    backoff(attempts)
                ),
            }
            tokio::time::sleep(backoff(attempts)).await;
        }
    }
}

/// 1 s, 2 s, 4 s … up to 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = [1, 2, 3, 5, 6, 40].map(|n| backoff(n).as_secs()).to_vec();
        assert_eq!(waits, [1, 2, 4, 16, 30, 30]);
    }
}
