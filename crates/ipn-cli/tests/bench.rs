//! `ipn bench delivery` as a script runs it: a short run through a real
//! gateway, read from the JSON figures on its last line. Timings are printed,
//! never asserted here.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_delivery_run_delivers_every_event_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .args([
            "bench",
            "delivery",
            "--events",
            "300",
            "--concurrency",
            "8",
            "--latency-seconds",
            "1",
            "--baseline-seconds",
            "1",
        ])
        .output()
        .expect("ipn runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{context}");

    let last = stdout.lines().last().expect("some output");
    let figures: Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(figures["scenario"], "delivery", "{context}");
    assert_eq!(figures["events"], 300, "{context}");
    assert_eq!(figures["lost"], 0, "{context}");
    assert_eq!(figures["duplicates"], 0, "{context}");
    assert_eq!(figures["latency_rate"], 1000, "{context}");
    for field in [
        "events_per_s",
        "p50_ms",
        "p99_ms",
        "latency_p50_ms",
        "latency_p99_ms",
        "one_hop_per_s",
        "ratio_to_one_hop",
        "elapsed_s",
    ] {
        assert!(figures[field].is_number(), "{field} in {last}");
    }
}
