//! A headless Chromium driven through `chromedriver`, for tests that use
//! the shop and the checkout as a person would: a small W3C WebDriver
//! client over `reqwest`, with only the commands those tests need.
//!
//! Why not `fantoccini` or `thirtyfour`: both bring their own rustls crypto
//! provider, and a second provider in the process makes rustls panic at run
//! time. WebDriver is a handful of JSON calls, so it is written here.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port (its
//! `--allowed-ips` default admits loopback only), waits until `/status`
//! says it is ready, and opens one session on `/usr/bin/chromium` (or
//! `IPN_CHROMIUM`), headless. Dropping the [`Browser`] ends the session
//! (so Chromium exits) and kills `chromedriver`.
//!
//! HTTP Basic auth ([`Browser::set_basic_auth`]) goes through chromedriver's
//! Chrome DevTools passthrough: `Network.setExtraHTTPHeaders` adds an
//! `Authorization` header to every request the page makes from then on.
//! (On a Basic challenge headless Chromium shows an empty page: no prompt
//! to fill in. A URL with `user:password@` works for top-level navigations
//! only, and puts the password in every URL a test prints.)

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// How long `chromedriver` may take to say it is ready, and Chromium to
/// start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one WebDriver command may take (a navigation waits for the
/// page to load).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const INSTALL_HINT: &str =
    "install the Debian packages with `apt-get install chromium chromium-driver`";
/// The W3C name of the key that holds an element's id.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; ended, with its `chromedriver`, on drop.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    port: u16,
    session_id: String,
    driver: Option<Child>,
    /// Holds `chromedriver`'s log, shown when it fails.
    dir: tempfile::TempDir,
}

/// One element of the current page.
#[derive(Debug, Clone)]
pub struct Element {
    client: Client,
    id: String,
}

