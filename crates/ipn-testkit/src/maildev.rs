//! [`MailDev`]: a real SMTP server for tests, the `maildev` command from
//! npm (`npm install -g maildev@3.0.0`), run on two free loopback ports and
//! read through its REST API.
//!
//! Each instance gets its own mail directory, so its mails survive
//! [`MailDev::stop`] and [`MailDev::restart`] (MailDev reloads the
//! directory at start; without one it would keep mails in memory only and a
//! restart would clear them), and are deleted with it on drop.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// How long MailDev may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const INSTALL_HINT: &str = "install it with `npm install -g maildev@3.0.0`";

/// One email as MailDev received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEmail {
    /// MailDev's id for it.
    pub id: String,
    /// The `From` addresses.
    pub from: Vec<String>,
    /// The `To` addresses.
    pub to: Vec<String>,
    pub subject: String,
    /// The `text/plain` part.
    pub text: Option<String>,
    /// The `text/html` part.
    pub html: Option<String>,
    /// The `Message-ID` header, with its angle brackets.
    pub message_id: Option<String>,
    /// The `Date` header as MailDev parsed it.
    pub date: Option<String>,
    /// When MailDev received it.
    pub time: Option<String>,
}

impl ReceivedEmail {
    fn from_json(value: &Value) -> anyhow::Result<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let addresses = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|a| a.get("address").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let message_id = value
            .get("messageId")
            .or_else(|| value.pointer("/headers/message-id"))
            .and_then(Value::as_str)
            .map(|id| {
                // MailDev versions differ on keeping the angle brackets.
                let bare = id.trim().trim_start_matches('<').trim_end_matches('>');
                format!("<{bare}>")
            });
        Ok(Self {
            id: text("id").context("a MailDev email without an id")?,
            from: addresses("from"),
            to: addresses("to"),
            subject: text("subject").unwrap_or_default(),
            text: text("text"),
            html: text("html"),
            message_id,
            date: text("date"),
            time: text("time"),
        })
    }
}

