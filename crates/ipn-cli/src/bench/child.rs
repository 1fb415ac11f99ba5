//! `ipn gateway` as a child process: this same executable, so the figures are
//! the shipped command's; a process of its own, so that its memory (VmRSS and
//! VmHWM from /proc) is the gateway's alone and a restart is a real start.
//!
//! Its standard error is copied to ours, each line prefixed `[gateway]`,
//! except the line that says where it listens, which is read for the address
//! and the instant.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::oneshot;

/// What `ipn gateway` prints once it accepts requests (gateway.rs).
const LISTENING: &str = "ipn gateway listening on ";
/// Longest wait for it to listen: it rebuilds its schedule from the
/// database first, a million rows and more in the retries scenario.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for it to exit after SIGTERM: it lets attempts in flight
/// finish (up to its 15 s delivery timeout) and commits what is queued.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `ipn gateway`; dropping it kills the process (SIGKILL), so an
/// error in the bench never leaves a gateway behind.
#[derive(Debug)]
pub struct ChildGateway {
    child: Child,
    pub addr: SocketAddr,
    /// Just before the process was spawned.
    pub spawned: Instant,
    /// When it said it listens; its schedule was rebuilt by then.
    pub listening: Instant,
}

/// Resident memory, from /proc/PID/status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the most that was ever resident.
    pub peak_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

impl ChildGateway {
    /// Starts `ipn gateway` on 127.0.0.1 and a free port, on the SQLite file
    /// `database`, with loopback deliveries allowed and `retry_schedule`
    /// (`--retry-schedule` syntax), sealing secrets with `encryption_key`
    /// (base64; the same on every start of one database); returns once it
    /// listens.
    pub async fn start(
        database: &Path,
        admin_key: &str,
        encryption_key: &str,
        retry_schedule: &str,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the ipn executable")?;
        let mut command = Command::new(exe);
        // The user's IPN_* settings would change the gateway under test;
        // IPN_LOG only changes what it says.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(|n| n.starts_with("IPN_") && n != "IPN_LOG")
            {
                command.env_remove(name);
            }
        }
        command
            .arg("gateway")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--database-url")
            .arg(format!("sqlite://{}", database.display()))
            .arg("--allow-private-networks")
            .args(["--retry-schedule", retry_schedule])
            // In the environment rather than the arguments, out of `ps`.
            .env("IPN_ADMIN_KEY", admin_key)
            .env("IPN_ENCRYPTION_KEY", encryption_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        // Owned by `gateway` at once: from here on, an error kills it.
        let mut gateway = Self {
            child: command.spawn().context("starting `ipn gateway`")?,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned,
            listening: spawned,
        };
        let stderr = gateway
            .child
            .stderr
            .take()
            .context("the gateway's standard error is not piped")?;
        let (said, listening) = oneshot::channel();
        std::thread::Builder::new()
            .name("gateway-stderr".into())
            .spawn(move || copy_stderr(stderr, said))
            .context("starting a thread to read the gateway's standard error")?;
        let (at, url) = match tokio::time::timeout(START_TIMEOUT, listening).await {
            Ok(Ok(said)) => said,
            Ok(Err(_)) => bail!(
                "`ipn gateway` stopped before it listened ({}); its output is above",
                gateway.exit_status().await
            ),
            Err(_) => bail!("`ipn gateway` did not listen within {START_TIMEOUT:?}"),
        };
        gateway.addr = url
            .strip_prefix("http://")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| anyhow!("`ipn gateway` listens on {url:?}, not http://IP:PORT"))?;
        gateway.listening = at;
        Ok(gateway)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its memory now; `None` where /proc is not there to tell (not Linux).
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        parse_status(&status)
    }

    /// Asks it to stop (SIGTERM, as a service manager would) and waits for
    /// it to exit; returns how long that took. An exit other than 0, or none
    /// within [`STOP_TIMEOUT`], is an error (and the process is killed).
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let asked = Instant::now();
        self.terminate()?;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("waiting for the gateway to exit")?
            {
                if !status.success() {
                    bail!("`ipn gateway` exited with {status} when asked to stop");
                }
                return Ok(asked.elapsed());
            }
            if asked.elapsed() >= STOP_TIMEOUT {
                bail!("`ipn gateway` did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[cfg(unix)]
    fn terminate(&mut self) -> anyhow::Result<()> {
        // std can send only SIGKILL; kill(1) sends the graceful one.
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .context("running kill(1) to send SIGTERM to the gateway")?;
        if !status.success() {
            bail!("kill -s TERM {pid} failed: {status}");
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn terminate(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("stopping the gateway")
    }

    /// How it ended, for an error message.
    async fn exit_status(&mut self) -> String {
        // Its standard error closes just before the process ends.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_owned(),
            Err(error) => format!("status unknown: {error}"),
        }
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copies the gateway's standard error to ours until it closes, and sends
/// the URL it listens on, with the instant the line was read.
fn copy_stderr(stderr: ChildStderr, said: oneshot::Sender<(Instant, String)>) {
    let mut said = Some(said);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        let at = Instant::now();
        if let Some(url) = line.strip_prefix(LISTENING)
            && let Some(said) = said.take()
        {
            let _ = said.send((at, url.trim().to_owned()));
            continue;
        }
        eprintln!("[gateway] {line}");
    }
}

/// VmRSS and VmHWM of a /proc/PID/status text, in KiB.
fn parse_status(status: &str) -> Option<Memory> {
    let kib = |field: &str| -> Option<u64> {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(field)?.trim();
            value.strip_suffix("kB")?.trim().parse().ok()
        })
    };
    Some(Memory {
        rss_kib: kib("VmRSS:")?,
        peak_kib: kib("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_proc_status() {
        let status = "Name:\tipn\nVmPeak:\t  900000 kB\nVmHWM:\t   65536 kB\n\
                      VmRSS:\t   32768 kB\nThreads:\t7\n";
        let memory = parse_status(status).unwrap();
        assert_eq!(
            memory,
            Memory {
                rss_kib: 32_768,
                peak_kib: 65_536
            }
        );
        assert_eq!(memory.rss_mib(), 32.0);
        assert_eq!(memory.peak_mib(), 64.0);
        assert_eq!(parse_status("Name:\tipn\n"), None);
    }

    #[test]
    fn this_process_has_memory_on_linux() {
        if cfg!(target_os = "linux") {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let memory = parse_status(&status).unwrap();
            assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
        }
    }
}
