//! Where emails go: an SMTP server, or `.eml` files in a folder when no
//! server is configured (`ipn up` without `--smtp-url`), so the demo shop
//! works with no mail setup and its admin page can point at the folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use sha2::{Digest as _, Sha256};

use crate::storage::QueuedEmail;

/// How long one SMTP exchange may take (connecting included) before the
/// attempt counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the worker sends emails. Built with [`Transport::smtp`] or
/// [`Transport::folder`].
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    /// An SMTP server, by lettre's URL rules: `smtp://host:port` is plain
    /// SMTP, `smtp://host:port?tls=required` STARTTLS (`opportunistic` to
    /// use it when offered), `smtps://host:port` TLS from the start;
    /// `user:password@` in front of the host logs in.
    Smtp { url: String },
    /// A folder that gets one `{created_at}-{id}-{kind}.eml` file per email.
    Folder { dir: PathBuf },
}

impl Transport {
    /// Checks an SMTP URL (scheme, host, TLS mode) without connecting.
    pub fn smtp(url: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url)
            .with_context(|| format!("--smtp-url: `{}` is not a URL", redact(url)))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            bail!(
                "--smtp-url: the scheme must be smtp:// or smtps://, not {}://",
                parsed.scheme()
            );
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .with_context(|| format!("--smtp-url: cannot use `{}`", redact(url)))?;
        Ok(Self::Smtp {
            url: url.to_owned(),
        })
    }

    /// Emails as files in `dir`, created when the first one is written.
    pub fn folder(dir: impl Into<PathBuf>) -> Self {
        Self::Folder { dir: dir.into() }
    }

    /// Where emails go, for logs and the admin page; never a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { url } => redact(url),
            Self::Folder { dir } => format!("the folder {}", dir.display()),
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Smtp { url } => f.debug_struct("Smtp").field("url", &redact(url)).finish(),
            Self::Folder { dir } => f.debug_struct("Folder").field("dir", dir).finish(),
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SendError {
    /// The server refused this message for good (an SMTP 5xx reply), or it
    /// cannot be built at all; anything else (no connection, a timeout, a
    /// 4xx, a disk error) may pass.
    pub permanent: bool,
    /// Retrying cannot help at all (the message cannot be built).
    pub hopeless: bool,
    pub message: String,
}

/// A [`Transport`] ready to send.
pub(super) enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Sender::Smtp"),
            Self::Folder(dir) => f.debug_tuple("Sender::Folder").field(dir).finish(),
        }
    }
}

impl Sender {
    pub fn new(transport: &Transport) -> anyhow::Result<Self> {
        Ok(match transport {
            // Without lettre's `pool` feature each send opens its own
            // connection: nothing to keep alive between the few emails, and a
            // server that restarted is simply reconnected to.
            Transport::Smtp { url } => Self::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .with_context(|| format!("cannot use the SMTP URL `{}`", redact(url)))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            Transport::Folder { dir } => Self::Folder(dir.clone()),
        })
    }

    /// Sends one email.
    pub async fn send(&self, email: &QueuedEmail, from: &Mailbox) -> Result<(), SendError> {
        let message = build_message(email, from).map_err(|message| SendError {
            permanent: true,
            hopeless: true,
            message,
        })?;
        match self {
            Self::Smtp(smtp) => {
                // lettre's timeout bounds each read and write; this bounds
                // the whole exchange, against a server that trickles.
                let sent = tokio::time::timeout(SMTP_TIMEOUT * 3, smtp.send(message))
                    .await
                    .map_err(|_| SendError {
                        permanent: false,
                        hopeless: false,
                        message: format!(
                            "the SMTP exchange took longer than {} s",
                            (SMTP_TIMEOUT * 3).as_secs()
                        ),
                    })?;
                // lettre's message names the kind of failure and its cause
                // (`Connection error: Connection refused (os error 111)`,
                // `permanent error (550): …` with the server's words).
                sent.map(drop).map_err(|error| SendError {
                    permanent: error.is_permanent(),
                    hopeless: false,
                    message: error.to_string(),
                })
            }
            Self::Folder(dir) => {
                let path = dir.join(file_name(email));
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|written| written.map_err(|e| format!("{e:#}")))
                    .map_err(|message| SendError {
                        permanent: false,
                        hopeless: false,
                        message,
                    })
            }
        }
    }
}

