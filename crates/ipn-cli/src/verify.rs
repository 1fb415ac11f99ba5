//! `ipn verify`: checks a captured message's Standard Webhooks signature.
//! Exit 0 when valid, 1 when not (with the reason), 2 on bad usage.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ipn_core::standard::{PublicKey, Scheme, Verifier, VerifyKey, WebhookHeaders, WebhookSecret};
use time::OffsetDateTime;

use crate::Fatal;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("key").required(true).multiple(true).args(["secret", "public_key"])))]
pub struct Args {
    /// Shared secret (whsec_…); repeat it to accept any of several (rotation)
    #[arg(long, value_name = "whsec_…")]
    secret: Vec<WebhookSecret>,
    /// ed25519 public key (whpk_…); repeatable
    #[arg(long, value_name = "whpk_…")]
    public_key: Vec<PublicKey>,
    /// The webhook-id header
    #[arg(long)]
    id: String,
    /// The webhook-timestamp header
    #[arg(long)]
    timestamp: String,
    /// The webhook-signature header
    #[arg(long)]
    signature: String,
    /// File holding the exact body; read from standard input when absent
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Check the signature only, not that the timestamp is within 5 minutes
    /// of now (for messages captured earlier)
    #[arg(long)]
    ignore_timestamp: bool,
}

pub fn run(args: Args) -> Result<ExitCode, Fatal> {
    let body = match &args.body {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from standard input")?;
            body
        }
    };
    let keys = args
        .secret
        .into_iter()
        .map(VerifyKey::Secret)
        .chain(args.public_key.into_iter().map(VerifyKey::Ed25519))
        .collect();
    let verifier = Verifier::new(keys);
    let headers = WebhookHeaders {
        id: &args.id,
        timestamp: &args.timestamp,
        signature: &args.signature,
    };
    let verdict = if args.ignore_timestamp {
        verifier.verify_signature(&headers, &body)
    } else {
        verifier.verify(&headers, &body, OffsetDateTime::now_utc().unix_timestamp())
    };
    match verdict {
        Ok(scheme) => {
            let how = match scheme {
                Scheme::V1 => "v1 (HMAC-SHA256)",
                Scheme::V1a => "v1a (ed25519)",
            };
            println!("valid: {how} signature matches ({} bytes)", body.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("invalid: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