/// The session's URL and an HTTP client: what [`Browser`] and [`Element`]
/// need to send a command.
#[derive(Debug, Clone)]
struct Client {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

impl Browser {
    /// Starts `chromedriver` (`IPN_CHROMEDRIVER`, else from `PATH`) and a
    /// headless Chromium (`IPN_CHROMIUM`, else `/usr/bin/chromium`) in a
    /// 1280×900 window.
    pub async fn start() -> anyhow::Result<Self> {
        let chromium = std::env::var_os("IPN_CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        let driver = std::env::var_os("IPN_CHROMEDRIVER")
            .map_or_else(|| "chromedriver".into(), PathBuf::from);
        Self::start_with(&driver, &chromium).await
    }

    /// [`Browser::start`] with these two programs.
    pub async fn start_with(driver_program: &Path, chromium: &Path) -> anyhow::Result<Self> {
        if !chromium.exists() {
            bail!(
                "Chromium is not at {} (set IPN_CHROMIUM to another binary); {INSTALL_HINT}",
                chromium.display()
            );
        }
        let dir = tempfile::tempdir().context("creating chromedriver's directory")?;
        let log_path = dir.path().join("chromedriver.log");
        let log = File::create(&log_path).context("creating chromedriver's log")?;
        let port = free_port()?;
        let child = Command::new(driver_program)
            .arg(format!("--port={port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        let mut driver = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "`{}` was not found (set IPN_CHROMEDRIVER to another path); {INSTALL_HINT}",
                    driver_program.display()
                )
            }
            Err(error) => {
                return Err(error).context(format!("starting chromedriver; {INSTALL_HINT}"));
            }
        };

        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        if let Err(error) = wait_ready(&http, &base, &mut driver).await {
            let _ = driver.kill();
            let _ = driver.wait();
            bail!("{error:#}: {}", read_log(&log_path));
        }

        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,900",
                        ],
                    },
                },
            },
        });
        let answer = send(
            &http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await;
        let session_id = match answer.and_then(|value| {
            value["sessionId"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("a new session without an id: {value}"))
        }) {
            Ok(id) => id,
            Err(error) => {
                let _ = driver.kill();
                let _ = driver.wait();
                bail!(
                    "starting Chromium at {} failed ({INSTALL_HINT}): {error:#}; \
                     chromedriver's log: {}",
                    chromium.display(),
                    read_log(&log_path)
                );
            }
        };
        Ok(Self {
            client: Client {
                http,
                session: format!("{base}/session/{session_id}"),
            },
            port,
            session_id,
            driver: Some(driver),
            dir,
        })
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .post("/url", json!({ "url": url }))
            .await
            .with_context(|| format!("opening {url}"))?;
        Ok(())
    }

    /// The address of the page shown now.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let value = self.client.get("/url").await?;
        as_string(value)
    }

    /// The page's title.
    pub async fn title(&self) -> anyhow::Result<String> {
        let value = self.client.get("/title").await?;
        as_string(value)
    }

    /// The first element that matches the CSS selector; an error names the
    /// selector and the page when none does.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let value = self
            .client
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        match value {
            Ok(value) => self.element(&value),
            Err(error) => {
                let url = self.current_url().await.unwrap_or_default();
                Err(error.context(format!("finding `{css}` on {url}")))
            }
        }
    }

    /// Every element that matches the CSS selector, in document order.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let value = self
            .client
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .with_context(|| format!("finding `{css}`"))?;
        value
            .as_array()
            .with_context(|| format!("finding `{css}`: not a list: {value}"))?
            .iter()
            .map(|element| self.element(element))
            .collect()
    }

    /// Waits until the first element matching `css` has a text containing
    /// `needle`, checking every 100 ms (a page that reloads itself may
    /// briefly have no such element). Returns the element's text; on
    /// timeout the error says what the text was.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match self.find(css).await {
                Ok(element) => match element.text().await {
                    Ok(text) if text.contains(needle) => return Ok(text),
                    Ok(text) => last = format!("{text:?}"),
                    Err(_) => {} // the page reloaded under us: look again
                },
                Err(error) => last = format!("nothing ({error:#})"),
            }
            if tokio::time::Instant::now() >= deadline {
                let url = self.current_url().await.unwrap_or_default();
                bail!(
                    "`{css}` on {url} did not say {needle:?} within {} s; it said {last}",
                    timeout.as_secs_f32()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the address of the page starts with `prefix` (after a
    /// click that navigates, a redirect); returns the address.
    pub async fn wait_for_url(&self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let url = self.current_url().await?;
            if url.starts_with(prefix) {
                return Ok(url);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the browser did not reach {prefix}… within {} s; it is on {url}",
                    timeout.as_secs_f32()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's markup as the browser has it now.
    pub async fn page_source(&self) -> anyhow::Result<String> {
        let value = self.client.get("/source").await?;
        as_string(value)
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let encoded = as_string(self.client.get("/screenshot").await?)?;
        write_png(&encoded, path)
    }

    /// Saves a PNG of the whole page, below the fold included (through
    /// the DevTools `Page` domain; the window's size does not change).
    pub async fn screenshot_full_page(&self, path: &Path) -> anyhow::Result<()> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let (Some(width), Some(height)) = (size["width"].as_f64(), size["height"].as_f64()) else {
            bail!("the page's size is unknown: {metrics}");
        };
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        let encoded = shot["data"]
            .as_str()
            .with_context(|| format!("a screenshot without data: {shot}"))?;
        write_png(encoded, path)
    }

    /// Sends `Authorization: Basic …` with every request from now on, to
    /// any host (through the DevTools `Network` domain).
    pub async fn set_basic_auth(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.cdp("Network.enable", json!({})).await?;
        self.cdp(
            "Network.setExtraHTTPHeaders",
            json!({ "headers": { "Authorization": format!("Basic {token}") } }),
        )
        .await?;
        Ok(())
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> anyhow::Result<Value> {
        self.client
            .post(
                "/goog/cdp/execute",
                json!({ "cmd": command, "params": params }),
            )
            .await
            .with_context(|| format!("the DevTools command {command}"))
    }

    /// Ends the session and stops `chromedriver`, reporting a failure
    /// (dropping does the same, silently).
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let ended = self.client.delete("").await;
        self.session_id.clear();
        self.kill_driver();
        ended.map(|_| ())
    }

    fn element(&self, value: &Value) -> anyhow::Result<Element> {
        let id = value[ELEMENT_KEY]
            .as_str()
            .with_context(|| format!("not an element: {value}"))?;
        Ok(Element {
            client: self.client.clone(),
            id: id.to_owned(),
        })
    }

    fn kill_driver(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }

    /// `chromedriver`'s output so far, for a test's failure message.
    pub fn driver_log(&self) -> String {
        read_log(&self.dir.path().join("chromedriver.log"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session_id.is_empty() {
            // Drop cannot wait on the runtime, so the session is ended
            // with a plain blocking request: without it, killing
            // chromedriver would leave Chromium running.
            delete_session(self.port, &self.session_id);
        }
        self.kill_driver();
    }
}

impl Element {
    pub async fn click(&self) -> anyhow::Result<()> {
        self.client
            .post(&format!("/element/{}/click", self.id), json!({}))
            .await?;
        Ok(())
    }

    /// Types `text` into the element, after what it holds already.
    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.client
            .post(
                &format!("/element/{}/value", self.id),
                json!({ "text": text }),
            )
            .await?;
        Ok(())
    }

    /// Empties an input.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.client
            .post(&format!("/element/{}/clear", self.id), json!({}))
            .await?;
        Ok(())
    }

    /// The element's rendered text.
    pub async fn text(&self) -> anyhow::Result<String> {
        as_string(
            self.client
                .get(&format!("/element/{}/text", self.id))
                .await?,
        )
    }

    /// An attribute's value as written in the markup (a relative `href`
    /// stays relative), `None` when it has none.
    pub async fn attribute(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .client
            .get(&format!("/element/{}/attribute/{name}", self.id))
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// A DOM property's value as text (`href` is the absolute URL), `None`
    /// when it is not text.
    pub async fn property(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .client
            .get(&format!("/element/{}/property/{name}", self.id))
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        send(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.session),
            None,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.session),
            Some(body),
        )
        .await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        send(
            &self.http,
            reqwest::Method::DELETE,
            &format!("{}{path}", self.session),
            None,
        )
        .await
    }
}

/// One WebDriver command: its `value`, or the driver's error and message.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let mut answer: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{method} {url}: {status}, not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    let value = answer["value"].take();
    if !status.is_success() {
        let error = value["error"].as_str().unwrap_or("unknown error");
        let message = value["message"].as_str().unwrap_or("");
        // The first line of chromedriver's message; the rest is a stack.
        let message = message.lines().next().unwrap_or("");
        bail!("{method} {url}: {status} {error}: {message}");
    }
    Ok(value)
}

/// Decodes a screenshot (base64 PNG) into `path`.
fn write_png(encoded: &str, path: &Path) -> anyhow::Result<()> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("a screenshot that is not base64")?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}

