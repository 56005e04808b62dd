//! The switchboard's side of dialogs, sans-IO: the endpoint and the switchboard around a fake
//! media, fed literal SIP on virtual time. A late offer opens the caller's media for our offer and
//! applies the answer from the ACK (or hangs up when it cannot be used); re-INVITEs and UPDATEs on
//! the trunk leg are answered with our description, hold mirrored, `o=` version moving only when
//! the description changes.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::rig::{trunk_offer as offer, trunk_request as req};
use tongdai::acd::CallId;
use tongdai::acd::b2bua::MediaControl;
use tongdai::config::{Config, DEFAULT_TOML, Source};
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::message::{Request, Response};
use tongdai::sip::sdp::{Direction, SessionDescription};

/// What the switchboard asked of the media, in order.
#[derive(Debug, Clone, PartialEq)]
enum Media {
    OpenCaller(Option<SocketAddr>, LegFormat),
    CallerAnswered(Option<SocketAddr>, LegFormat),
    Play,
    Close,
    Other,
}

#[derive(Default)]
struct FakeMedia {
    log: Vec<Media>,
}

impl MediaControl for FakeMedia {
    fn address(&self) -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }
    fn open_caller(&mut self, _: CallId, remote: Option<SocketAddr>, f: LegFormat) -> Option<u16> {
        self.log.push(Media::OpenCaller(remote, f));
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        self.log.push(Media::Other);
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.log.push(Media::Other);
    }
    fn caller_answered(&mut self, _: CallId, remote: Option<SocketAddr>, f: LegFormat) {
        self.log.push(Media::CallerAnswered(remote, f));
    }
    fn play(&mut self, _: CallId, _: Playlist) {
        self.log.push(Media::Play);
    }
    fn bridge(&mut self, _: CallId) {
        self.log.push(Media::Other);
    }
    fn drop_agent(&mut self, _: CallId) {
        self.log.push(Media::Other);
    }
    fn close(&mut self, _: CallId) {
        self.log.push(Media::Close);
    }
}

/// The test's rig: the shared one around the recording media.
type Rig = support::rig::Rig<FakeMedia>;

const PCMA_ANSWER: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                           t=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                           a=rtpmap:101 telephone-event/8000\r\n";

impl Rig {
    fn new() -> Rig {
        Rig::build(&[], "", FakeMedia::default(), &[])
    }

    /// The requests we sent since the last look.
    fn sent_requests(&mut self) -> Vec<Request> {
        self.requests().into_iter().map(|(_, r)| r).collect()
    }
}

fn sdp_of(r: &Response) -> SessionDescription {
    SessionDescription::parse(std::str::from_utf8(&r.body).unwrap()).unwrap()
}

#[test]
fn late_offer_opens_media_for_our_offer_and_applies_the_answer_from_the_ack() {
    let mut rig = Rig::new();
    rig.send_trunk(req("INVITE", 1, "inv", None, ""));
    let ok = rig.final_response(200);
    let ours = sdp_of(&ok);
    let audio = ours.audio().unwrap();
    assert_eq!(audio.port, 20_000);
    assert_eq!(audio.formats, ["0", "8", "101"], "our offer: PCMU, PCMA, telephone-event");
    assert_eq!(ours.direction_for(audio), Direction::SendRecv);
    assert!(
        matches!(rig.media.log.as_slice(), [Media::OpenCaller(None, _)]),
        "{:?}",
        rig.media.log
    );
    assert_eq!(rig.sb.calls(), 1);
    // Nothing is played before the caller's address is known.
    rig.advance(Duration::from_millis(300));
    assert!(!rig.media.log.contains(&Media::Play));
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    rig.send_trunk(req("ACK", 1, "ack", Some(&tag), PCMA_ANSWER));
    let remote: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    match &rig.media.log[1..] {
        [Media::CallerAnswered(Some(r), f), Media::Play, ..] => {
            assert_eq!(*r, remote);
            assert_eq!((f.payload_type, f.telephone_event), (8, Some(101)));
        }
        other => panic!("{other:?}"),
    }
    assert!(rig.sent_requests().is_empty(), "no BYE");
    assert_eq!(rig.sb.calls(), 1);
}

