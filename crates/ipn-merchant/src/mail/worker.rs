//! The mail worker: sends queued emails, oldest first, and marks each one
//! right after. It reads what is due through the reader and marks through
//! the writer thread, like every other write; a mark joins whatever the
//! writer commits next.
//!
//! A failed attempt (no connection, a timeout, any SMTP error, a disk
//! error) leaves the email `queued` with its attempt count, the error and a
//! next-try time, backing off 1 s, 2 s, 4 s … up to 5 min ([`Retry`]). Two
//! cases end in `failed` instead: a message that cannot be built (an invalid
//! recipient address), at once; and a permanent SMTP rejection (5xx) once
//! it has happened [`Retry::give_up_after`] times (10 by default, about ten
//! minutes), since a server that keeps refusing one message will not change
//! its mind, but a misconfigured relay that is fixed within minutes should
//! not lose the email.
//!
//! It never polls: with nothing due it sleeps until the handler queues an
//! email (the `wake` notify), the earliest retry falls due, or shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::transport::{SendError, Sender, Transport};
use crate::clock::wall_ms;
use crate::storage::{FailedAttempt, QueuedEmail, Reader};
use crate::writer::Writer;

/// Emails read per round; each is sent and marked before the next.
const BATCH: usize = 16;

/// When to try a failed email again, and when to give up on a rejected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The delay after the first failed attempt; each further one doubles it.
    pub first: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
    /// Attempts after which an email the server rejects permanently (5xx)
    /// is marked `failed`. Other failures are retried for as long as it
    /// takes.
    pub give_up_after: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            give_up_after: 10,
        }
    }
}

impl Retry {
    /// The delay before the attempt that follows `attempts` failed ones.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What the worker needs; [`MailWorker::spawn`] runs it until `stop` is set.
#[derive(Debug)]
pub struct MailWorker {
    /// Reads the emails due.
    pub reader: Reader,
    /// Marks each email sent or failed.
    pub writer: Writer,
    pub transport: Transport,
    /// The sender, e.g. `ipn shop <shop@localhost>`.
    pub from: String,
    /// Notified (`notify_one`) by the handler after it commits a
    /// transaction that queued an email.
    pub wake: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
}

impl MailWorker {
    /// Checks what can be checked before starting (the `from` mailbox, the
    /// transport), so that start-up fails with a clear error instead of a
    /// worker that logs one.
    pub fn check(&self) -> anyhow::Result<()> {
        parse_from(&self.from)?;
        Sender::new(&self.transport)?;
        Ok(())
    }

    pub fn spawn(self) -> JoinHandle<()> {
        self.spawn_with(Retry::default())
    }

    /// [`MailWorker::spawn`] with another retry schedule (tests use
    /// milliseconds).
    pub fn spawn_with(self, retry: Retry) -> JoinHandle<()> {
        tokio::spawn(self.run(retry))
    }

    async fn run(mut self, retry: Retry) {
        let mailer = Mailer::new(
            self.reader.clone(),
            self.writer.clone(),
            &self.transport,
            &self.from,
            retry,
        );
        let mailer = match mailer {
            Ok(mailer) => mailer,
            Err(error) => {
                // What `check` checked at start.
                tracing::error!(error = format!("{error:#}"), "the mail worker cannot start");
                return;
            }
        };
        tracing::debug!(transport = %self.transport.describe(), "mail worker started");
        // Consecutive storage failures: the worker backs off on those too,
        // so a broken database is logged now and then, not in a loop.
        let mut failures = 0;
        while !self.stopped() {
            match mailer.pass(&self.stop).await {
                // Something was due: more may be.
                Ok(pass) if pass.sent + pass.failed > 0 => failures = 0,
                Ok(pass) => {
                    failures = 0;
                    let until = pass.next_at.map(|at| {
                        let wait = u64::try_from(at.saturating_sub(wall_ms())).unwrap_or(0);
                        Instant::now() + Duration::from_millis(wait)
                    });
                    self.sleep(until).await;
                }
                Err(error) => {
                    failures += 1;
                    let delay = retry.delay(failures);
                    tracing::error!(
                        error = format!("{error:#}"),
                        retry_in_ms = delay.as_millis(),
                        "the email outbox could not be read or marked"
                    );
                    self.sleep(Some(Instant::now() + delay)).await;
                }
            }
        }
        tracing::debug!("mail worker stopped");
    }

