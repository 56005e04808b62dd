//! The switchboard's side of dialogs, sans-IO: the endpoint and the switchboard around a fake
//! media, fed literal SIP on virtual time. A late offer opens the caller's media for our offer and
//! applies the answer from the ACK (or hangs up when it cannot be used); re-INVITEs and UPDATEs on
//! the trunk leg are answered with our description, hold mirrored, `o=` version moving only when
//! the description changes.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// The trunk's address.
const TRUNK: &str = "127.0.0.1:5070";

const PCMA_ANSWER: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                           t=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                           a=rtpmap:101 telephone-event/8000\r\n";

fn offer(version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=trunk 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

fn req(method: &str, seq: u32, branch: &str, to_tag: Option<&str>, body: &str) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    format!(
        "{method} sip:111@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0901234567@127.0.0.1:5070>;tag=trunk1\r\n\
         To: <sip:111@127.0.0.1:5060>{to_tag}\r\n\
         Call-ID: sb-1@trunk\r\n\
         CSeq: {seq} {cseq_method}\r\n\
         Contact: <sip:trunk@127.0.0.1:5070>\r\n\
         Max-Forwards: 70\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl Rig {
    fn new() -> Rig {
        Rig::build(&[], "", FakeMedia::default(), &[])
    }

    fn send(&mut self, text: String) {
        self.receive(TRUNK.parse().unwrap(), &text);
    }

    /// The requests we sent since the last look.
    fn sent_requests(&mut self) -> Vec<Request> {
        self.requests().into_iter().map(|(_, r)| r).collect()
    }

    /// An answered trunk call (early offer); returns our To tag.
    fn call(&mut self) -> String {
        self.send(req("INVITE", 1, "inv", None, &offer(1, "sendrecv")));
        let ok = self.final_response(200);
        let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
        self.send(req("ACK", 1, "ack", Some(&tag), ""));
        tag
    }
}

fn sdp_of(r: &Response) -> SessionDescription {
    SessionDescription::parse(std::str::from_utf8(&r.body).unwrap()).unwrap()
}

#[test]
fn late_offer_opens_media_for_our_offer_and_applies_the_answer_from_the_ack() {
    let mut rig = Rig::new();
    rig.send(req("INVITE", 1, "inv", None, ""));
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
    rig.send(req("ACK", 1, "ack", Some(&tag), PCMA_ANSWER));
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
    rig.send(req("INVITE", 1, "inv", None, ""));
    let ok = rig.final_response(200);
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    let g729 = PCMA_ANSWER.replace("RTP/AVP 8 101", "RTP/AVP 18").replace("PCMA", "G729");
    rig.send(req("ACK", 1, "ack", Some(&tag), &g729));
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
    rig.send(req("INVITE", 1, "inv", None, &offer(1, "sendrecv")));
    let first = rig.final_response(200);
    let v0 = sdp_of(&first).origin.session_version;
    let tag = first.headers.to().unwrap().tag().unwrap().to_string();
    rig.send(req("ACK", 1, "ack", Some(&tag), ""));
    // Hold: sendonly → recvonly, new version.
    rig.send(req("INVITE", 2, "hold", Some(&tag), &offer(2, "sendonly")));
    let held = sdp_of(&rig.final_response(200));
    assert_eq!(held.direction_for(held.audio().unwrap()), Direction::RecvOnly);
    assert_eq!(held.origin.session_version, v0 + 1);
    assert_eq!(held.audio().unwrap().port, 20_000, "same port");
    rig.send(req("ACK", 2, "ack2", Some(&tag), ""));
    // The same hold again (a refresh): same description, same version.
    rig.send(req("INVITE", 3, "hold2", Some(&tag), &offer(2, "sendonly")));
    let again = rig.final_response(200);
    assert_eq!(sdp_of(&again).origin.session_version, v0 + 1);
    rig.send(req("ACK", 3, "ack3", Some(&tag), ""));
    // RFC 2543 hold (c=0.0.0.0) by UPDATE: recvonly as well.
    let old_hold = offer(3, "sendrecv").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    rig.send(req("UPDATE", 4, "upd", Some(&tag), &old_hold));
    let upd = sdp_of(&rig.final_response(200));
    assert_eq!(upd.direction_for(upd.audio().unwrap()), Direction::RecvOnly);
    assert_eq!(upd.origin.session_version, v0 + 1);
    // inactive → inactive.
    rig.send(req("INVITE", 5, "inact", Some(&tag), &offer(4, "inactive")));
    let inactive = sdp_of(&rig.final_response(200));
    assert_eq!(inactive.direction_for(inactive.audio().unwrap()), Direction::Inactive);
    assert_eq!(inactive.origin.session_version, v0 + 2);
    rig.send(req("ACK", 5, "ack5", Some(&tag), ""));
    // A re-INVITE without offer gets our current description as the offer, version unchanged.
    rig.send(req("INVITE", 6, "nooffer", Some(&tag), ""));
    let ours = sdp_of(&rig.final_response(200));
    assert_eq!(ours.origin.session_version, v0 + 2);
    rig.send(req("ACK", 6, "ack6", Some(&tag), &offer(5, "inactive")));
    // Resume.
    rig.send(req("INVITE", 7, "resume", Some(&tag), &offer(6, "sendrecv")));
    let resumed = sdp_of(&rig.final_response(200));
    assert_eq!(resumed.direction_for(resumed.audio().unwrap()), Direction::SendRecv);
    assert_eq!(resumed.origin.session_version, v0 + 3);
    rig.send(req("ACK", 7, "ack7", Some(&tag), ""));
    // The call went on throughout; the media was never touched after the start.
    assert!(rig.sent_requests().is_empty(), "no BYE");
    assert_eq!(rig.sb.calls(), 1);
    assert!(!rig.media.log.contains(&Media::Close));
    assert!(!rig.media.log.iter().any(|m| matches!(m, Media::CallerAnswered(..))));
}

#[test]
fn reoffer_without_our_codec_gets_488_and_the_call_goes_on() {
    let mut rig = Rig::new();
    let tag = rig.call();
    let g729 = offer(2, "sendrecv")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "a=rtpmap:18 G729/8000\r\n");
    rig.send(req("INVITE", 2, "g729", Some(&tag), &g729));
    rig.final_response(488);
    rig.send(req("ACK", 2, "g729", Some(&tag), ""));
    assert_eq!(rig.sb.calls(), 1);
    // The next re-INVITE is answered normally.
    rig.send(req("INVITE", 3, "again", Some(&tag), &offer(3, "sendrecv")));
    rig.final_response(200);
}

#[test]
fn other_in_dialog_requests_are_refused_without_ending_the_call() {
    let mut rig = Rig::new();
    let tag = rig.call();
    rig.send(req("NOTIFY", 2, "notify", Some(&tag), ""));
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
    let tag = rig.call();
    rig.sb.reload(rig.now, &config, &mut rig.ep, &mut rig.media);
    let engine = rig.sb.engine().config();
    assert_eq!(engine.wrap_up, Duration::from_secs(5));
    assert_eq!(engine.max_queue, 4);
    assert_eq!(engine.strategy, tongdai::acd::Strategy::Linear);
    // The call in progress goes on.
    assert_eq!(rig.sb.calls(), 1);
    assert!(rig.sent_requests().is_empty(), "no BYE");
    rig.send(req("INVITE", 2, "after", Some(&tag), &offer(2, "sendrecv")));
    rig.final_response(200);
}
