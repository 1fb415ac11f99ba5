//! `GET /downloads/{token}`: the customer's download link.
//!
//! Answers are plain text (no markup to escape, readable in any client),
//! all `Cache-Control: no-store`, since the next request may answer
//! differently:
//!
//! | status | when | says |
//! |---|---|---|
//! | 200 | the grant is active | the file, as an attachment |
//! | 404 | the token is not one we signed, or its grant is gone | "This download link is not valid." |
//! | 410 | revoked | "This download was revoked because the order was refunded." |
//! | 410 | expired | "This download link expired on 2026-12-02 12:00 UTC." |
//! | 410 | no uses left | "This download link has been used 5 times, its limit." |
//! | 500 | the shop's file is missing (or no directory is configured) | says so, and that no use was taken |
//! | 500 | the database failed | opaque; the cause is logged |
//! | 503 | the shop is shutting down | "try again" |
//!
//! A use is taken when the download starts: after the file is open (so a
//! missing file never costs one) and before the first byte, by one write of
//! the writer thread that checks the grant is still active and counts the
//! use ([`super::take`]), so racing requests can never share the last use.
//! Nothing that can fail comes between that write and the response, so a
//! use never needs giving back. A download the customer breaks off midway
//! still counts; that is what the spare uses of the default
//! [`Policy`](super::Policy) are for.
//!
//! `HEAD` answers as `GET` would, headers only, and takes no use (axum
//! would otherwise run the `GET` handler for it and spend one).
//!
//! The file is streamed, never read whole: `reqwest::Body` turns a
//! `tokio::fs::File` into a body in 4 KiB chunks (reqwest's `stream`
//! feature, which also enables `tokio/fs`), and axum takes any such body.

use std::path::PathBuf;

