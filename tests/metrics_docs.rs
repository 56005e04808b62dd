//! The metric documentation cannot drift from the code: `src/metrics.rs` (the one place metric
//! names are defined) is parsed for every name and the type it is described with, and the README's
//! metrics table must list exactly those, with the same type and, for histograms, the same
//! buckets. The Grafana dashboard's queries may only name metrics defined there, and each query is
//! valid PromQL (checked by `promtool check rules` on a rule file made of them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `(constant, metric name)` of every `pub const X: &str = "tongdai_…";` in `src/metrics.rs`.
fn metric_constants(source: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else { continue };
        let Some((ident, value)) = rest.split_once(": &str = \"") else { continue };
        let Some(name) = value.strip_suffix("\";") else { continue };
        if name.starts_with("tongdai_") {
            out.insert(ident.to_string(), name.to_string());
        }
    }
    out
}

/// Metric name → `counter` | `gauge` | `histogram`, from the `describe_*!(CONSTANT, …)` calls.
fn described(source: &str, constants: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kind in ["counter", "gauge", "histogram"] {
        let call = format!("describe_{kind}!(");
        for (at, _) in source.match_indices(&call) {
            let rest = source[at + call.len()..].trim_start();
            let ident: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let name = constants
                .get(&ident)
                .unwrap_or_else(|| panic!("describe_{kind}!({ident}) names no metric constant"));
            out.insert(name.clone(), kind.to_string());
        }
    }
    out
}

/// One row of the README's metrics table.
#[derive(Debug)]
struct Row {
    kind: String,
    meaning: String,
}

/// The README's metrics table: name → row.
fn readme_table(readme: &str) -> BTreeMap<String, Row> {
    let mut out = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `tongdai_")) {
        let cells = cells(line);
        assert_eq!(cells.len(), 4, "a metrics row has 4 cells: {line}");
        let name = cells[0].trim_matches('`').to_string();
        let row = Row { kind: cells[1].clone(), meaning: cells[3].clone() };
        assert!(out.insert(name.clone(), row).is_none(), "{name} is listed twice");
    }
    out
}

/// The cells of a Markdown table row; a pipe inside a cell is written `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in line.trim().trim_start_matches('|').trim_end_matches('|').chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            _ => cells.last_mut().into_iter().for_each(|cell| cell.push(c)),
        }
        escaped = c == '\\';
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The numbers after "buckets " in a README meaning cell.
fn buckets_in(meaning: &str) -> Vec<f64> {
    let Some((_, list)) = meaning.split_once("buckets ") else { return Vec::new() };
    list.split(',').map_while(|b| b.trim().parse::<f64>().ok()).collect()
}

#[test]
fn the_readme_lists_every_metric_with_its_type_and_buckets() {
    let source = repo("src/metrics.rs");
    let constants = metric_constants(&source);
    let described = described(&source, &constants);
    let names: BTreeSet<&String> = constants.values().collect();
    assert!(names.len() >= 30, "the parser found too few metrics: {names:?}");
    // Every name defined is described (so it has HELP and TYPE lines), and vice versa.
    let undescribed: Vec<_> = names.iter().filter(|n| !described.contains_key(**n)).collect();
    assert!(undescribed.is_empty(), "defined but never described: {undescribed:?}");

    let table = readme_table(&repo("README.md"));
    let missing: Vec<_> = described.keys().filter(|n| !table.contains_key(*n)).collect();
    assert!(missing.is_empty(), "metrics missing from the README's table: {missing:?}");
    let unknown: Vec<_> = table.keys().filter(|n| !described.contains_key(*n)).collect();
    assert!(unknown.is_empty(), "README lists metrics src/metrics.rs does not define: {unknown:?}");
    for (name, kind) in &described {
        assert_eq!(&table[name].kind, kind, "{name}: README type");
    }

    // Histograms: the README gives the buckets the exporter is configured with.
    let histograms: BTreeSet<&str> = tongdai::metrics::HISTOGRAMS.iter().map(|h| h.0).collect();
    let described_histograms: BTreeSet<&str> =
        described.iter().filter(|(_, k)| *k == "histogram").map(|(n, _)| n.as_str()).collect();
    assert_eq!(histograms, described_histograms, "every histogram has explicit buckets");
    for (name, buckets) in tongdai::metrics::HISTOGRAMS {
        assert_eq!(buckets_in(&table[*name].meaning), buckets.to_vec(), "{name}: README buckets");
    }
}