/// `{created_at}-{id}-{kind}.eml`: sorted by time in a listing, and the
/// same name every time the same email is written.
fn file_name(email: &QueuedEmail) -> String {
    let kind: String = email
        .kind
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("{}-{}-{kind}.eml", email.created_at, email.id)
}

/// Writes a temporary file beside `path`, flushes it to disk and renames it
/// into place, so a reader never sees half an email and a second write
/// after a crash replaces the first.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;

    let dir = path.parent().context("an email file has no folder")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the mail folder {}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("an email file has no name")?;
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))?;
    Ok(())
}

/// The `Message-ID` of an email: the row id and a hash of its dedupe key,
/// the same on every attempt, so a copy sent twice (a crash between the
/// send and the mark) is recognisable as one email.
pub(super) fn message_id(id: i64, dedupe_key: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("<email-{id}.{hash}@ipn-merchant>")
}

/// The message for one email; an error is a reason it can never be sent.
fn build_message(email: &QueuedEmail, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| format!("the address `{}` is not valid: {e}", email.to))?;
    let created = u64::try_from(email.created_at).unwrap_or(0);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(message_id(email.id, &email.dedupe_key)))
        .date(UNIX_EPOCH + Duration::from_millis(created))
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| format!("the message cannot be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_checked_and_passwords_never_shown() {
        for url in [
            "smtp://127.0.0.1:1025",
            "smtp://mail.example.com:587?tls=required",
            "smtps://user:secret@mail.example.com",
        ] {
            assert!(Transport::smtp(url).is_ok(), "{url}");
        }
        for url in [
            "http://mail.example.com",
            "smtp://mail.example.com?tls=sometimes",
            "not a url",
        ] {
            assert!(Transport::smtp(url).is_err(), "{url}");
        }
        let transport = Transport::smtp("smtps://user:secret@mail.example.com").unwrap();
        assert!(!format!("{transport:?}").contains("secret"));
        assert!(!transport.describe().contains("secret"));
        assert!(transport.describe().contains("***"));
    }

    #[test]
    fn a_message_carries_a_stable_id_and_both_bodies() {
        let email = QueuedEmail {
            id: 42,
            dedupe_key: "ord_1/order_paid".into(),
            kind: "order_paid".into(),
            to: "Ada <ada@example.com>".into(),
            subject: "Thank you".into(),
            text: "plain words\n".into(),
            html: "<p>rich words</p>".into(),
            attempts: 0,
            created_at: 1_700_000_000_000,
        };
        let from: Mailbox = "ipn shop <shop@localhost>".parse().unwrap();
        let formatted =
            String::from_utf8(build_message(&email, &from).unwrap().formatted()).unwrap();
        let id = message_id(42, "ord_1/order_paid");
        assert_eq!(id, message_id(42, "ord_1/order_paid"));
        assert_ne!(id, message_id(42, "ord_1/refunded"));
        assert!(id.starts_with("<email-42.") && id.ends_with("@ipn-merchant>"));
        assert!(
            formatted.contains(&format!("Message-ID: {id}")),
            "{formatted}"
        );
        assert!(formatted.contains("multipart/alternative"));
        assert!(formatted.contains("plain words"));
        assert!(formatted.contains("<p>rich words</p>"));
        assert!(
            formatted.contains("Date: Tue, 14 Nov 2023 22:13:20"),
            "{formatted}"
        );
        assert_eq!(file_name(&email), "1700000000000-42-order_paid.eml");

        let bad = QueuedEmail {
            to: "not an address".into(),
            ..email
        };
        assert!(build_message(&bad, &from).is_err());
    }
}