    fn stopped(&self) -> bool {
        // A dropped sender stops the worker too; otherwise every wait would
        // end at once.
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Waits until `until` (forever if `None`), a new email, or stop.
    async fn sleep(&mut self, until: Option<Instant>) {
        let deadline = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = deadline => {}
            () = self.wake.notified() => {}
            _ = self.stop.wait_for(|stop| *stop) => {}
        }
    }
}

fn parse_from(from: &str) -> anyhow::Result<Mailbox> {
    from.parse()
        .with_context(|| format!("the mail sender `{from}` is not a valid mailbox"))
}

/// What one [`Mailer::pass`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Emails sent and marked `sent`.
    pub sent: usize,
    /// Attempts that failed (the email is due again later, or `failed`).
    pub failed: usize,
    /// When nothing was due: when the next email will be, if any is queued.
    pub next_at: Option<i64>,
}

/// The worker's step: one transport, one pass at a time. [`MailWorker`]
/// runs it in a loop; tests drive it pass by pass.
#[derive(Debug)]
pub struct Mailer {
    reader: Reader,
    writer: Writer,
    sender: Sender,
    from: Mailbox,
    retry: Retry,
    /// Emails sent whose `sent` mark failed to commit: marked before
    /// anything else is read, and never sent again meanwhile.
    unmarked: Mutex<Vec<Sent>>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    id: i64,
    attempts: u32,
    at: i64,
}