/// Every `tongdai_…` name in `expr`, with a histogram's `_bucket`/`_sum`/`_count` suffix taken off
/// when the rest is a histogram.
fn metric_names(expr: &str, histograms: &BTreeSet<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in expr.match_indices("tongdai_") {
        if expr[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String =
            expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(b)))
            .map_or(name.clone(), str::to_string);
        out.push(base);
    }
    out
}

/// Every PromQL query of the dashboard: the panels' (rows' nested panels too) and the template
/// variables'.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<String> {
    fn panels(list: &serde_json::Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = var["definition"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_defined_metrics_in_valid_promql() {
    let source = repo("src/metrics.rs");
    let defined: BTreeSet<String> = metric_constants(&source).into_values().collect();
    let histograms: BTreeSet<&str> = tongdai::metrics::HISTOGRAMS.iter().map(|h| h.0).collect();
    let dash: serde_json::Value =
        serde_json::from_str(&repo("config/grafana/tongdai-dashboard.json")).unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap_or(0) >= 36, "schemaVersion");
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q, &histograms);
        assert!(!names.is_empty(), "a query names no tongdai metric: {q}");
        for name in names {
            assert!(defined.contains(&name), "the dashboard queries undefined `{name}`: {q}");
            used.insert(name);
        }
    }
    // A bucket a query picks (`le="…"`) is one the histogram really has.
    for q in &queries {
        for (at, _) in q.match_indices("le=\"") {
            let le: String = q[at + 4..].chars().take_while(|c| *c != '"').collect();
            let bound: f64 = le.parse().unwrap_or(f64::NAN);
            let known = tongdai::metrics::HISTOGRAMS.iter().any(|(_, b)| b.contains(&bound));
            assert!(known, "le=\"{le}\" is no bucket bound: {q}");
        }
    }
    // The panels the ops team asked for are there.
    for name in [
        "tongdai_queue_waiting_calls",
        "tongdai_queue_longest_wait_seconds",
        "tongdai_service_level_ratio",
        "tongdai_calls_answered_total",
        "tongdai_calls_abandoned_total",
        "tongdai_calls_overflowed_total",
        "tongdai_agents",
        "tongdai_lines_busy",
        "tongdai_queue_wait_seconds",
        "tongdai_talk_seconds",
        "tongdai_overflow_target_up",
        "tongdai_registrations",
        "tongdai_auth_failures_total",
        "tongdai_sip_messages_total",
        "tongdai_rtp_dropped_packets_total",
        "tongdai_records_write_failures_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
    // Every datasource is the input variable, never a UID from someone's Grafana.
    let text = repo("config/grafana/tongdai-dashboard.json");
    for (at, _) in text.match_indices("\"uid\": \"") {
        let uid: String = text[at + 8..].chars().take_while(|c| *c != '"').collect();
        assert!(uid == "${DS_PROMETHEUS}" || uid == "tongdai-111", "datasource uid {uid}");
    }

    // Valid PromQL: the queries (Grafana's variables given values) as recording rules.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().filter(|q| !q.starts_with("label_values(")).enumerate() {
        let q = q.replace("$__rate_interval", "5m").replace("$instance", ".*");
        rules.push_str(&format!("      - record: dashboard:query_{i}\n        expr: {q:?}\n"));
    }
    let file = std::env::temp_dir().join(format!("tongdai-dashboard-{}.yml", std::process::id()));
    std::fs::write(&file, rules).unwrap();
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (Debian package `prometheus`) must be installed");
    let _ = std::fs::remove_file(&file);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