#[test]
fn late_offer_with_an_unusable_answer_is_hung_up() {
    let mut rig = Rig::new();
    rig.send_trunk(req("INVITE", 1, "inv", None, ""));
    let ok = rig.final_response(200);
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    let g729 = PCMA_ANSWER.replace("RTP/AVP 8 101", "RTP/AVP 18").replace("PCMA", "G729");
    rig.send_trunk(req("ACK", 1, "ack", Some(&tag), &g729));
    let byes = rig.sent_requests();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].method.as_str(), "BYE");
    assert!(!rig.media.log.contains(&Media::Play));
    rig.advance(Duration::from_secs(1));
    assert!(rig.media.log.contains(&Media::Close));
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn trunk_hold_is_mirrored_and_our_version_moves_only_when_our_description_changes() {
    let mut rig = Rig::new();
    rig.send_trunk(req("INVITE", 1, "inv", None, &offer(1, "sendrecv")));
    let first = rig.final_response(200);
    let v0 = sdp_of(&first).origin.session_version;
    let tag = first.headers.to().unwrap().tag().unwrap().to_string();
    rig.send_trunk(req("ACK", 1, "ack", Some(&tag), ""));
    // Hold: sendonly → recvonly, new version.
    rig.send_trunk(req("INVITE", 2, "hold", Some(&tag), &offer(2, "sendonly")));
    let held = sdp_of(&rig.final_response(200));
    assert_eq!(held.direction_for(held.audio().unwrap()), Direction::RecvOnly);
    assert_eq!(held.origin.session_version, v0 + 1);
    assert_eq!(held.audio().unwrap().port, 20_000, "same port");
    rig.send_trunk(req("ACK", 2, "ack2", Some(&tag), ""));
    // The same hold again (a refresh): same description, same version.
    rig.send_trunk(req("INVITE", 3, "hold2", Some(&tag), &offer(2, "sendonly")));
    let again = rig.final_response(200);
    assert_eq!(sdp_of(&again).origin.session_version, v0 + 1);
    rig.send_trunk(req("ACK", 3, "ack3", Some(&tag), ""));
    // RFC 2543 hold (c=0.0.0.0) by UPDATE: recvonly as well.
    let old_hold = offer(3, "sendrecv").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    rig.send_trunk(req("UPDATE", 4, "upd", Some(&tag), &old_hold));
    let upd = sdp_of(&rig.final_response(200));
    assert_eq!(upd.direction_for(upd.audio().unwrap()), Direction::RecvOnly);
    assert_eq!(upd.origin.session_version, v0 + 1);
    // inactive → inactive.
    rig.send_trunk(req("INVITE", 5, "inact", Some(&tag), &offer(4, "inactive")));
    let inactive = sdp_of(&rig.final_response(200));
    assert_eq!(inactive.direction_for(inactive.audio().unwrap()), Direction::Inactive);
    assert_eq!(inactive.origin.session_version, v0 + 2);
    rig.send_trunk(req("ACK", 5, "ack5", Some(&tag), ""));
    // A re-INVITE without offer gets our current description as the offer, version unchanged.
    rig.send_trunk(req("INVITE", 6, "nooffer", Some(&tag), ""));
    let ours = sdp_of(&rig.final_response(200));
    assert_eq!(ours.origin.session_version, v0 + 2);
    rig.send_trunk(req("ACK", 6, "ack6", Some(&tag), &offer(5, "inactive")));
    // Resume.
    rig.send_trunk(req("INVITE", 7, "resume", Some(&tag), &offer(6, "sendrecv")));
    let resumed = sdp_of(&rig.final_response(200));
    assert_eq!(resumed.direction_for(resumed.audio().unwrap()), Direction::SendRecv);
    assert_eq!(resumed.origin.session_version, v0 + 3);
    rig.send_trunk(req("ACK", 7, "ack7", Some(&tag), ""));
    // The call went on throughout; the media was never touched after the start.
    assert!(rig.sent_requests().is_empty(), "no BYE");
    assert_eq!(rig.sb.calls(), 1);
    assert!(!rig.media.log.contains(&Media::Close));
    assert!(!rig.media.log.iter().any(|m| matches!(m, Media::CallerAnswered(..))));
}

#[test]
fn reoffer_without_our_codec_gets_488_and_the_call_goes_on() {
    let mut rig = Rig::new();
    let tag = rig.call_trunk();
    let g729 = offer(2, "sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "a=rtpmap:18 G729/8000\r\n");
    rig.send_trunk(req("INVITE", 2, "g729", Some(&tag), &g729));
    rig.final_response(488);
    rig.send_trunk(req("ACK", 2, "g729", Some(&tag), ""));
    assert_eq!(rig.sb.calls(), 1);
    // The next re-INVITE is answered normally.
    rig.send_trunk(req("INVITE", 3, "again", Some(&tag), &offer(3, "sendrecv")));
    rig.final_response(200);
}

#[test]
fn other_in_dialog_requests_are_refused_without_ending_the_call() {
    let mut rig = Rig::new();
    let tag = rig.call_trunk();
    rig.send_trunk(req("NOTIFY", 2, "notify", Some(&tag), ""));
    rig.final_response(501);
    assert_eq!(rig.sb.calls(), 1);
}

#[test]
fn a_reload_brings_the_new_queue_section_to_the_engine() {
    let mut rig = Rig::new();
    assert_eq!(rig.sb.engine().config().wrap_up, Duration::from_secs(30));
    let text = DEFAULT_TOML
        .replace("strategy = \"longest-idle\"", "strategy = \"linear\"")
        .replace("wrap_up = \"30s\"", "wrap_up = \"5s\"")
        .replace("max_queue = 20", "max_queue = 4");
    let (config, _) = Config::from_source(&Source::new("t.toml", text), "config".as_ref()).unwrap();
    let tag = rig.call_trunk();
    rig.sb.reload(rig.now, &config, &mut rig.ep, &mut rig.media);
    let engine = rig.sb.engine().config();
    assert_eq!(engine.wrap_up, Duration::from_secs(5));
    assert_eq!(engine.max_queue, 4);
    assert_eq!(engine.strategy, tongdai::acd::Strategy::Linear);
    // The call in progress goes on.
    assert_eq!(rig.sb.calls(), 1);
    assert!(rig.sent_requests().is_empty(), "no BYE");
    rig.send_trunk(req("INVITE", 2, "after", Some(&tag), &offer(2, "sendrecv")));
    rig.final_response(200);
}
