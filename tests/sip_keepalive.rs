//! The registration side of the switchboard on virtual time, with literal SIP: OPTIONS keep-alives
//! (sent on the binding's flow whatever private address the Contact names, any answer means alive,
//! N misses log the agent out), the ban on password guessing (and its expiry, the allow-listed
//! LAN, the first 401 not counted, unknown user and wrong password alike), and scanners dropped
//! unanswered.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tongdai::acd::AgentId;
use tongdai::acd::AgentState;
use tongdai::acd::CallId;
use tongdai::acd::b2bua::{MediaControl, PROMPT_HOLD, PROMPT_WELCOME, Report, Switchboard};
use tongdai::config::{Config, DEFAULT_TOML, Source};
use tongdai::media::pacing::Playlist;
use tongdai::media::prompt::{Prompt, PromptSet};
use tongdai::media::relay::LegFormat;
use tongdai::runtime::driver::endpoint_config;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::endpoint::Endpoint;
use tongdai::sip::message::{Message, Method, Request, Response, parse_datagram};
use tongdai::sip::registrar::{LogoutReason, Presence};
use tongdai::sip::transport::{Flow, Transport};

#[derive(Default)]
struct NoMedia;

impl MediaControl for NoMedia {
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
    fn play(&mut self, _: CallId, _: Playlist) {}
    fn bridge(&mut self, _: CallId) {}
    fn drop_agent(&mut self, _: CallId) {}
    fn close(&mut self, _: CallId) {}
}

const LOCAL: &str = "127.0.0.1:5060";

struct Rig {
    ep: Endpoint,
    sb: Switchboard,
    media: NoMedia,
    now: Instant,
    /// Everything sent, with the flow it went on.
    sent: Vec<(Flow, Message)>,
    reports: Vec<Report>,
    cseq: u32,
}

