//! A call's media task mixing three legs, over loopback: caller, agent and a third leg (a transfer
//! target, a supervisor) are three RTP tools, each sending its own tone, and what each hears is
//! judged by Goertzel: in a conference each hears the other two and never itself; in listen nobody
//! hears the supervisor; in whisper the agent hears the supervisor and the caller does not; and a
//! listen turned into a barge lets the caller hear the supervisor from then on.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::rtp_tool::{Recording, RtpTool, Tone};
use tongdai::acd::CallId;
use tongdai::acd::b2bua::MediaControl;
use tongdai::config::Config;
use tongdai::media::g711::Codec;
use tongdai::media::mix::MixMode;
use tongdai::media::relay::LegFormat;
use tongdai::runtime::media::RuntimeMedia;

/// Each leg's tone: a whole number of periods in a 20 ms frame, far apart in frequency.
const CALLER_HZ: f64 = 400.0;
const AGENT_HZ: f64 = 1000.0;
const THIRD_HZ: f64 = 1600.0;

/// Tone packets each leg sends per phase (1 s).
const PACKETS: u32 = 50;

/// A tone's share of a recording's energy above which it was heard; below `FAINT`, not heard.
const HEARD: f64 = 0.25;
const FAINT: f64 = 0.02;

/// One mixed call at a time: the tests are real-time media on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Call {
    media: RuntimeMedia,
    id: CallId,
    /// (tool, the daemon's port for its leg, its tone) for caller, agent and third leg.
    legs: [(RtpTool, SocketAddr, Tone); 3],
}

impl Call {
    /// A call with the caller on A-law, agent and third leg on µ-law, bridged, then mixed.
    async fn mixed(mode: MixMode) -> Call {
        let config = Config::builtin().unwrap();
        let mut media = RuntimeMedia::new(&config);
        let id = CallId(1);
        let ip = media.address();
        let (caller, caller_addr) = RtpTool::bind().await;
        let (agent, agent_addr) = RtpTool::bind().await;
        let (third, third_addr) = RtpTool::bind().await;
        let a_law = LegFormat::static_codec(Codec::Pcma, Some(101));
        let mu_law = LegFormat::static_codec(Codec::Pcmu, Some(101));
        let caller_port = media.open_caller(id, Some(caller_addr), a_law).unwrap();
        let agent_port = media.open_agent(id).unwrap();
        media.agent_answered(id, Some(agent_addr), mu_law);
        media.bridge(id);
        let third_port = media.open_third(id).unwrap();
        media.third_answered(id, Some(third_addr), mu_law);
        media.set_mix(id, mode);
        let legs = [
            (caller, SocketAddr::new(ip, caller_port), Tone::new(CALLER_HZ, Codec::Pcma, 1)),
            (agent, SocketAddr::new(ip, agent_port), Tone::new(AGENT_HZ, Codec::Pcmu, 2)),
            (third, SocketAddr::new(ip, third_port), Tone::new(THIRD_HZ, Codec::Pcmu, 3)),
        ];
        Call { media, id, legs }
    }

    /// Every leg talks for one second at once; returns how many samples each had heard before.
    async fn talk(&self) -> [usize; 3] {
        let before = self.legs.each_ref().map(|(tool, _, _)| tool.recording().samples.len());
        let talking: Vec<_> =
            self.legs.iter().map(|(tool, to, tone)| tool.spawn_tone(*to, *tone, PACKETS)).collect();
        for t in talking {
            t.await.unwrap();
        }
        // The last frames through the mixer's queue.
        tokio::time::sleep(Duration::from_millis(200)).await;
        before
    }

    /// What each leg heard since sample `from[i]`.
    fn heard_since(&self, from: [usize; 3]) -> [Recording; 3] {
        let mut i = 0;
        self.legs.each_ref().map(|(tool, _, _)| {
            let r = tool.recording();
            let part = r.window(from[i], r.samples.len());
            i += 1;
            part
        })
    }
}

/// Asserts which of the three tones `who` heard in `r`.
fn assert_heard(who: &str, r: &Recording, expected: [bool; 3]) {
    assert!(r.samples.len() >= 160 * 40, "{who} heard {} samples", r.samples.len());
    for (hz, heard) in [CALLER_HZ, AGENT_HZ, THIRD_HZ].into_iter().zip(expected) {
        let ratio = r.tone_ratio(hz);
        if heard {
            assert!(ratio > HEARD, "{who} should hear {hz} Hz: share {ratio:.3}");
        } else {
            assert!(ratio < FAINT, "{who} should not hear {hz} Hz: share {ratio:.3}");
        }
    }
}

#[tokio::test]
async fn conference_each_leg_hears_the_other_two_never_itself() {
    let _serial = SERIAL.lock().await;
    let call = Call::mixed(MixMode::Conference).await;
    let from = call.talk().await;
    let [caller, agent, third] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, true]);
    assert_heard("agent", &agent, [true, false, true]);
    assert_heard("third leg", &third, [true, true, false]);
    // The caller negotiated A-law and hears A-law; the others µ-law.
    assert!(caller.packets.iter().all(|p| p.payload_type == 8));
    assert!(agent.packets.iter().chain(&third.packets).all(|p| p.payload_type == 0));
}

#[tokio::test]
async fn listen_nobody_hears_the_supervisor() {
    let _serial = SERIAL.lock().await;
    let call = Call::mixed(MixMode::Listen).await;
    let from = call.talk().await;
    let [caller, agent, supervisor] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, false]);
    assert_heard("agent", &agent, [true, false, false]);
    assert_heard("supervisor", &supervisor, [true, true, false]);
}

#[tokio::test]
async fn whisper_the_agent_hears_the_supervisor_and_the_caller_does_not() {
    let _serial = SERIAL.lock().await;
    let call = Call::mixed(MixMode::Whisper).await;
    let from = call.talk().await;
    let [caller, agent, supervisor] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, false]);
    assert_heard("agent", &agent, [true, false, true]);
    assert_heard("supervisor", &supervisor, [true, true, false]);
}

#[tokio::test]
async fn a_listen_turned_barge_lets_the_caller_hear_the_supervisor() {
    let _serial = SERIAL.lock().await;
    let mut call = Call::mixed(MixMode::Listen).await;
    let from = call.talk().await;
    let [caller, ..] = call.heard_since(from);
    assert_heard("caller listened to", &caller, [false, true, false]);
    call.media.set_mix(call.id, MixMode::Conference);
    let from = call.talk().await;
    let [caller, ..] = call.heard_since(from);
    assert_heard("caller barged in on", &caller, [false, true, true]);
    // The caller's stream stayed one stream across the change.
    assert_eq!(caller.ssrcs().len(), 1);
}

#[tokio::test]
async fn dropping_the_third_leg_bridges_caller_and_agent_again() {
    let _serial = SERIAL.lock().await;
    let mut call = Call::mixed(MixMode::Conference).await;
    call.media.drop_third(call.id);
    // Whatever the mixer sent the third leg before the drop has arrived by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = call.legs.each_ref().map(|(tool, _, _)| tool.recording().packets.len());
    let from = call.talk().await;
    let [caller, agent, third] = call.heard_since(from);
    // Relayed packet by packet now: each hears only the other's tone.
    assert_heard("caller", &caller, [false, true, false]);
    assert_heard("agent", &agent, [true, false, false]);
    assert_eq!(third.packets.len(), before[2], "the third leg hears nothing more");
}