use anyhow::anyhow;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{self, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::OffsetDateTime;
use time::macros::format_description;

use super::token::{self, SigningKey};
use super::{GrantState, Take};
use crate::clock::Clock;
use crate::storage::{Grant, Reader};
use crate::writer::{WriteError, Writer};

/// What the download route needs; cheap to clone. It reads grants through
/// the reader and takes a use through the writer, the one that writes.
#[derive(Debug, Clone)]
pub struct Downloads {
    reader: Reader,
    writer: Writer,
    dir: Option<PathBuf>,
    key: SigningKey,
    /// Expiry is checked against it.
    clock: Clock,
}

impl Downloads {
    /// `key` signs the links; `dir` is the downloads directory
    /// (`--downloads-dir`): without one, every download answers that the
    /// shop's file is missing.
    pub fn new(reader: Reader, writer: Writer, key: SigningKey, dir: Option<PathBuf>) -> Self {
        Self {
            reader,
            writer,
            dir,
            key,
            clock: Clock::system(),
        }
    }

    /// Checks expiry against `clock` rather than real time.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The key that signs links, for whoever writes them into emails.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The grant `id`, if there is one.
    async fn grant(&self, id: String) -> Result<Option<Grant>, DownloadError> {
        Ok(self.reader.read(move |r| r.download(&id)).await?)
    }
}

/// The download route.
pub fn router(state: Downloads) -> Router {
    Router::new()
        .route("/downloads/{token}", get(download).head(head))
        .with_state(state)
}

/// Why a download was not served. `Display` is for the log; the customer
/// reads [`DownloadError::message`].
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("not a token we signed, or its grant is gone")]
    NotFound,
    #[error("download {id} is revoked ({reason})")]
    Revoked { id: String, reason: String },
    #[error("download {id} expired at {at}")]
    Expired { id: String, at: OffsetDateTime },
    #[error("download {id} has used all its {uses} uses")]
    UsedUp { id: String, uses: u32 },
    #[error("download {id}: the shop's file {file:?} cannot be served: {cause}")]
    FileMissing {
        id: String,
        file: String,
        cause: String,
    },
    #[error("download failed: {0:#}")]
    Store(#[from] anyhow::Error),
    #[error("download failed: {0}")]
    Write(#[from] WriteError),
}

impl DownloadError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Revoked { .. } | Self::Expired { .. } | Self::UsedUp { .. } => StatusCode::GONE,
            Self::FileMissing { .. } | Self::Store(_) | Self::Write(WriteError::Store(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Write(WriteError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the customer reads.
    pub fn message(&self) -> String {
        match self {
            Self::NotFound => "This download link is not valid.".to_owned(),
            Self::Revoked { reason, .. } => {
                format!("This download was revoked because {}.", because(reason))
            }
            Self::Expired { at, .. } => format!("This download link expired on {}.", shown(*at)),
            Self::UsedUp { uses, .. } => {
                let times = if *uses == 1 { "time" } else { "times" };
                format!("This download link has been used {uses} {times}, its limit.")
            }
            Self::FileMissing { .. } => "The shop's file for this download is missing, so \
                nothing was downloaded and your link was not used. Please let the shop know."
                .to_owned(),
            Self::Write(WriteError::Closed) => {
                "The shop is restarting; please try again in a moment.".to_owned()
            }
            Self::Store(_) | Self::Write(WriteError::Store(_)) => {
                "Something went wrong on the shop's side; it has been logged. \
                 Please try again later."
                    .to_owned()
            }
        }
    }

    /// The refusal a grant's state calls for, if any.
    fn refusing(grant: &Grant, now: OffsetDateTime) -> Option<Self> {
        let id = grant.id.clone();
        match grant.state(now) {
            GrantState::Active => None,
            GrantState::Revoked { reason } => Some(Self::Revoked { id, reason }),
            GrantState::Expired => Some(Self::Expired {
                id,
                at: grant.expires_at,
            }),
            GrantState::UsedUp => Some(Self::UsedUp {
                id,
                uses: grant.uses,
            }),
        }
    }
}

impl IntoResponse for DownloadError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Logged once, here. Refusals are the link doing its job.
        if status.is_server_error() {
            tracing::error!(error = %self, "download not served");
        } else {
            tracing::info!(reason = %self, "download refused");
        }
        let mut response = (status, format!("{}\n", self.message())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// How a revocation's reason reads after "revoked because".
fn because(reason: &str) -> String {
    match reason {
        "refunded" => "the order was refunded".to_owned(),
        "reversed" => "the payment was reversed (a chargeback)".to_owned(),
        other => format!("the order was {other}"),
    }
}

fn shown(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_else(|_| at.to_string())
}

async fn download(
    State(downloads): State<Downloads>,
    token: Result<extract::Path<String>, PathRejection>,
) -> Result<Response, DownloadError> {
    let now = downloads.clock.now();
    let Ready { grant, file, head } = ready(&downloads, token, now).await?;
    match downloads
        .writer
        .take_download(grant.id.clone(), now)
        .await?
    {
        Take::Taken(_) => {}
        // The row changed since we read it: say what changed.
        Take::Refused(latest) => {
            return Err(DownloadError::refusing(&latest, now).unwrap_or_else(|| {
                DownloadError::Store(anyhow!("download {} was refused while active", latest.id))
            }));
        }
        Take::NotFound => return Err(DownloadError::NotFound),
    }
    tracing::info!(
        download.id = %grant.id,
        order.id = %grant.order_id,
        uses = grant.uses + 1,
        max_uses = grant.max_uses,
        "download started"
    );
    let mut response = Response::new(Body::new(reqwest::Body::from(file)));
    *response.headers_mut() = head;
    Ok(response)
}

async fn head(
    State(downloads): State<Downloads>,
    token: Result<extract::Path<String>, PathRejection>,
) -> Result<Response, DownloadError> {
    let now = downloads.clock.now();
    let Ready { head, .. } = ready(&downloads, token, now).await?;
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = head;
    Ok(response)
}

/// A download that may start: the grant is active and its file is open.
struct Ready {
    grant: Grant,
    file: tokio::fs::File,
    /// The 200's headers.
    head: axum::http::HeaderMap,
}

/// Everything short of taking the use: the token, the grant's state, the
/// file. The file is opened here, so it cannot vanish between the check and
/// the download (an open file stays readable on Unix even if replaced).
async fn ready(
    downloads: &Downloads,
    token: Result<extract::Path<String>, PathRejection>,
    now: OffsetDateTime,
) -> Result<Ready, DownloadError> {
    let extract::Path(token) = token.map_err(|_| DownloadError::NotFound)?;
    let id = token::verify(&downloads.key, &token).ok_or(DownloadError::NotFound)?;
    let grant = downloads.grant(id).await?.ok_or(DownloadError::NotFound)?;
    if let Some(refusal) = DownloadError::refusing(&grant, now) {
        return Err(refusal);
    }
    let missing = |cause: String| DownloadError::FileMissing {
        id: grant.id.clone(),
        file: grant.file.clone(),
        cause,
    };
    let Some(dir) = &downloads.dir else {
        return Err(missing("no downloads directory is configured".to_owned()));
    };
    if !super::is_plain_file_name(&grant.file) {
        return Err(missing("it is not a plain file name".to_owned()));
    }
    let path = dir.join(&grant.file);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|error| missing(format!("{}: {error}", path.display())))?;
    let metadata = file
        .metadata()
        .await
        .map_err(|error| missing(format!("{}: {error}", path.display())))?;
    if !metadata.is_file() {
        return Err(missing(format!("{} is not a file", path.display())));
    }
    let mut head = axum::http::HeaderMap::new();
    head.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    head.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::try_from(content_disposition(&grant.file))
            .map_err(|error| anyhow!("a Content-Disposition for {:?}: {error}", grant.file))?,
    );
    head.insert(header::CONTENT_LENGTH, HeaderValue::from(metadata.len()));
    head.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    head.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(Ready { grant, file, head })
}

/// `attachment; filename="…"`, the name made safe to quote: anything but
/// printable ASCII, `"` and `\` becomes `_`. A name that changed also gets
/// the exact UTF-8 name as `filename*` (RFC 6266, RFC 8187), which browsers
/// prefer.
fn content_disposition(file: &str) -> String {
    let quoted: String = file
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if quoted == file {
        return format!("attachment; filename=\"{quoted}\"");
    }
    let mut encoded = String::new();
    for byte in file.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{quoted}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use std::sync::Arc;

    use super::super::{GrantRequest, Policy, grant};
    use super::*;
    use crate::clock::millis;
    use crate::storage::{NewGrant, Store};

    const BOOK: &[u8] = b"%PDF-1.7 the whole book\n";

    /// A download route on port 0 over a fresh database and directory.
    struct Shop {
        base: String,
        store: Arc<dyn Store>,
        files: PathBuf,
        key: SigningKey,
        client: reqwest::Client,
        _tmp: (tempfile::TempDir, crate::storage::testing::TestStore),
    }

    impl Shop {
        async fn start(with_dir: bool) -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let files = tmp.path().join("files");
            std::fs::create_dir(&files).unwrap();
            std::fs::write(files.join("book.pdf"), BOOK).unwrap();
            let database = crate::storage::testing::TestStore::sqlite();
            super::super::tests::shop(&database);
            let store = database.shared();
            let key = SigningKey::from_bytes(store.read_with(|r| r.download_key()).unwrap());
            let (writer, _thread) = crate::writer::start(Arc::clone(&store), None).unwrap();
            let reader = Reader::new(Arc::clone(&store));
            let downloads =
                Downloads::new(reader, writer, key.clone(), with_dir.then(|| files.clone()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, router(downloads)).await });
            Self {
                base,
                store,
                files,
                key,
                client: reqwest::Client::new(),
                _tmp: (tmp, database),
            }
        }

        fn grant(&self, file: &str, max_uses: u32, now: OffsetDateTime) -> Grant {
            let request = GrantRequest {
                order_id: "ord_1",
                sku: file,
                name: "The Book",
                file,
            };
            let policy = Policy {
                max_uses,
                ..Policy::default()
            };
            self.store
                .write_with(|tx| grant(tx, &request, &policy, now))
                .unwrap()
        }

        fn uses(&self, grant: &Grant) -> u32 {
            let id = grant.id.clone();
            let stored = self.store.read_with(move |r| r.download(&id)).unwrap();
            stored.unwrap().uses
        }

        fn url(&self, grant: &Grant) -> String {
            format!(
                "{}{}",
                self.base,
                super::super::path(&grant.token(&self.key))
            )
        }

        async fn fetch(&self, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
            let response = self.client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.bytes().await.unwrap().to_vec())
        }
    }

    fn text(body: &[u8]) -> &str {
        std::str::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn a_link_works_its_allowed_number_of_times_then_says_why_it_stopped() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("book.pdf", 2, OffsetDateTime::now_utc());
        let url = shop.url(&grant);
        for _ in 0..2 {
            let (status, headers, body) = shop.fetch(&url).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(body, BOOK);
            assert_eq!(headers["content-type"], "application/octet-stream");
            assert_eq!(
                headers["content-disposition"],
                "attachment; filename=\"book.pdf\""
            );
            assert_eq!(headers["cache-control"], "no-store");
        }
        let (status, headers, body) = shop.fetch(&url).await;
        assert_eq!(status, 410);
        assert_eq!(
            text(&body),
            "This download link has been used 2 times, its limit.\n"
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(shop.uses(&grant), 2);
    }

    #[tokio::test]
    async fn head_answers_without_taking_a_use() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("book.pdf", 1, OffsetDateTime::now_utc());
        let response = shop.client.head(shop.url(&grant)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-length"],
            BOOK.len().to_string().as_str()
        );
        assert_eq!(shop.uses(&grant), 0);
        assert_eq!(shop.fetch(&shop.url(&grant)).await.2, BOOK);
    }

    #[tokio::test]
    async fn a_refund_revokes_the_link() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("book.pdf", 5, OffsetDateTime::now_utc());
        let now = millis(OffsetDateTime::now_utc());
        shop.store
            .write_with(|tx| tx.revoke_downloads("ord_1", "refunded", now))
            .unwrap();
        let (status, _, body) = shop.fetch(&shop.url(&grant)).await;
        assert_eq!(status, 410);
        assert_eq!(
            text(&body),
            "This download was revoked because the order was refunded.\n"
        );
        assert_eq!(shop.uses(&grant), 0);
    }

    #[tokio::test]
    async fn an_expired_link_names_its_expiry() {
        let shop = Shop::start(true).await;
        let long_ago = time::macros::datetime!(2020-01-01 09:30 UTC);
        let grant = shop.grant("book.pdf", 5, long_ago);
        let (status, _, body) = shop.fetch(&shop.url(&grant)).await;
        assert_eq!(status, 410);
        assert_eq!(
            text(&body),
            "This download link expired on 2020-01-08 09:30 UTC.\n"
        );
    }

    #[tokio::test]
    async fn a_forged_or_foreign_token_is_not_valid() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("book.pdf", 5, OffsetDateTime::now_utc());
        let token = grant.token(&shop.key);
        let mut forged = token.clone();
        let last = if forged.ends_with('A') { "B" } else { "A" };
        forged.replace_range(forged.len() - 1.., last);
        let foreign = grant.token(&SigningKey::from_bytes([1; 32]));
        for token in [forged, foreign, "nonsense".to_owned(), "%FF".to_owned()] {
            let (status, _, body) = shop
                .fetch(&format!("{}/downloads/{token}", shop.base))
                .await;
            assert_eq!(status, 404, "{token}");
            assert_eq!(text(&body), "This download link is not valid.\n");
        }
        assert_eq!(shop.uses(&grant), 0);
    }

    #[tokio::test]
    async fn a_missing_file_is_the_shops_fault_and_costs_no_use() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("gone.zip", 1, OffsetDateTime::now_utc());
        for _ in 0..2 {
            let (status, _, body) = shop.fetch(&shop.url(&grant)).await;
            assert_eq!(status, 500);
            assert!(
                text(&body).contains("file for this download is missing"),
                "{}",
                text(&body)
            );
        }
        assert_eq!(shop.uses(&grant), 0);
        // Once the shop puts the file back, the link works.
        std::fs::write(shop.files.join("gone.zip"), b"zip").unwrap();
        assert_eq!(shop.fetch(&shop.url(&grant)).await.2, b"zip");

        let no_dir = Shop::start(false).await;
        let grant = no_dir.grant("book.pdf", 1, OffsetDateTime::now_utc());
        assert_eq!(no_dir.fetch(&no_dir.url(&grant)).await.0, 500);
        assert_eq!(no_dir.uses(&grant), 0);
    }

    #[tokio::test]
    async fn a_row_naming_a_path_outside_the_directory_is_never_served() {
        let shop = Shop::start(true).await;
        std::fs::write(shop.files.parent().unwrap().join("secret.txt"), "SECRET").unwrap();
        let now = OffsetDateTime::now_utc();
        // Not through `grant`, which refuses such a name: as if the row
        // had been written by something else.
        let grant = shop
            .store
            .write_with(|tx| {
                tx.grant(&NewGrant {
                    id: "dl_outside",
                    order_id: "ord_1",
                    sku: "secret",
                    name: "A secret",
                    file: "../secret.txt",
                    created_at: now,
                    expires_at: now + time::Duration::days(1),
                    max_uses: 5,
                })
            })
            .unwrap();
        let (status, _, body) = shop.fetch(&shop.url(&grant)).await;
        assert_eq!(status, 500);
        assert!(!text(&body).contains("SECRET"));
        assert_eq!(shop.uses(&grant), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_requests_never_share_the_last_use() {
        let shop = Shop::start(true).await;
        let grant = shop.grant("book.pdf", 3, OffsetDateTime::now_utc());
        let url = shop.url(&grant);
        let requests: Vec<_> = (0..10)
            .map(|_| {
                let (client, url) = (shop.client.clone(), url.clone());
                tokio::spawn(async move {
                    let response = client.get(url).send().await.unwrap();
                    let status = response.status().as_u16();
                    (status, response.bytes().await.unwrap())
                })
            })
            .collect();
        let mut served = 0;
        for request in requests {
            match request.await.unwrap() {
                (200, body) => {
                    assert_eq!(body, BOOK);
                    served += 1;
                }
                (410, _) => {}
                (status, body) => panic!("{status}: {body:?}"),
            }
        }
        assert_eq!(served, 3);
        assert_eq!(shop.uses(&grant), 3);
    }

    #[test]
    fn a_file_name_is_quoted_safely() {
        assert_eq!(
            content_disposition("book v2.pdf"),
            "attachment; filename=\"book v2.pdf\""
        );
        assert_eq!(
            content_disposition("a\"b\\c é.pdf"),
            "attachment; filename=\"a_b_c _.pdf\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.pdf"
        );
        assert!(HeaderValue::try_from(content_disposition("x\u{7f}y;\"z")).is_ok());
    }

    #[test]
    fn a_reason_and_a_time_read_well() {
        let error = DownloadError::Revoked {
            id: "dl_1".into(),
            reason: "reversed".into(),
        };
        assert_eq!(
            error.message(),
            "This download was revoked because the payment was reversed (a chargeback)."
        );
        let one = DownloadError::UsedUp {
            id: "dl_1".into(),
            uses: 1,
        };
        assert_eq!(
            one.message(),
            "This download link has been used 1 time, its limit."
        );
        let later = OffsetDateTime::now_utc() + Duration::days(1);
        assert!(shown(later).ends_with(" UTC"));
    }
}
