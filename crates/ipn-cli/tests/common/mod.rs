//! Running `ipn up` as a child process, for the tests that use it.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `ipn up` on free ports with `data_dir`; returns once its banner
/// is printed (its output is drained after, so it never blocks on a pipe).
pub fn start_up(data_dir: &Path) -> Child {
    start_up_with(data_dir, &[])
}

/// [`start_up`] with more arguments.
pub fn start_up_with(data_dir: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args([
            "up",
            "--gateway-port",
            "0",
            "--shop-port",
            "0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(args)
        .env("IPN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ipn up starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("ipn up prints its banner").unwrap();
        if line.starts_with("ipn is up.") {
            break;
        }
    }
    // The banner names every place a newcomer goes.
    let mut banner = String::new();
    while !banner.contains("Ctrl-C stops.") {
        let line = lines.next().expect("the banner ends").unwrap();
        banner.push_str(&line);
        banner.push('\n');
    }
    for place in [
        "shop ",
        "admin ",
        "dashboard ",
        "/dashboard",
        "credentials.json",
    ] {
        assert!(banner.contains(place), "{place:?} in {banner}");
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// SIGTERM, as Ctrl-C would; waits for the exit and returns its code.
pub fn terminate(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().ok().and_then(|status| status.code())
}
