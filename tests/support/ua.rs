//! The sans-IO endpoint on a virtual clock, driven with literal SIP: the harness of the dialog and
//! reliable-provisional tests. The trunk is at 127.0.0.1:5070, the endpoint at 127.0.0.1:5060.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tongdai::sip::endpoint::{Endpoint, EndpointConfig, UaEvent};
use tongdai::sip::message::{Message, Request, Response, parse_datagram};
use tongdai::sip::transaction::timer::TimerValues;
use tongdai::sip::transport::{Flow, Transport};

/// The one flow every message takes: the trunk over UDP.
pub fn flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5070".parse().unwrap(),
    }
}

/// RFC 3261 timers, loopback trunk, hotline 111, strict §18.2.2 responses.
pub fn config() -> EndpointConfig {
    EndpointConfig {
        timers: TimerValues::default(),
        trunk_allow: vec!["127.0.0.0/8".parse().unwrap()],
        numbers: vec!["111".to_owned()],
        user_agent: "tongdai-test".to_owned(),
        retry_after: Duration::from_secs(30),
        force_rport: false,
    }
}

/// A request from the trunk: `method` with CSeq `seq`, branch `branch`, To tag `to_tag` (in
/// dialog), extra header lines, and a body (SDP unless a Content-Type is among `extra`).
pub fn trunk_request(
    method: &str,
    seq: u32,
    branch: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() || extra.contains("Content-Type") {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:111@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch};rport\r\n\
         From: <sip:0901234567@127.0.0.1:5070>;tag=trunk1\r\n\
         To: <sip:111@127.0.0.1:5060>{to_tag}\r\n\
         Call-ID: call-1@trunk\r\n\
         CSeq: {} {method}\r\n\
         Contact: <sip:trunk@127.0.0.1:5070>\r\n\
         Max-Forwards: 70\r\n\
         {extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        seq.max(1),
        body.len()
    )
}

/// The endpoint on a virtual clock, with everything it sent and reported.
pub struct Ua {
    /// The endpoint under test.
    pub ep: Endpoint,
    /// Virtual time zero.
    pub start: Instant,
    /// Virtual now.
    pub now: Instant,
    /// What it sent, parsed, not yet taken.
    pub sent: Vec<Message>,
    /// What it reported, not yet taken.
    pub events: Vec<UaEvent>,
}

impl Ua {
    /// An endpoint whose tags and branches come from `salt`.
    pub fn with_salt(salt: u64) -> Ua {
        let start = Instant::now();
        Ua { ep: Endpoint::new(config(), salt), start, now: start, sent: vec![], events: vec![] }
    }

    /// Collects what the endpoint sent and reported.
    pub fn drain(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            if let Ok(m) = parse_datagram(t.bytes) {
                self.sent.push(m);
            }
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
    }

    /// Delivers one datagram from the trunk now.
    pub fn send(&mut self, datagram: impl Into<Bytes>) {
        self.ep.handle_datagram(self.now, flow(), datagram.into());
        self.drain();
    }

    /// Runs every timer up to `at` (from the start).
    pub fn run_until(&mut self, at: Duration) {
        let target = self.start + at;
        while let Some(t) = self.ep.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(target);
    }

    /// Everything sent since the last take.
    pub fn take_sent(&mut self) -> Vec<Message> {
        self.drain();
        std::mem::take(&mut self.sent)
    }

    /// Everything reported since the last take.
    pub fn take_events(&mut self) -> Vec<UaEvent> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    /// The responses sent since the last take (requests sent meanwhile are dropped).
    pub fn responses(&mut self) -> Vec<Response> {
        self.take_sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            })
            .collect()
    }

    /// The requests sent since the last take (responses sent meanwhile are dropped).
    pub fn requests(&mut self) -> Vec<Request> {
        self.take_sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }
}
