//! Blind transfer from a real softphone (issue 11): baresip 1.0 (Debian `baresip-core`) answers
//! a SIPp trunk caller as op2 and, told over its `ctrl_tcp` module, transfers the call with its
//! own REFER to the directory code `*31`; tongdai calls the SIPp target from `111`, the caller and
//! the target then hear each other (checked with the in-repo RTP tool), and the transfer is
//! counted.

mod support;

use std::time::{Duration, Instant};

use support::daemon::{TestDaemon, test_config_text};
use support::rtp_tool::{RtpTool, first_source, share, talk};
use support::sipp::{free_port, run, run_on, scenario};

const CALLER_HZ: f64 = 440.0;
const BARESIP_HZ: f64 = 1000.0;
const TARGET_HZ: f64 = 1700.0;

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

#[test]
fn baresip_transfers_the_caller_blind_with_its_own_refer() {
    let _serial = support::serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rt = rt.enter();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (target_rtp, target_addr) = rt.block_on(RtpTool::bind());
    let target_port = free_port();
    let dir = support::prompts::short_prompts("transfer-baresip");
    let directory = format!(
        "\n[[directory]]\nname = \"Công an 113\"\nkind = \"police\"\n\
         uri = \"sip:113@127.0.0.1:{target_port}\"\ncode = \"*31\"\n"
    );
    let text = support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"1s\"")
        + &directory;
    let d = TestDaemon::with_config(&text);
    let transferred = d.metric("tongdai_calls_transferred_total");
    let target = {
        let (sip, file, rtp) = (d.sip_udp(), sf("transfer-target.xml"), target_addr.port());
        std::thread::spawn(move || {
            let rtp = rtp.to_string();
            let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-m", "1"];
            run_on(target_port, sip, &args, Duration::from_secs(40))
        })
    };
    let phone_dir = dir.join("baresip");
    std::fs::create_dir_all(&phone_dir).unwrap();
    let control = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let phone = support::baresip::start(&phone_dir, d.sip_udp(), "op2", BARESIP_HZ, Some(control));
    d.wait_logged_in("op2");
    let caller = {
        let (sip, file, rtp) =
            (d.sip_udp(), sf("trunk-caller.xml"), caller_addr.port().to_string());
        std::thread::spawn(move || {
            let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-d", "14000", "-m", "1"];
            run(sip, &args, Duration::from_secs(40))
        })
    };
    // Welcome, menu window, baresip answers: the caller hears baresip's tone.
    let to_caller = first_source(&rt.block_on(caller_rtp.wait_for(10, Duration::from_secs(10))));
    let deadline = Instant::now() + Duration::from_secs(10);
    while share(&caller_rtp.recording(), BARESIP_HZ, 1) < 0.5 {
        assert!(Instant::now() < deadline, "the caller never heard baresip");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The operator transfers: baresip sends REFER with Refer-To the directory code.
    let answer = phone.command("transfer", &format!("sip:*31@{}", d.sip_udp()));
    assert!(answer.contains("true"), "baresip took the transfer command: {answer}");
    assert_eq!(
        d.wait_metric("tongdai_calls_transferred_total", transferred + 1.0),
        transferred + 1.0,
        "{}",
        std::fs::read_to_string(phone_dir.join("baresip.log")).unwrap_or_default()
    );
    // Caller and target hear each other through tongdai.
    caller_rtp.spawn_tone(
        to_caller,
        support::rtp_tool::Tone::new(CALLER_HZ, tongdai::media::g711::Codec::Pcmu, 9),
        25,
    );
    let to_target = first_source(&rt.block_on(target_rtp.wait_for(10, Duration::from_secs(10))));
    let heard =
        talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&target_rtp, to_target, TARGET_HZ)]);
    assert!(share(&heard[0], TARGET_HZ, 2) > 0.5, "the caller hears the target");
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "the target hears the caller");
    let log = std::fs::read_to_string(phone_dir.join("baresip.log")).unwrap_or_default();
    assert!(log.contains("transferring call"), "baresip's own REFER: {log}");
    caller.join().unwrap().assert_ok();
    target.join().unwrap().assert_stopped_ok();
    drop(phone);
    let _ = std::fs::remove_dir_all(dir);
}
