//! `ipn gateway` refuses to start without an encryption key, or with one
//! that is not 32 bytes of base64, naming the flag and what is wrong and
//! never echoing the value given.

use std::io::Read as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `ipn gateway` with `extra` arguments and no IPN_* settings of the caller;
/// its exit status and standard error. One that starts instead of refusing
/// is killed, and the test fails rather than waits.
fn gateway(dir: &std::path::Path, extra: &[&str]) -> (ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ipn"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("IPN_")) {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["gateway", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("gateway.db").display()))
        .args(["--admin-key", "cli-test-admin-key-0123456789abcdef"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipn gateway runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipn gateway {extra:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

#[test]
fn without_an_encryption_key_the_gateway_refuses_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = gateway(dir.path(), &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--encryption-key"), "{stderr}");
    assert!(
        !dir.path().join("gateway.db").exists(),
        "nothing is created without a key"
    );
}

#[test]
fn a_key_that_is_not_32_bytes_of_base64_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    for (key, why) in [
        ("this-is-no-key-at-all!", "not valid standard base64"),
        // 16 bytes: an AES-128 key, or half of what `openssl rand` gives.
        ("AAECAwQFBgcICQoLDA0ODw==", "16 bytes, not 32"),
        ("", "empty"),
    ] {
        let (status, stderr) = gateway(dir.path(), &["--encryption-key", key]);
        assert_eq!(status.code(), Some(2), "{key:?}: {stderr}");
        assert!(stderr.contains("--encryption-key"), "{key:?}: {stderr}");
        assert!(stderr.contains(why), "{key:?}: {stderr}");
        if !key.is_empty() {
            assert!(!stderr.contains(key), "the key is echoed: {stderr}");
        }
    }
}

#[test]
fn the_help_documents_the_key_and_its_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args(["gateway", "--help"])
        .output()
        .unwrap();
    // As one line: the help is wrapped to the terminal's width.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("--encryption-key"), "{help}");
    assert!(help.contains("IPN_ENCRYPTION_KEY"), "{help}");
    assert!(help.contains("openssl rand -base64 32"), "{help}");
}
