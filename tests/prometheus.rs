//! The Prometheus side with the real `promtool` (Debian `prometheus`): a live scrape passes
//! `promtool check metrics` (naming, types, units), and the shipped alert rules pass
//! `promtool check rules` and their own unit tests (`promtool test rules`).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::daemon::TestDaemon;

fn prometheus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus"))
}

#[test]
fn a_live_scrape_passes_promtool_check_metrics() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    // A keep-alive makes the daemon export its gauges.
    let ping = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ping.send_to(b"\r\n\r\n", d.sip_udp()).unwrap();
    let exported = (0..400).any(|_| {
        let ok = d.metric("tongdai_agents{state=\"logged_out\"}") == 3.0;
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        ok
    });
    assert!(exported, "the daemon never exported its gauges");
    let text = d.metrics();
    let body = text.split_once("\r\n\r\n").map_or(text.as_str(), |(_, b)| b).to_string();
    for (name, kind) in [
        ("tongdai_queue_waiting_calls", "gauge"),
        ("tongdai_queue_longest_wait_seconds", "gauge"),
        ("tongdai_agents", "gauge"),
        ("tongdai_calls_offered_total", "counter"),
        ("tongdai_calls_overflowed_total", "counter"),
        ("tongdai_queue_wait_seconds", "histogram"),
        ("tongdai_talk_seconds", "histogram"),
        ("tongdai_service_level_ratio", "gauge"),
    ] {
        assert!(body.contains(&format!("# TYPE {name} {kind}")), "{name} missing:\n{body}");
    }
    // Every overflow reason is exported from the start (0), and the histograms carry the
    // documented buckets (the service-level thresholds among them).
    for reason in tongdai::metrics::OVERFLOW_REASONS {
        let series = format!("tongdai_calls_overflowed_total{{reason=\"{reason}\"}} 0");
        assert!(body.contains(&series), "{series} missing:\n{body}");
    }
    for le in ["5", "20", "600", "+Inf"] {
        let series =
            format!("tongdai_queue_wait_seconds_bucket{{outcome=\"answered\",le=\"{le}\"}}");
        assert!(body.contains(&series), "{series} missing:\n{body}");
    }
    assert!(body.contains("tongdai_talk_seconds_bucket{le=\"3600\"}"), "{body}");
    // Today's service level, before any judged call: NaN, labelled with the 20 s default target.
    assert!(body.contains("tongdai_service_level_ratio{threshold=\"20\"} NaN"), "{body}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`) must be installed");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}");
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let check = Command::new("promtool")
        .args(["check", "rules", "alerts.yml"])
        .current_dir(prometheus_dir())
        .output()
        .expect("promtool (Debian package `prometheus`) must be installed");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("SUCCESS: 9 rules found"), "{stdout}");
    let test = Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(prometheus_dir())
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(test.status.success() && out.contains("SUCCESS"), "{out}");
}
