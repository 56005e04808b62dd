//! The switchboard's side of media events, sans-IO on virtual time: the urgent-lane menu (an
//! RFC 4733 `1` from the caller's media queues the caller in the urgent lane at once; no key
//! queues it in the normal lane when `menu_timeout` runs out after the menu prompt), a dead caller
//! leg ending the call with BYE, and re-INVITEs re-pointing the caller's media and putting its
//! dead-leg timer to sleep on hold.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use support::rig::{trunk_offer as offer, trunk_offer_at as offer_at, trunk_request as req};
use tongdai::acd::b2bua::{MediaControl, MediaEvent, MediaLeg};
use tongdai::acd::{AgentId, AgentState, CallId, Lane};
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::message::Uri;
use tongdai::sip::message::{Method, Request, Response};
use tongdai::sip::registrar::Binding;
use tongdai::sip::transport::{Flow, Transport};

/// What the switchboard asked of the media that these tests look at.
#[derive(Debug, Clone, PartialEq)]
enum Media {
    Update(MediaLeg, Option<SocketAddr>, bool),
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
    fn open_caller(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) -> Option<u16> {
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn play(&mut self, _: CallId, _: Playlist) {
        self.log.push(Media::Other);
    }
    fn bridge(&mut self, _: CallId) {}
    fn drop_agent(&mut self, _: CallId) {}
    fn close(&mut self, _: CallId) {
        self.log.push(Media::Close);
    }
    fn update_leg(&mut self, _: CallId, leg: MediaLeg, remote: Option<SocketAddr>, hold: bool) {
        self.log.push(Media::Update(leg, remote, hold));
    }
}

/// The test's rig: the shared one around the recording media, with a 0.2 s urgent-lane menu
/// prompt and a 3 s menu window.
type Rig = support::rig::Rig<FakeMedia>;

impl Rig {
    fn new() -> Rig {
        let menu = [("menu_timeout = \"4s\"", "menu_timeout = \"3s\"")];
        Rig::build(&menu, "", FakeMedia::default(), &[("urgent-menu", 1600)])
    }

    /// The requests we sent since the last look.
    fn sent_requests(&mut self) -> Vec<Request> {
        self.requests().into_iter().map(|(_, r)| r).collect()
    }
}

impl Rig {
    fn event(&mut self, event: MediaEvent) {
        self.sb.media_event(self.now, event, &mut self.ep, &mut self.media);
        self.pump();
    }

    fn lanes(&self) -> Vec<Lane> {
        self.sb.engine().queued().map(|(_, lane, _)| lane).collect()
    }
}

#[test]
fn a_one_during_the_menu_queues_urgent_at_once_and_no_key_queues_normal_after_the_timeout() {
    let mut rig = Rig::new();
    rig.call_trunk();
    // Welcome (0.1 s) and menu (0.2 s) play; the key comes during the menu.
    rig.advance(Duration::from_millis(250));
    assert!(rig.lanes().is_empty(), "still in the menu");
    rig.event(MediaEvent::Dtmf { call: CallId(1), digit: '5' });
    assert!(rig.lanes().is_empty(), "only 1 chooses");
    rig.event(MediaEvent::Dtmf { call: CallId(1), digit: '1' });
    assert_eq!(rig.lanes(), vec![Lane::Urgent]);
    // Its menu window has nothing left to do.
    rig.advance(Duration::from_secs(10));
    assert_eq!(rig.lanes(), vec![Lane::Urgent]);

    let mut rig = Rig::new();
    rig.call_trunk();
    rig.advance(Duration::from_millis(300 + 2_900));
    assert!(rig.lanes().is_empty(), "the window is menu_timeout after the menu prompt");
    rig.advance(Duration::from_millis(200));
    assert_eq!(rig.lanes(), vec![Lane::Normal]);
    // A 1 pressed later still moves the waiting caller to the urgent lane.
    rig.event(MediaEvent::Dtmf { call: CallId(1), digit: '1' });
    assert_eq!(rig.lanes(), vec![Lane::Urgent]);
}

#[test]
fn a_dead_caller_leg_is_hung_up_and_the_media_closed() {
    let mut rig = Rig::new();
    rig.call_trunk();
    rig.advance(Duration::from_secs(5));
    rig.sent_requests();
    rig.event(MediaEvent::LegDead { call: CallId(1), leg: MediaLeg::Caller });
    let byes: Vec<Request> =
        rig.sent_requests().into_iter().filter(|r| r.method == Method::Bye).collect();
    assert_eq!(byes.len(), 1);
    assert!(rig.media.log.contains(&Media::Close));
    assert_eq!(rig.sb.calls(), 0);
    // A late event for the ended call changes nothing.
    rig.event(MediaEvent::LegDead { call: CallId(1), leg: MediaLeg::Agent });
    assert!(rig.sent_requests().is_empty());
}

#[test]
fn hold_and_resume_reach_the_media_with_the_new_address() {
    let mut rig = Rig::new();
    let tag = rig.call_trunk();
    rig.media.log.clear();
    rig.send_trunk(req("INVITE", 2, "hold", Some(&tag), &offer(2, "sendonly")));
    rig.final_response(200);
    let at = |port: u16| Some(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(rig.media.log, vec![Media::Update(MediaLeg::Caller, at(40000), true)]);
    rig.send_trunk(req("ACK", 2, "hold-ack", Some(&tag), ""));
    rig.media.log.clear();
    rig.send_trunk(req("INVITE", 3, "resume", Some(&tag), &offer_at(3, "sendrecv", 40100)));
    rig.final_response(200);
    assert_eq!(rig.media.log, vec![Media::Update(MediaLeg::Caller, at(40100), false)]);
    rig.send_trunk(req("ACK", 3, "resume-ack", Some(&tag), ""));
    rig.media.log.clear();
    // A refused re-offer leaves the media as it was.
    let pcm16 = offer_at(4, "sendrecv", 40200).replace("0 8 101", "11").replace("PCMU", "L16");
    rig.send_trunk(req("INVITE", 4, "bad", Some(&tag), &pcm16));
    rig.final_response(488);
    assert!(!rig.media.log.iter().any(|m| matches!(m, Media::Update(..))));
}

fn agent_flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5080".parse().unwrap(),
    }
}

