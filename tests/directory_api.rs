//! `GET /api/v1/directory` against a daemon on loopback: the `[[directory]]` entries in
//! configuration order with their kind, province, code and address or number; an empty list when
//! none is configured; a reload changes the answer; and the wallboard, loaded in headless Chromium
//! (Debian `chromium`), lists the same entries with Vietnamese and English labels.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::daemon::{TestDaemon, test_config_text};

const DIRECTORY: &str = "
[[directory]]
name = \"Công an 113\"
number = \"113\"
kind = \"police\"
code = \"*31\"

[[directory]]
name = \"Đầu mối Đồng Nai\"
uri = \"sip:focal@127.0.0.1:5091\"
province = \"Đồng Nai\"
kind = \"focal_point\"
";

fn config(directory: &str) -> String {
    test_config_text()
        .replace("numbers = [\"111\"]\n", "numbers = [\"111\"]\noutbound = \"127.0.0.1:5090\"\n")
        + directory
}

/// The status code and JSON body of `GET path`.
fn get_json(d: &TestDaemon, path: &str) -> (u16, Value) {
    let answer = d.get(path);
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"));
    (status, value)
}

#[test]
fn the_directory_is_listed_in_configuration_order_and_follows_a_reload() {
    let _serial = support::serial();
    let d = TestDaemon::with_config(&config(DIRECTORY));
    let (status, body) = get_json(&d, "/api/v1/directory");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "directory": [
            { "name": "Công an 113", "kind": "police", "province": null, "code": "*31",
              "uri": null, "number": "113" },
            { "name": "Đầu mối Đồng Nai", "kind": "focal_point", "province": "Đồng Nai",
              "code": null, "uri": "sip:focal@127.0.0.1:5091", "number": null },
        ]})
    );

    // A reload (SIGHUP) replaces the directory; the API answers from the configuration in force.
    d.reload(&config(
        "\n[[directory]]\nname = \"Cấp cứu 115\"\nnumber = \"115\"\nkind = \"medical\"\ncode = \"*32\"\n",
    ));
    let (_, body) = get_json(&d, "/api/v1/directory");
    let entries = body["directory"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["name"], "Cấp cứu 115");
    assert_eq!(entries[0]["kind"], "medical");

    d.reload(&config(""));
    assert_eq!(get_json(&d, "/api/v1/directory").1, json!({ "directory": [] }));
}

#[test]
fn the_wallboard_lists_the_directory() {
    let _serial = support::serial();
    let d = TestDaemon::with_config(&config(DIRECTORY));
    let profile = std::env::temp_dir().join(format!("tongdai-chromium-dir-{}", std::process::id()));
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg("--disable-dev-shm-usage")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{}/", d.http()))
        .output()
        .expect("chromium (Debian package `chromium`) must be installed");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("data-directory=\"1\""), "the page never rendered the directory:\n{dom}");
    assert!(dom.contains("Danh bạ chuyển tiếp") && dom.contains("Transfer directory"));
    let police = dom.find("data-entry=\"Công an 113\"").expect("a row for 113");
    let focal = dom.find("data-entry=\"Đầu mối Đồng Nai\"").expect("a row for the focal point");
    assert!(police < focal, "configuration order");
    let row = |at: usize| &dom[at..at + dom[at..].find("</tr>").unwrap()];
    let police = row(police);
    assert!(police.contains("Công an · Police") && police.contains("*31"), "{police}");
    assert!(police.contains("113 (trunk)"), "{police}");
    let focal = row(focal);
    assert!(focal.contains("Đồng Nai") && focal.contains("sip:focal@127.0.0.1:5091"), "{focal}");
    assert!(focal.contains("Đầu mối tỉnh · Focal point"), "{focal}");
}
