//! Trunk callers with chosen numbers for the SIPp tests: copies of `trunk-caller.xml` whose From,
//! dialled number and extra headers are the test's, and one call run from such a copy.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::sipp::{SippRun, free_port, run, scenario};

/// A copy of `trunk-caller.xml` in `dir`: a call from `from` to `dialled` (Request-URI and To),
/// with `headers` (`Name: value` lines) added to the INVITE. Returns its path.
pub fn caller_scenario(dir: &Path, from: &str, dialled: &str, headers: &[&str]) -> String {
    let text = std::fs::read_to_string(scenario("trunk-caller.xml")).unwrap();
    assert!(text.contains("sip:0901234567@") && text.contains("sip:111@"));
    let content_type = "      Content-Type: application/sdp";
    assert_eq!(text.matches(content_type).count(), 1);
    let extra: String = headers.iter().map(|h| format!("      {h}\n")).collect();
    let text = text
        .replace("sip:0901234567@", &format!("sip:{from}@"))
        .replace("sip:111@", &format!("sip:{dialled}@"))
        .replace(content_type, &format!("{extra}{content_type}"));
    let name = format!("caller-{}-{from}-{dialled}.xml", headers.len());
    let path = dir.join(name.replace('+', "plus"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// One call with scenario `file` to `target`: the caller hangs up `talk_ms` after our 200.
pub fn call(target: SocketAddr, file: &str, talk_ms: u64) -> SippRun {
    let rtp = free_port().to_string();
    run(
        target,
        &["-sf", file, "-key", "rtp_port", &rtp, "-d", &talk_ms.to_string(), "-m", "1"],
        Duration::from_secs(30),
    )
}
