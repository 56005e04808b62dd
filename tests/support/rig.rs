//! The switchboard on virtual time, driven with literal SIP: the real endpoint and switchboard
//! around a fake media (one that does nothing by default, or the test's own recording one), and
//! every message sent kept with the flow it went on. Used by the registration, keep-alive, ban,
//! trunk-registration, dialog, media-event and B2BUA tests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tongdai::acd::b2bua::{MediaControl, PROMPT_HOLD, PROMPT_WELCOME, Report, Switchboard};
use tongdai::acd::{AgentId, AgentState, CallId};
use tongdai::config::{Config, DEFAULT_TOML, Source};
use tongdai::media::pacing::Playlist;
use tongdai::media::prompt::{Prompt, PromptSet};
use tongdai::media::relay::LegFormat;
use tongdai::runtime::driver::endpoint_config;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::endpoint::Endpoint;
use tongdai::sip::message::{Message, Method, Request, Response, parse_datagram};
use tongdai::sip::transport::{Flow, Transport};

#[derive(Default)]
/// A media that opens nothing.
pub struct NoMedia;

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

/// Our SIP address.
pub const LOCAL: &str = "127.0.0.1:5060";

/// The trunk's address in the dialog tests.
pub const TRUNK: &str = "127.0.0.1:5070";

