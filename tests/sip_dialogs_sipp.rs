//! Dialog features against a real peer: SIPp plays a trunk with a late offer (offer in our 200,
//! answer in its ACK, or no answer: then we hang up), and a call that gets 422 for a short
//! session interval, then holds, refreshes, resumes, UPDATEs and sends DTMF by INFO.

mod support;

use std::time::Duration;

use support::daemon::TestDaemon;
use support::rtp_tool::RtpTool;
use support::sipp::{run, scenario};

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

#[test]
fn late_offer_call_gets_our_offer_in_the_200_and_its_answer_from_the_ack_sets_the_media() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let target = d.sip_udp();
    let file = sf("dialog-late-offer.xml");
    let port = caller_addr.port().to_string();
    let sipp = std::thread::spawn(move || {
        let args = ["-sf", &file, "-key", "rtp_port", &port, "-d", "2000", "-m", "1"];
        run(target, &args, Duration::from_secs(15))
    });
    let heard = rt.block_on(caller_rtp.wait_for(10, Duration::from_secs(10)));
    let r = sipp.join().unwrap();
    r.assert_ok();
    // No BYE of ours: the answer in the ACK was taken ...
    assert!(!r.messages.contains("BYE sip:trunk"), "{}", r.messages);
    // ... and the welcome prompt went to the answer's address in the answer's codec (PCMA, where
    // our offer listed PCMU first).
    assert!(heard.packet_count() >= 10, "the caller heard {} packets", heard.packet_count());
    assert!(heard.packets.iter().all(|p| p.payload_type == 8), "all PCMA");
}

#[test]
fn late_offer_call_whose_ack_has_no_answer_is_hung_up_by_us() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    run(
        d.sip_udp(),
        &["-sf", &sf("dialog-late-offer-no-answer.xml"), "-m", "1"],
        Duration::from_secs(15),
    )
    .assert_ok();
}

#[test]
fn hold_refresh_resume_update_and_info_keep_the_call_and_our_sdp_version_moves_only_on_change() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let r = run(
        d.sip_udp(),
        &["-sf", &sf("dialog-reinvite.xml"), "-key", "rtp_port", "9", "-d", "300", "-m", "1"],
        Duration::from_secs(20),
    );
    r.assert_ok();
    // Our o= versions in order (retransmissions collapsed): answer, hold, hold again, resume.
    let mut versions: Vec<u64> = r
        .messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("o=tongdai "))
        .filter_map(|o| o.split_whitespace().nth(1)?.parse().ok())
        .collect();
    versions.dedup();
    assert_eq!(versions.len(), 3, "answer, hold (kept on refresh), resume: {versions:?}");
    assert_eq!(versions[1], versions[0] + 1);
    assert_eq!(versions[2], versions[1] + 1);
}