impl Rig {
    /// The default configuration with `edits` (from, to) applied.
    fn new(edits: &[(&str, &str)]) -> Rig {
        let mut text = DEFAULT_TOML.to_owned();
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "{from}");
            text = text.replace(from, to);
        }
        let (config, _) =
            Config::from_source(&Source::new("test.toml", text), "config".as_ref()).unwrap();
        let mut prompts = PromptSet::new();
        prompts.insert(Prompt::from_samples(PROMPT_WELCOME, &[0; 800]));
        prompts.insert(Prompt::from_samples(PROMPT_HOLD, &[0; 800]));
        let now = Instant::now();
        let mut ep = Endpoint::new(endpoint_config(&config), 9);
        ep.set_scanner_user_agents(config.registrar.scanner_user_agents.clone());
        let mut sb = Switchboard::new(&config, prompts, [7; 32], now);
        sb.start_originating(now, &config, &[LOCAL.parse().unwrap()], 42);
        Rig { ep, sb, media: NoMedia, now, sent: vec![], reports: vec![], cseq: 0 }
    }

    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.ep.poll_transmit() {
                if let Ok(m) = parse_datagram(t.bytes) {
                    self.sent.push((t.flow, m));
                }
                progressed = true;
            }
            while let Some(e) = self.ep.poll_event() {
                self.sb.handle_ua_event(self.now, e, &mut self.ep, &mut self.media);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.reports.extend(self.sb.take_reports());
    }

    fn receive(&mut self, from: SocketAddr, text: &str) {
        let flow = Flow { transport: Transport::Udp, local: LOCAL.parse().unwrap(), remote: from };
        self.ep.handle_datagram(self.now, flow, Bytes::from(text.to_owned()));
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.ep.poll_timeout(), self.sb.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.ep.handle_timeout(self.now);
                    self.sb.handle_timeout(self.now, &mut self.ep, &mut self.media);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn take_sent(&mut self) -> Vec<(Flow, Message)> {
        std::mem::take(&mut self.sent)
    }

    /// The final responses sent since the last look.
    fn finals(&mut self) -> Vec<Response> {
        self.take_sent()
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Response(r) if r.status >= 200 => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The requests we sent since the last look, with their flows.
    fn requests(&mut self) -> Vec<(Flow, Request)> {
        self.take_sent()
            .into_iter()
            .filter_map(|(f, m)| match m {
                Message::Request(r) => Some((f, r)),
                Message::Response(_) => None,
            })
            .collect()
    }

    fn register_text(&mut self, user: &str, from: SocketAddr, contact: &str, auth: &str) -> String {
        self.cseq += 1;
        let auth =
            if auth.is_empty() { String::new() } else { format!("Authorization: {auth}\r\n") };
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bKreg{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=a{port}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{user}-{port}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{contact}>\r\n\
             Expires: 600\r\n\
             User-Agent: Linphone/5.2\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            cseq = self.cseq,
            port = from.port(),
        )
    }

    /// A REGISTER for `user` from `from`, answered to its 401 with `password`: the final status.
    fn register(&mut self, user: &str, password: &str, from: SocketAddr, contact: &str) -> u16 {
        let first = self.register_text(user, from, contact, "");
        self.receive(from, &first);
        let challenge = self.finals().pop().expect("an answer");
        if challenge.status != 401 {
            return challenge.status;
        }
        let value = answer(&challenge, user, password);
        let second = self.register_text(user, from, contact, &value);
        self.receive(from, &second);
        self.finals().pop().expect("an answer").status
    }

    fn state(&self, agent: &str) -> Option<AgentState> {
        self.sb.engine().agent_state(&AgentId::new(agent))
    }
}

fn answer(challenge: &Response, user: &str, password: &str) -> String {
    let challenges = challenge.headers.www_authenticate().unwrap();
    let chosen = preferred_challenge(&challenges).unwrap();
    let a = ClientAnswer {
        user,
        password,
        method: &Method::Register,
        uri: "sip:127.0.0.1:5060",
        cnonce: "abcdef01",
        nc: 1,
    };
    authorization(chosen, &a).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const KEEPALIVE_ON: (&str, &str) = ("keepalive_interval = \"30s\"", "keepalive_interval = \"30s\"");

/// An agent behind NAT: its Contact names 192.168.1.50, its REGISTER came from 127.0.0.1:40000.
/// Every OPTIONS goes to the flow; 404 and 405 prove it alive; then it falls silent and after
/// three unanswered keep-alives (and not before) the agent is logged out as unreachable.
#[test]
fn keepalives_go_to_the_flow_and_three_misses_log_the_agent_out() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let nat = addr("127.0.0.1:40000");
    assert_eq!(rig.register("op1", "op1-test-password", nat, "192.168.1.50:5062"), 200);
    assert!(rig.sb.registrar().is_registered("op1"));
    assert_eq!(rig.state("op1"), Some(AgentState::Available));
    rig.take_sent();

    rig.advance(Duration::from_secs(29));
    assert!(rig.requests().is_empty(), "no keep-alive before the interval");
    for status in [404, 405, 200] {
        rig.advance(Duration::from_secs(30));
        let mut probes = rig.requests();
        // UDP retransmissions of the one OPTIONS (Timer E) carry the same branch.
        probes.dedup_by_key(|(_, r)| r.headers.get("Via").cloned());
        assert_eq!(probes.len(), 1, "one keep-alive per interval");
        let (flow, options) = &probes[0];
        assert_eq!(options.method, Method::Options);
        assert_eq!(flow.remote, nat, "sent on the flow, not to the private Contact");
        assert_eq!(options.uri.as_str(), "sip:op1@192.168.1.50:5062");
        let reply = Response::for_request(options, status, Some("x"));
        rig.receive(nat, std::str::from_utf8(&reply.to_bytes()).unwrap());
        assert!(rig.sb.registrar().is_registered("op1"), "{status} means alive");
    }

    // Silence: UDP retransmissions of each OPTIONS, then Timer F; the third miss logs out.
    rig.advance(Duration::from_secs(30 + 32 + 30 + 32 + 29));
    assert!(rig.sb.registrar().is_registered("op1"), "two misses are not enough");
    let probes = rig.requests();
    assert!(probes.iter().all(|(f, r)| f.remote == nat && r.method == Method::Options));
    rig.advance(Duration::from_secs(40));
    assert!(!rig.sb.registrar().is_registered("op1"));
    assert_eq!(rig.state("op1"), Some(AgentState::LoggedOut));
    let logged_out = Report::Presence(Presence::LoggedOut {
        agent: "op1".into(),
        reason: LogoutReason::Unreachable,
    });
    assert!(rig.reports.contains(&logged_out), "{:?}", rig.reports);
    // No more probes for a binding that is gone.
    rig.take_sent();
    rig.advance(Duration::from_secs(300));
    assert!(rig.requests().is_empty());
}

#[test]
fn keepalives_can_be_switched_off() {
    let mut rig = Rig::new(&[("keepalive_interval = \"30s\"", "keepalive_interval = \"0s\"")]);
    assert_eq!(rig.register("op1", "op1-test-password", addr("127.0.0.1:40000"), "h:5062"), 200);
    rig.take_sent();
    rig.advance(Duration::from_secs(500));
    assert!(rig.requests().is_empty());
    assert!(rig.sb.registrar().is_registered("op1"));
}

/// Ten wrong passwords from one address outside the allow-lists ban that (source, user) for ten
/// minutes: the right password gets 403 meanwhile, works after; the ban is logged once on the
/// stable line; unknown user and wrong password get the same answer; other users and addresses
/// are not affected.
#[test]
fn guesses_ban_the_pair_until_the_ban_expires() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let attacker = addr("198.51.100.7:5060");
    // The first 401 of every registration is not a failure: many of them ban nothing.
    for _ in 0..25 {
        let text = rig.register_text("op1", attacker, "198.51.100.7:5060", "");
        rig.receive(attacker, &text);
        assert_eq!(rig.finals().pop().unwrap().status, 401);
    }
    assert!(!rig.reports.iter().any(|r| matches!(r, Report::AuthFailure { .. })));

    // Unknown user and wrong password: same status, same headers (bar the nonce).
    let first = rig.register_text("nobody", attacker, "x:1", "");
    rig.receive(attacker, &first);
    let c = rig.finals().pop().unwrap();
    let wrong_user = rig.register_text("nobody", attacker, "x:1", &answer(&c, "nobody", "pw"));
    rig.receive(attacker, &wrong_user);
    let unknown = rig.finals().pop().unwrap();
    let first = rig.register_text("op1", attacker, "x:1", "");
    rig.receive(attacker, &first);
    let c = rig.finals().pop().unwrap();
    let wrong_pw = rig.register_text("op1", attacker, "x:1", &answer(&c, "op1", "guess"));
    rig.receive(attacker, &wrong_pw);
    let wrong = rig.finals().pop().unwrap();
    let shape = |r: &Response| {
        let names: Vec<String> = r.headers.iter().map(|h| h.name.as_str().to_owned()).collect();
        (r.status, names, r.headers.www_authenticate().unwrap().len())
    };
    assert_eq!(shape(&unknown), shape(&wrong));
    assert_eq!(unknown.status, 401);

    // Nine more wrong passwords for op1 make ten: the pair is banned.
    for i in 0..9 {
        assert_eq!(rig.register("op1", &format!("guess{i}"), attacker, "x:1"), 401);
    }
    let bans: Vec<String> = rig
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::AuthBan(b) => Some(b.log_line()),
            _ => None,
        })
        .collect();
    assert_eq!(bans, ["auth ban source=198.51.100.7 user=op1 failures=10 seconds=600"]);
    assert_eq!(rig.sb.active_bans(rig.now), 1);
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 403);
    // Only that pair: another user from the same address, the same user from elsewhere.
    assert_eq!(rig.register("op2", "op2-test-password", attacker, "x:2"), 200);
    assert_eq!(rig.register("op1", "op1-test-password", addr("127.0.0.1:40000"), "h:1"), 200);

    rig.advance(Duration::from_secs(599));
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 403);
    rig.advance(Duration::from_secs(2));
    assert_eq!(rig.sb.active_bans(rig.now), 0);
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 200);
}