/// The trunk's SDP offer (PCMU, PCMA, telephone-event) at RTP `port`, `o=` version `version`.
pub fn trunk_offer_at(version: u32, direction: &str, port: u16) -> String {
    format!(
        "v=0\r\no=trunk 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// [`trunk_offer_at`] port 40000.
pub fn trunk_offer(version: u32, direction: &str) -> String {
    trunk_offer_at(version, direction, 40000)
}

/// A request of the trunk's one call (`Call-ID: sb-1@trunk`) from [`TRUNK`] to 111, with `body`
/// as SDP when not empty.
pub fn trunk_request(
    method: &str,
    seq: u32,
    branch: &str,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "{method} sip:111@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0901234567@{TRUNK}>;tag=trunk1\r\n\
         To: <sip:111@127.0.0.1:5060>{to_tag}\r\n\
         Call-ID: sb-1@trunk\r\n\
         CSeq: {seq} {method}\r\n\
         Contact: <sip:trunk@{TRUNK}>\r\n\
         Max-Forwards: 70\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The endpoint and switchboard on a virtual clock, around media `M`.
pub struct Rig<M: MediaControl = NoMedia> {
    pub ep: Endpoint,
    pub sb: Switchboard,
    pub media: M,
    pub now: Instant,
    /// Everything sent, with the flow it went on.
    pub sent: Vec<(Flow, Message)>,
    pub reports: Vec<Report>,
    pub cseq: u32,
}

impl Rig {
    /// The default configuration with `edits` (from, to) applied.
    pub fn new(edits: &[(&str, &str)]) -> Rig {
        Rig::with_text(edits, "")
    }

    /// The default configuration with `edits` applied and `extra` appended.
    pub fn with_text(edits: &[(&str, &str)], extra: &str) -> Rig {
        Rig::build(edits, extra, NoMedia, &[])
    }
}

/// The default configuration text with `edits` (from → to, each found once) and `extra` appended.
pub fn config(edits: &[(&str, &str)], extra: &str) -> Config {
    let mut text = DEFAULT_TOML.to_owned();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    text.push_str(extra);
    Config::from_source(&Source::new("test.toml", text), "config".as_ref()).unwrap().0
}

impl<M: MediaControl> Rig<M> {
    /// The default configuration with `edits` and `extra` (see [`config`]) around `media`, with
    /// 0.1 s welcome and hold prompts plus `prompts` (name, samples of silence).
    pub fn build(edits: &[(&str, &str)], extra: &str, media: M, prompts: &[(&str, usize)]) -> Self {
        let config = config(edits, extra);
        let mut set = PromptSet::new();
        set.insert(Prompt::from_samples(PROMPT_WELCOME, &[0; 800]));
        set.insert(Prompt::from_samples(PROMPT_HOLD, &[0; 800]));
        for (name, samples) in prompts {
            set.insert(Prompt::from_samples(name, &vec![0; *samples]));
        }
        let prompts = set;
        let now = Instant::now();
        let mut ep = Endpoint::new(endpoint_config(&config), 9);
        ep.set_scanner_user_agents(config.registrar.scanner_user_agents.clone());
        let mut sb = Switchboard::new(&config, prompts, [7; 32], now);
        sb.start_originating(now, &config, &[LOCAL.parse().unwrap()], 42);
        Rig { ep, sb, media, now, sent: vec![], reports: vec![], cseq: 0 }
    }

    pub fn pump(&mut self) {
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

    pub fn receive(&mut self, from: SocketAddr, text: &str) {
        let flow = Flow { transport: Transport::Udp, local: LOCAL.parse().unwrap(), remote: from };
        self.ep.handle_datagram(self.now, flow, Bytes::from(text.to_owned()));
        self.pump();
    }

    pub fn advance(&mut self, d: Duration) {
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

    pub fn take_sent(&mut self) -> Vec<(Flow, Message)> {
        std::mem::take(&mut self.sent)
    }

    /// The final responses sent since the last look.
    pub fn finals(&mut self) -> Vec<Response> {
        self.take_sent()
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Response(r) if r.status >= 200 => Some(r),
                _ => None,
            })
            .collect()
    }

    /// `text` from [`TRUNK`].
    pub fn send_trunk(&mut self, text: String) {
        self.receive(TRUNK.parse().unwrap(), &text);
    }

    /// An answered trunk call (offer in the INVITE); our To tag.
    pub fn call_trunk(&mut self) -> String {
        self.send_trunk(trunk_request("INVITE", 1, "inv", None, &trunk_offer(1, "sendrecv")));
        let ok = self.final_response(200);
        let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
        self.send_trunk(trunk_request("ACK", 1, "ack", Some(&tag), ""));
        tag
    }

    /// The one final response sent since the last look (retransmissions folded); must be
    /// `status`.
    pub fn final_response(&mut self, status: u16) -> Response {
        let mut r = self.finals();
        r.dedup_by(|a, b| a.status == b.status);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].status, status, "{:?}", r[0]);
        r.remove(0)
    }

    /// The requests we sent since the last look, with their flows.
    pub fn requests(&mut self) -> Vec<(Flow, Request)> {
        self.take_sent()
            .into_iter()
            .filter_map(|(f, m)| match m {
                Message::Request(r) => Some((f, r)),
                Message::Response(_) => None,
            })
            .collect()
    }

    pub fn register_text(
        &mut self,
        user: &str,
        from: SocketAddr,
        contact: &str,
        auth: &str,
    ) -> String {
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
    pub fn register(&mut self, user: &str, password: &str, from: SocketAddr, contact: &str) -> u16 {
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

    /// The requests sent to `to` with `method` since the last look (retransmissions folded); the
    /// other messages stay for later looks.
    pub fn sent_to(&mut self, to: &str, method: Method) -> Vec<Request> {
        let to: SocketAddr = to.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.sent).into_iter().partition(|(f, m)| {
                f.remote == to && matches!(m, Message::Request(r) if r.method == method)
            });
        self.sent = rest;
        let mut out: Vec<Request> = Vec::new();
        for (_, m) in mine {
            let Message::Request(r) = m else { continue };
            let copy = out.iter().any(|o| {
                o.headers.call_id() == r.headers.call_id()
                    && o.headers.cseq().ok() == r.headers.cseq().ok()
            });
            if !copy {
                out.push(r);
            }
        }
        out
    }

    pub fn state(&self, agent: &str) -> Option<AgentState> {
        self.sb.engine().agent_state(&AgentId::new(agent))
    }
}

/// The Authorization for a REGISTER answering the 401 `challenge`.
pub fn answer(challenge: &Response, user: &str, password: &str) -> String {
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

/// The Proxy-Authorization for `method` to `uri` by `user` answering the 407 `challenge`.
pub fn proxy_answer(
    challenge: &Response,
    user: &str,
    password: &str,
    method: Method,
    uri: &str,
) -> String {
    let challenges = challenge.headers.proxy_authenticate().unwrap();
    let chosen = preferred_challenge(&challenges).unwrap();
    let a = ClientAnswer { user, password, method: &method, uri, cnonce: "c0ffee01", nc: 1 };
    authorization(chosen, &a).unwrap()
}

/// A response from the peer at `from` (its Contact) to our request `r`, with `extra` header lines
/// and an SDP `body` when not empty; its To tag is `peer<status>`.
pub fn reply(from: &str, r: &Request, status: u16, extra: &str, body: &str) -> String {
    let h = |n: &str| {
        r.headers.get(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=peer{status}\r\nCall-ID: {}\r\n\
         CSeq: {}\r\nContact: <sip:peer@{from}>\r\n{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq"),
        body.len()
    )
}

/// A socket address.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