impl Mailer {
    pub fn new(
        reader: Reader,
        writer: Writer,
        transport: &Transport,
        from: &str,
        retry: Retry,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            reader,
            writer,
            sender: Sender::new(transport)?,
            from: parse_from(from)?,
            retry,
            unmarked: Mutex::new(Vec::new()),
        })
    }

    /// Sends what is due, up to one batch, each email marked right after it
    /// went. Stops early (leaving the rest queued) once `stop` is set; an
    /// email being sent is finished first, so a shutdown never cuts one off
    /// between the send and the mark.
    pub async fn pass(&self, stop: &watch::Receiver<bool>) -> anyhow::Result<Pass> {
        self.mark_unmarked().await?;
        let now = wall_ms();
        let due = self
            .reader
            .read(move |r| r.emails_due(now, BATCH))
            .await
            .context("reading the emails due")?;
        let mut pass = Pass {
            next_at: due.next_at,
            ..Pass::default()
        };
        for email in due.rows {
            if *stop.borrow() {
                break;
            }
            let attempts = email.attempts.saturating_add(1);
            let started = std::time::Instant::now();
            match self.sender.send(&email, &self.from).await {
                Ok(()) => {
                    tracing::debug!(
                        email.id = email.id,
                        email.kind = email.kind,
                        attempt = attempts,
                        duration_ms = started.elapsed().as_millis(),
                        "email sent"
                    );
                    let sent = Sent {
                        id: email.id,
                        attempts,
                        at: wall_ms(),
                    };
                    if let Err(error) = self.mark_sent(sent).await {
                        self.lock_unmarked().push(sent);
                        return Err(error);
                    }
                    pass.sent += 1;
                }
                Err(error) => {
                    self.record_failure(&email, attempts, error).await?;
                    pass.failed += 1;
                }
            }
        }
        Ok(pass)
    }

    async fn mark_sent(&self, sent: Sent) -> anyhow::Result<()> {
        self.writer
            .mail_sent(sent.id, sent.attempts, sent.at)
            .await
            .with_context(|| format!("marking email {} sent", sent.id))?;
        Ok(())
    }

    async fn record_failure(
        &self,
        email: &QueuedEmail,
        attempts: u32,
        error: SendError,
    ) -> anyhow::Result<()> {
        let give_up = error.hopeless || (error.permanent && attempts >= self.retry.give_up_after);
        let delay = self.retry.delay(attempts);
        let next_try_at =
            wall_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        if give_up {
            tracing::error!(
                email.id = email.id,
                email.kind = email.kind,
                attempt = attempts,
                error = error.message,
                "email not sent, given up"
            );
        } else {
            tracing::warn!(
                email.id = email.id,
                email.kind = email.kind,
                attempt = attempts,
                retry_in_ms = delay.as_millis(),
                error = error.message,
                "email not sent; will retry"
            );
        }
        let failed = FailedAttempt {
            id: email.id,
            attempts,
            next_try_at,
            error: error.message,
            give_up,
        };
        self.writer
            .mail_failed(failed)
            .await
            .with_context(|| format!("recording a failed attempt of email {}", email.id))?;
        Ok(())
    }

    async fn mark_unmarked(&self) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut *self.lock_unmarked());
        for (i, sent) in pending.iter().enumerate() {
            if let Err(error) = self.mark_sent(*sent).await {
                self.lock_unmarked().extend_from_slice(&pending[i..]);
                return Err(error);
            }
        }
        Ok(())
    }

    fn lock_unmarked(&self) -> std::sync::MutexGuard<'_, Vec<Sent>> {
        // The list is only pushed to and taken whole; a panic elsewhere
        // cannot leave it half-changed.
        self.unmarked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ipn_testkit::maildev::MailDev;

    use std::path::Path;

    use super::*;
    use crate::model::{EmailKind, EmailStatus, Rendered};
    use crate::storage::{EmailRow, NewEmail, Store};

    #[test]
    fn retry_doubles_from_one_second_up_to_five_minutes() {
        let retry = Retry::default();
        let delays: Vec<u64> = [0, 1, 2, 3, 4, 9, 10, 50, u32::MAX]
            .into_iter()
            .map(|attempts| retry.delay(attempts).as_secs())
            .collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 256, 300, 300, 300]);
    }

    /// A merchant's database with its reader and writer (no handler).
    struct Outbox {
        store: Arc<dyn Store>,
        reader: Reader,
        writer: Writer,
    }

    impl Outbox {
        fn new(dir: &Path) -> Self {
            let store =
                crate::storage::open(&crate::storage::Database::Sqlite(dir.join("shop.db")))
                    .unwrap();
            let (writer, _thread) = crate::writer::start(Arc::clone(&store), None).unwrap();
            Self {
                reader: Reader::new(Arc::clone(&store)),
                store,
                writer,
            }
        }

        /// Queues emails as the handler would, in one transaction.
        fn queue(&self, emails: &[NewEmail]) {
            self.store
                .write_with(|tx| {
                    for email in emails {
                        tx.enqueue(email)?;
                    }
                    Ok(())
                })
                .unwrap();
        }

        fn for_order(&self, order_id: &str) -> anyhow::Result<Vec<EmailRow>> {
            self.store.read_with(|r| r.order_emails(order_id))
        }

        fn recent(&self, limit: usize) -> anyhow::Result<Vec<EmailRow>> {
            self.store.read_with(|r| r.recent_emails(limit))
        }

        fn mailer(&self, transport: &Transport, from: &str, retry: Retry) -> Mailer {
            let (reader, writer) = (self.reader.clone(), self.writer.clone());
            Mailer::new(reader, writer, transport, from, retry).unwrap()
        }
    }

    fn email(key: &str, order: Option<&str>, created_at: i64) -> NewEmail {
        NewEmail {
            dedupe_key: key.to_owned(),
            kind: EmailKind::OrderPaid,
            to: "ada@example.com".to_owned(),
            order_id: order.map(str::to_owned),
            subscription_id: None,
            rendered: Rendered {
                subject: format!("Subject of {key}"),
                text: format!("Text of {key}\n"),
                html: format!("<p>HTML of {key}</p>"),
            },
            created_at,
        }
    }

    fn eml_files(dir: &Path) -> BTreeSet<String> {
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    #[tokio::test]
    async fn the_folder_gets_one_file_per_email_and_a_second_pass_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let mails = dir.path().join("mail");
        outbox.queue(&[
            email("ord_1/paid", Some("ord_1"), 1_000),
            email("ord_2/paid", Some("ord_2"), 2_000),
        ]);
        let mailer = outbox.mailer(
            &Transport::folder(&mails),
            "ipn shop <shop@localhost>",
            Retry::default(),
        );
        let (_stop_tx, stop) = watch::channel(false);

        let first = mailer.pass(&stop).await.unwrap();
        assert_eq!((first.sent, first.failed), (2, 0));
        let files = eml_files(&mails);
        let ids: Vec<i64> = outbox
            .recent(10)
            .unwrap()
            .iter()
            .rev()
            .map(|r| r.id)
            .collect();
        let expected: BTreeSet<String> = [
            format!("1000-{}-order_paid.eml", ids[0]),
            format!("2000-{}-order_paid.eml", ids[1]),
        ]
        .into();
        assert_eq!(files, expected, "no temporary file is left behind either");
        let written =
            std::fs::read_to_string(mails.join(format!("1000-{}-order_paid.eml", ids[0]))).unwrap();
        assert!(
            written.contains("Subject: Subject of ord_1/paid"),
            "{written}"
        );
        assert!(written.contains("To: ada@example.com"), "{written}");
        assert!(
            written.contains("From: \"ipn shop\" <shop@localhost>"),
            "{written}"
        );
        assert!(written.contains("Text of ord_1/paid"));
        assert!(written.contains("<p>HTML of ord_1/paid</p>"));

        let row = &outbox.for_order("ord_1").unwrap()[0];
        assert_eq!(row.status, EmailStatus::Sent);
        assert_eq!(row.attempts, 1);
        assert!(row.sent_at.is_some());

        let modified = std::fs::metadata(mails.join(files.first().unwrap()))
            .unwrap()
            .modified()
            .unwrap();
        let second = mailer.pass(&stop).await.unwrap();
        assert_eq!(second, Pass::default(), "nothing due, nothing queued");
        assert_eq!(eml_files(&mails), expected);
        let unchanged = std::fs::metadata(mails.join(files.first().unwrap()))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, unchanged, "not written again");
    }

    #[tokio::test]
    async fn an_invalid_address_fails_at_once_and_the_rest_still_goes() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let mails = dir.path().join("mail");
        let mut bad = email("ord_1/paid", Some("ord_1"), 1_000);
        bad.to = "not an address".into();
        outbox.queue(&[bad, email("ord_2/paid", Some("ord_2"), 2_000)]);
        let mailer = outbox.mailer(
            &Transport::folder(&mails),
            "shop@localhost",
            Retry::default(),
        );
        let (_stop_tx, stop) = watch::channel(false);
        let pass = mailer.pass(&stop).await.unwrap();
        assert_eq!((pass.sent, pass.failed), (1, 1));
        let row = &outbox.for_order("ord_1").unwrap()[0];
        assert_eq!(row.status, EmailStatus::Failed);
        assert!(
            row.last_error
                .as_deref()
                .unwrap()
                .contains("not an address")
        );
        assert_eq!(eml_files(&mails).len(), 1);
        assert_eq!(mailer.pass(&stop).await.unwrap(), Pass::default());
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        outbox.queue(&[email("ord_1/paid", Some("ord_1"), 1_000)]);
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let transport = Transport::smtp(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let mailer = outbox.mailer(&transport, "shop@localhost", Retry::default());
        let (_stop_tx, stop) = watch::channel(false);
        let before = wall_ms();
        let pass = mailer.pass(&stop).await.unwrap();
        assert_eq!((pass.sent, pass.failed), (0, 1));
        let row = &outbox.for_order("ord_1").unwrap()[0];
        assert_eq!(row.status, EmailStatus::Queued);
        assert_eq!(row.attempts, 1);
        let error = row.last_error.as_deref().unwrap();
        assert!(error.contains("refused"), "{error}");
        assert!(row.next_try_at >= before + 1_000, "backs off 1 s");
        let pass = mailer.pass(&stop).await.unwrap();
        assert_eq!(pass.sent + pass.failed, 0, "not due again yet");
        assert_eq!(pass.next_at, Some(row.next_try_at));
    }

    /// An SMTP server that answers every `RCPT TO` with `reply`.
    fn refusing_server(reply: &'static str) -> u16 {
        use std::io::{BufRead as _, BufReader, Write as _};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Ok(reader) = stream.try_clone() else {
                    return;
                };
                let mut lines = BufReader::new(reader).lines();
                let _ = stream.write_all(b"220 fake ESMTP\r\n");
                while let Some(Ok(line)) = lines.next() {
                    let answer = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                        Some("RCPT") => reply,
                        Some("QUIT") => "221 bye",
                        _ => "250 ok",
                    };
                    if stream
                        .write_all(format!("{answer}\r\n").as_bytes())
                        .is_err()
                        || answer.starts_with("221")
                    {
                        break;
                    }
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn a_permanent_rejection_is_given_up_after_its_attempts_and_a_transient_one_never() {
        for (reply, gives_up) in [
            ("550 5.1.1 no such user", true),
            ("451 4.3.0 try later", false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let outbox = Outbox::new(dir.path());
            outbox.queue(&[email("ord_1/paid", Some("ord_1"), 1_000)]);
            let port = refusing_server(reply);
            let transport = Transport::smtp(&format!("smtp://127.0.0.1:{port}")).unwrap();
            let retry = Retry {
                first: Duration::from_millis(1),
                max: Duration::from_millis(1),
                give_up_after: 3,
            };
            let mailer = outbox.mailer(&transport, "shop@localhost", retry);
            let (_stop_tx, stop) = watch::channel(false);
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let pass = mailer.pass(&stop).await.unwrap();
                assert_eq!((pass.sent, pass.failed), (0, 1), "{reply}");
            }
            let row = &outbox.for_order("ord_1").unwrap()[0];
            assert_eq!(row.attempts, 3, "{reply}");
            let error = row.last_error.as_deref().unwrap();
            assert!(error.contains(&reply[..3]), "{reply}: {error}");
            let expected = if gives_up {
                EmailStatus::Failed
            } else {
                EmailStatus::Queued
            };
            assert_eq!(row.status, expected, "{reply}");
        }
    }

    fn smtp_email(key: &str, created_at: i64) -> NewEmail {
        let mut email = email(key, Some(key), created_at);
        email.to = format!("customer+{key}@example.com");
        email
    }

    /// Waits until every one of `keys` has had a failed attempt.
    async fn attempted(outbox: &Outbox, keys: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let tried = keys.iter().all(|key| {
                outbox
                    .for_order(key)
                    .unwrap()
                    .first()
                    .is_some_and(|row| row.attempts > 0 && row.status == EmailStatus::Queued)
            });
            if tried {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no attempt was made");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smtp_sends_each_email_once_across_a_server_outage() {
        let mut maildev = MailDev::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path());
        let wake = Arc::new(Notify::new());
        let (stop_tx, stop) = watch::channel(false);
        let worker = MailWorker {
            reader: outbox.reader.clone(),
            writer: outbox.writer.clone(),
            transport: Transport::smtp(&maildev.smtp_url()).unwrap(),
            from: "ipn shop <shop@localhost>".into(),
            wake: Arc::clone(&wake),
            stop,
        };
        worker.check().unwrap();
        let worker = worker.spawn_with(Retry {
            first: Duration::from_millis(100),
            max: Duration::from_millis(400),
            give_up_after: 10,
        });

        let now = wall_ms();
        outbox.queue(&[
            smtp_email("ord_a", now),
            smtp_email("ord_b", now),
            smtp_email("ord_c", now),
        ]);
        wake.notify_one();
        let received = maildev.wait_for(3, Duration::from_secs(5)).await.unwrap();
        assert_eq!(received.len(), 3, "{received:#?}");
        let first = received
            .iter()
            .find(|m| m.to == ["customer+ord_a@example.com"])
            .expect("ord_a's email arrived");
        assert_eq!(first.subject, "Subject of ord_a");
        assert_eq!(first.text.as_deref().map(str::trim), Some("Text of ord_a"));
        assert_eq!(
            first.html.as_deref().map(str::trim),
            Some("<p>HTML of ord_a</p>")
        );
        assert_eq!(first.from, ["shop@localhost"]);
        let id = outbox.for_order("ord_a").unwrap()[0].id;
        assert_eq!(
            first.message_id.as_deref(),
            Some(super::super::transport::message_id(id, "ord_a").as_str())
        );

        // The server goes away; two more emails are queued and tried.
        maildev.stop();
        outbox.queue(&[smtp_email("ord_d", now), smtp_email("ord_e", now)]);
        wake.notify_one();
        attempted(&outbox, &["ord_d", "ord_e"]).await;
        let failed = &outbox.for_order("ord_d").unwrap()[0];
        assert!(failed.last_error.is_some(), "{failed:?}");

        // It comes back (on the same port, with its mails): the two arrive,
        // once each, and nothing sent before is sent again.
        maildev.restart().await.unwrap();
        let received = maildev.wait_for(5, Duration::from_secs(5)).await.unwrap();
        assert_eq!(received.len(), 5, "{received:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = maildev.emails().await.unwrap();
        let ids: BTreeSet<_> = received.iter().map(|m| m.message_id.clone()).collect();
        assert_eq!((received.len(), ids.len()), (5, 5), "{received:#?}");
        let recipients: BTreeSet<_> = received.iter().flat_map(|m| m.to.clone()).collect();
        assert_eq!(recipients.len(), 5);

        for row in outbox.recent(10).unwrap() {
            assert_eq!(row.status, EmailStatus::Sent, "{row:?}");
        }
        stop_tx.send(true).unwrap();
        worker.await.unwrap();
    }
}