/// A MailDev process on `127.0.0.1`; killed when dropped.
#[derive(Debug)]
pub struct MailDev {
    smtp_port: u16,
    web_port: u16,
    /// The working and mail directory (and MailDev's log).
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl MailDev {
    /// Starts MailDev on two free loopback ports and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let (smtp_port, web_port) = free_ports()?;
        let mut maildev = Self {
            smtp_port,
            web_port,
            dir: tempfile::tempdir().context("creating MailDev's directory")?,
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        maildev.launch().await?;
        Ok(maildev)
    }

    /// The URL for the merchant's `--smtp-url`: `smtp://127.0.0.1:PORT`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// The web interface and REST API, e.g. for a person debugging a test.
    pub fn web_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// Every email received so far, in arrival order.
    pub async fn emails(&self) -> anyhow::Result<Vec<ReceivedEmail>> {
        let url = format!("{}/api/email", self.web_url());
        let body: Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))?;
        body.as_array()
            .with_context(|| format!("GET {url}: not a list: {body}"))?
            .iter()
            .map(ReceivedEmail::from_json)
            .collect()
    }

    /// Waits until at least `count` emails have arrived, or `timeout`
    /// passes; returns what arrived either way, so the test's assertion
    /// says what is missing.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedEmail>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let emails = self.emails().await?;
            if emails.len() >= count || tokio::time::Instant::now() >= deadline {
                return Ok(emails);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Deletes every email received so far.
    pub async fn delete_all(&self) -> anyhow::Result<()> {
        let url = format!("{}/api/email/all", self.web_url());
        self.http
            .delete(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("DELETE {url}"))?;
        Ok(())
    }

    /// Kills MailDev: its SMTP port refuses connections until
    /// [`MailDev::restart`]. Its mails are kept on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Reaped, so the ports are free when this returns.
            let _ = child.wait();
        }
    }

    /// Starts MailDev again on the SAME ports (so a configured SMTP URL
    /// keeps working), with the mails it had; waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mails = self.dir.path().join("mail");
        std::fs::create_dir_all(&mails).context("creating MailDev's mail directory")?;
        let log_path = self.dir.path().join("maildev.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("creating MailDev's log")?;
        let (smtp, web) = (self.smtp_port.to_string(), self.web_port.to_string());
        // Both addresses are given: MailDev binds every interface otherwise.
        // No --outgoing-* option: nothing is relayed anywhere. The working
        // directory is ours, so no stray .maildevrc.json is picked up.
        let child = Command::new("maildev")
            .args(["--smtp", &smtp, "--web", &web])
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1"])
            .arg("--mail-directory")
            .arg(&mails)
            .arg("--silent")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                bail!("`maildev` is not on PATH; {INSTALL_HINT}")
            }
            Err(error) => return Err(error).context(format!("starting maildev; {INSTALL_HINT}")),
        };
        self.child = Some(child);

        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let health = format!("{}/api/healthz", self.web_url());
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                bail!(
                    "maildev exited at start ({status}): {}",
                    read_log(&log_path)
                );
            }
            let answered = self
                .http
                .get(&health)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            // The API starts after the SMTP server, but check both.
            if answered && smtp_answers(self.smtp_port) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.stop();
                bail!(
                    "maildev did not answer on {health} within {} s: {}",
                    START_TIMEOUT.as_secs(),
                    read_log(&log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two distinct ports free on `127.0.0.1` just now.
fn free_ports() -> anyhow::Result<(u16, u16)> {
    // Both listeners are held at once so the two ports differ.
    let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let second = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

fn smtp_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn read_log(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(log) if !log.trim().is_empty() => log.trim().to_owned(),
        _ => "(it printed nothing)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_receives_over_smtp_and_keeps_its_port_and_mails_across_a_restart() {
        let mut maildev = MailDev::start().await.unwrap();
        assert!(maildev.emails().await.unwrap().is_empty());
        send(
            maildev.smtp_port(),
            "<one@test>",
            "ada@example.com",
            "First",
        );
        let got = maildev.wait_for(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].to, ["ada@example.com"]);
        assert_eq!(got[0].from, ["shop@localhost"]);
        assert_eq!(got[0].subject, "First");
        assert_eq!(got[0].message_id.as_deref(), Some("<one@test>"));
        assert_eq!(got[0].text.as_deref().map(str::trim), Some("Hello there"));

        let port = maildev.smtp_port();
        maildev.stop();
        assert!(!smtp_answers(port), "stopped means refused");
        maildev.restart().await.unwrap();
        assert_eq!(maildev.smtp_port(), port);
        send(port, "<two@test>", "bob@example.com", "Second");
        let got = maildev.wait_for(2, Duration::from_secs(5)).await.unwrap();
        let subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["First", "Second"]);

        maildev.delete_all().await.unwrap();
        assert!(maildev.emails().await.unwrap().is_empty());
    }

    /// A minimal SMTP client, so this test needs nothing but std.
    fn send(port: u16, message_id: &str, to: &str, subject: &str) {
        use std::io::{BufRead as _, BufReader, Write as _};

        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            // `250-` continues a multi-line reply; `250 ` ends it.
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        };
        expect("220");
        let data = format!(
            "From: shop@localhost\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n\r\nHello there\r\n.\r\n"
        );
        for (command, reply) in [
            ("EHLO test\r\n".to_owned(), "250"),
            ("MAIL FROM:<shop@localhost>\r\n".to_owned(), "250"),
            (format!("RCPT TO:<{to}>\r\n"), "250"),
            ("DATA\r\n".to_owned(), "354"),
            (data, "250"),
            ("QUIT\r\n".to_owned(), "221"),
        ] {
            writer.write_all(command.as_bytes()).unwrap();
            expect(reply);
        }
    }
}