fn as_string(value: Value) -> anyhow::Result<String> {
    match value {
        Value::String(text) => Ok(text),
        other => bail!("expected text from the browser, got {other}"),
    }
}

/// Polls `/status` until it says ready, or the driver exits, or time runs
/// out.
async fn wait_ready(http: &reqwest::Client, base: &str, driver: &mut Child) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let status = format!("{base}/status");
    loop {
        if let Some(exit) = driver.try_wait()? {
            bail!("chromedriver exited at start ({exit})");
        }
        let ready = match http.get(&status).send().await {
            Ok(response) => response
                .json::<Value>()
                .await
                .is_ok_and(|answer| answer["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "chromedriver did not answer on {status} within {} s",
                START_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `DELETE /session/{id}` over a plain socket, waiting (briefly) for the
/// answer, which comes once Chromium has quit.
fn delete_session(port: u16, session_id: &str) {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

/// A port free on `127.0.0.1` just now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
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
    async fn missing_programs_are_named_with_their_packages() {
        let error = Browser::start_with(
            Path::new("chromedriver"),
            Path::new("/nonexistent/chromium"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent/chromium"), "{error}");
        assert!(error.contains("IPN_CHROMIUM"), "{error}");
        assert!(error.contains("chromium chromium-driver"), "{error}");

        let exists = std::env::current_exe().unwrap();
        let error = Browser::start_with(Path::new("/nonexistent/chromedriver"), &exists)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent/chromedriver` was not found"),
            "{error}"
        );
        assert!(error.contains("chromium chromium-driver"), "{error}");
    }
}
