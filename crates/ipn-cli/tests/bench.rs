//! `ipn bench` as a script runs it: short runs through a real gateway, read
//! from the JSON figures on the last line. Timings are printed, never
//! asserted here: these check that the runs are correct and complete.

use std::process::Command;

use serde_json::Value;

/// Runs `ipn bench ARGS`; returns the exit code, the figures, and the whole
/// output for assertion messages.
fn bench(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ipn"))
        .arg("bench")
        .args(args)
        .output()
        .expect("ipn runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let figures = serde_json::from_str(last).unwrap_or(Value::Null);
    (out.status.code(), figures, context)
}

fn assert_numbers(figures: &Value, fields: &[&str], context: &str) {
    for field in fields {
        assert!(figures[field].is_number(), "{field} in {context}");
    }
}

#[test]
fn a_short_delivery_run_delivers_every_event_once() {
    let (code, figures, context) = bench(&[
        "delivery",
        "--events",
        "300",
        "--concurrency",
        "8",
        "--latency-seconds",
        "1",
        "--baseline-seconds",
        "1",
    ]);
    assert_eq!(code, Some(0), "{context}");
    assert_eq!(figures["scenario"], "delivery", "{context}");
    assert_eq!(figures["events"], 300, "{context}");
    assert_eq!(figures["lost"], 0, "{context}");
    assert_eq!(figures["duplicates"], 0, "{context}");
    assert_eq!(figures["latency_rate"], 1000, "{context}");
    assert_numbers(
        &figures,
        &[
            "events_per_s",
            "p50_ms",
            "p99_ms",
            "latency_p50_ms",
            "latency_p99_ms",
            "one_hop_per_s",
            "ratio_to_one_hop",
            "elapsed_s",
        ],
        &context,
    );
}

#[test]
fn a_short_retries_run_delivers_every_pending_retry_after_a_restart() {
    let (code, figures, context) = bench(&[
        "retries",
        "--quick",
        "--events",
        "200",
        "--concurrency",
        "8",
    ]);
    assert_eq!(code, Some(0), "{context}");
    assert_eq!(figures["scenario"], "retries", "{context}");
    assert_eq!(figures["pending"], 200, "{context}");
    assert_eq!(figures["lost"], 0, "{context}");
    assert_eq!(figures["duplicates"], 0, "{context}");
    assert_eq!(figures["errors"], 0, "{context}");
    assert_numbers(
        &figures,
        &[
            "retry_delay_s",
            "stop_ms",
            "restart_to_listening_ms",
            "restart_to_first_delivery_ms",
            "restart_to_all_delivered_ms",
            "redelivered_per_s",
            "elapsed_s",
        ],
        &context,
    );
    let memory = [
        "rss_mb_pending",
        "rss_mb_peak",
        "rss_mb_after_restart",
        "rss_mb_peak_after_restart",
    ];
    if cfg!(target_os = "linux") {
        assert_numbers(&figures, &memory, &context);
    } else {
        for field in memory {
            assert!(figures[field].is_null(), "{field} in {context}");
        }
    }
}

#[test]
fn retries_run_the_gateway_as_shipped_so_sync_is_refused() {
    let (code, _, context) = bench(&["retries", "--events", "10", "--sync", "normal"]);
    assert_eq!(code, Some(2), "{context}");
    assert!(context.contains("--sync"), "{context}");
}

#[test]
fn a_short_isolation_run_delivers_every_event_to_every_healthy_endpoint() {
    let (code, figures, context) = bench(&[
        "isolation",
        "--quick",
        "--events",
        "20",
        "--concurrency",
        "8",
    ]);
    assert_eq!(code, Some(0), "{context}");
    assert_eq!(figures["scenario"], "isolation", "{context}");
    assert_eq!(figures["events"], 20, "{context}");
    assert_eq!(figures["healthy_endpoints"], 100, "{context}");
    assert_eq!(figures["dead"], "hang", "{context}");
    assert_eq!(figures["lost"], 0, "{context}");
    assert_eq!(figures["duplicates"], 0, "{context}");
    assert_eq!(figures["errors"], 0, "{context}");
    assert_numbers(
        &figures,
        &[
            "healthy_per_s_alone",
            "healthy_per_s_with_dead",
            "cost_pct",
            "seconds_alone",
            "seconds_with_dead",
            "elapsed_s",
        ],
        &context,
    );
}

#[test]
fn a_short_merchant_run_applies_every_ipn() {
    let (code, figures, context) = bench(&["merchant", "--events", "300", "--concurrency", "8"]);
    assert_eq!(code, Some(0), "{context}");
    assert_eq!(figures["scenario"], "merchant", "{context}");
    assert_eq!(figures["messages"], 300, "{context}");
    assert_eq!(figures["lost"], 0, "{context}");
    assert_eq!(figures["errors"], 0, "{context}");
    assert_numbers(
        &figures,
        &[
            "stored_per_s",
            "applied_per_s",
            "answer_p50_ms",
            "answer_p99_ms",
            "elapsed_s",
        ],
        &context,
    );
}