/// The centre's LAN (the trunk allow-list, here loopback) sits behind one address: a user
/// guessing there bans only that user, never the whole address.
#[test]
fn the_allow_listed_lan_is_never_banned_wholesale() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let lan = addr("127.0.0.1:5062");
    for i in 0..40 {
        let user = format!("ghost{}", i % 4);
        assert_eq!(rig.register(&user, "nope", lan, "10.0.0.9:5062"), 401);
    }
    assert!(rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_some())));
    assert!(!rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_none())));
    assert_eq!(rig.register("op3", "op3-test-password", lan, "10.0.0.3:5062"), 200);

    // Outside the allow-list the same spray bans the whole source.
    let outside = addr("203.0.113.9:5060");
    for i in 0..30 {
        rig.register(&format!("ghost{}", i % 4), "nope", outside, "x:1");
    }
    assert!(rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_none())));
    assert_eq!(rig.register("op3", "op3-test-password", outside, "x:3"), 403);
}

#[test]
fn scanners_are_dropped_without_an_answer_and_counted() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    rig.ep.take_stats();
    for ua in ["friendly-scanner", "sipvicious 0.3", "SIPCLI/v1.8", "pplsip"] {
        let text = rig
            .register_text("op1", addr("203.0.113.1:5060"), "x:1", "")
            .replace("User-Agent: Linphone/5.2", &format!("User-Agent: {ua}"));
        rig.receive(addr("203.0.113.1:5060"), &text);
        let options =
            text.replace("REGISTER sip:", "OPTIONS sip:").replace(" REGISTER\r\n", " OPTIONS\r\n");
        rig.receive(addr("203.0.113.1:5060"), &options);
    }
    assert!(rig.take_sent().is_empty(), "not a byte back");
    let stats = rig.ep.take_stats();
    assert_eq!(stats.invalid, [("scanner", 8)]);
}