const AGENT_ANSWER: &str = "v=0\r\no=op1 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                            t=0 0\r\nm=audio 42000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                            a=rtpmap:101 telephone-event/8000\r\n";

#[test]
fn a_dead_agent_leg_is_hung_up_and_the_caller_goes_back_to_the_front_of_the_queue() {
    let mut rig = Rig::new();
    let binding = Binding {
        agent: "op1".into(),
        user: "op1".into(),
        contact: Uri::parse("sip:op1@127.0.0.1:5080").unwrap(),
        flow: agent_flow(),
        expires_at: rig.now + Duration::from_secs(3600),
        registered_at: rig.now,
        instance: None,
        reg_id: None,
        q: None,
        call_id: "reg-1@op1".into(),
        cseq: 1,
    };
    let now = rig.now;
    rig.sb.restore_bindings(now, vec![binding], &mut rig.ep, &mut rig.media);
    rig.pump();
    rig.call_trunk();
    // The menu runs out; the caller is queued and op1 rung.
    rig.advance(Duration::from_secs(4));
    let invite =
        rig.sent_requests().into_iter().find(|r| r.method == Method::Invite).expect("op1 is rung");
    let mut ok = Response::for_request(&invite, 200, Some("op1tag"));
    ok.headers.push("Contact", "<sip:op1@127.0.0.1:5080>");
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from_static(AGENT_ANSWER.as_bytes());
    rig.ep.handle_datagram(rig.now, agent_flow(), ok.to_bytes());
    rig.pump();
    let op1 = AgentId::new("op1");
    assert_eq!(rig.sb.engine().agent_state(&op1), Some(AgentState::OnCall { call: CallId(1) }));
    assert!(rig.lanes().is_empty());
    rig.sent_requests();

    rig.event(MediaEvent::LegDead { call: CallId(1), leg: MediaLeg::Agent });
    let byes: Vec<Request> =
        rig.sent_requests().into_iter().filter(|r| r.method == Method::Bye).collect();
    assert_eq!(byes.len(), 1, "only the agent leg is hung up");
    assert_eq!(byes[0].headers.call_id().ok(), invite.headers.call_id().ok());
    assert_eq!(rig.lanes(), vec![Lane::Normal], "the caller waits again");
    assert_eq!(rig.sb.calls(), 1);
    assert_ne!(rig.sb.engine().agent_state(&op1), Some(AgentState::OnCall { call: CallId(1) }));
}
