//! One postback: POST `cmd=_notify-validate&` + the exact body received to
//! the gateway's `/cgi-bin/webscr`, and read its answer: the exact bytes,
//! never a body rebuilt from parsed fields.
//!
//! Only a 200 whose body is exactly `VERIFIED` or `INVALID` is an answer.
//! Anything else (refused connection, timeout, 5xx, a proxy's error page, a
//! redirect) is a failure to be retried, never taken for either word.

use std::time::Duration;

use anyhow::Context as _;
use ipn_core::paypal::postback::UnexpectedAnswer;
use ipn_core::paypal::{Answer, parse_answer, request_body};
use reqwest::{StatusCode, Url};

/// Longest wait for the gateway's answer, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The gateway's path for postbacks (PayPal's; `/ipn/verify` is an alias).
const PATH: &str = "cgi-bin/webscr";
/// More than any answer: the rest of an error page is not read.
const MAX_ANSWER: usize = 1024;

/// Why a postback got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostbackError {
    #[error("the gateway could not be reached: {0}")]
    Unreachable(String),
    #[error("the gateway did not answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the gateway answered HTTP {0}")]
    Status(StatusCode),
    #[error(transparent)]
    Unexpected(#[from] UnexpectedAnswer),
}

impl From<reqwest::Error> for PostbackError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Unreachable(describe(&error))
        }
    }
}

/// Posts messages back to one gateway; cheap to clone (connections are
/// pooled and shared).
#[derive(Debug, Clone)]
pub struct Postback {
    client: reqwest::Client,
    url: Url,
}

impl Postback {
    /// A client for the gateway at `gateway_url` (its base URL; a path
    /// prefix, as behind a proxy, is kept).
    pub fn new(gateway_url: &str) -> anyhow::Result<Self> {
        let base = format!("{}/", gateway_url.trim_end_matches('/'));
        let url = Url::parse(&base)
            .and_then(|base| base.join(PATH))
            .with_context(|| format!("gateway_url {gateway_url:?}"))?;
        let client = reqwest::Client::builder()
            // A redirect is not an answer; following one could post the
            // message to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("ipn-merchant/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the postback HTTP client")?;
        Ok(Self { client, url })
    }

    /// The URL postbacks go to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Asks the gateway whether it sent `received` (the body exactly as it
    /// arrived) unchanged.
    pub async fn verify(&self, received: &[u8]) -> Result<Answer, PostbackError> {
        let mut response = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(request_body(received))
            .send()
            .await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(PostbackError::Status(status));
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            answer.extend_from_slice(&chunk);
            if answer.len() > MAX_ANSWER {
                break;
            }
        }
        Ok(parse_answer(&answer)?)
    }
}

/// The whole chain of causes: reqwest's top-level message alone ("error
/// sending request") does not say what went wrong.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postback_url_keeps_a_path_prefix() {
        for (base, url) in [
            (
                "http://127.0.0.1:7700",
                "http://127.0.0.1:7700/cgi-bin/webscr",
            ),
            ("http://gw.test/", "http://gw.test/cgi-bin/webscr"),
            ("https://gw.test/pay/", "https://gw.test/pay/cgi-bin/webscr"),
            ("https://gw.test/pay", "https://gw.test/pay/cgi-bin/webscr"),
        ] {
            assert_eq!(Postback::new(base).unwrap().url().as_str(), url, "{base}");
        }
    }
}
