//! A literal-SIP agent softphone on a real UDP socket: registers with digest (the crate's client
//! digest), receives what the daemon sends, answers or ignores it. Its Contact may name any host,
//! e.g. a private address behind a simulated NAT.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Message, Method, Request, Response, parse_datagram};

/// A softphone registering as `user`.
pub struct Agent {
    socket: UdpSocket,
    registrar: SocketAddr,
    user: String,
    password: String,
    /// The `host:port` written in the Contact (default: the socket's own address).
    pub contact_host: String,
    /// The User-Agent header.
    pub user_agent: String,
    call_id: String,
    cseq: u32,
    nc: u32,
}

impl Agent {
    /// An agent on a fresh loopback socket.
    pub fn new(registrar: SocketAddr, user: &str, password: &str) -> Agent {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = socket.local_addr().unwrap();
        Agent {
            socket,
            registrar,
            user: user.into(),
            password: password.into(),
            contact_host: local.to_string(),
            user_agent: "tongdai-test-agent".into(),
            call_id: format!("reg-{user}-{}@test", local.port()),
            cseq: 0,
            nc: 0,
        }
    }

    /// The socket's address (where the daemon's requests must arrive).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The REGISTER with the next CSeq, and an Authorization value if given.
    pub fn register_request(&mut self, expires: u32, authorization: Option<&str>) -> String {
        self.cseq += 1;
        let local = self.local_addr();
        let mut text = format!(
            "REGISTER sip:{reg} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{port}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{reg}>;tag=t{port}\r\n\
             To: <sip:{user}@{reg}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{contact}>\r\n\
             Expires: {expires}\r\n\
             User-Agent: {ua}\r\n",
            reg = self.registrar,
            cid = self.call_id,
            cseq = self.cseq,
            user = self.user,
            port = local.port(),
            contact = self.contact_host,
            ua = self.user_agent,
        );
        if let Some(a) = authorization {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }

    /// Sends raw text to the registrar.
    pub fn send(&self, text: &str) {
        self.socket.send_to(text.as_bytes(), self.registrar).unwrap();
    }

    /// Sends raw text to `to`.
    pub fn send_to(&self, text: &str, to: SocketAddr) {
        self.socket.send_to(text.as_bytes(), to).unwrap();
    }

    /// The next SIP message within `limit`, with its source; `None` on timeout.
    pub fn recv(&self, limit: Duration) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Ok(m) = parse_datagram(buf[..n].to_vec()) {
                        return Some((m, from));
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The next response within `limit`, skipping requests (answering none of them).
    pub fn recv_response(&self, limit: Duration) -> Option<Response> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let (Message::Response(r), _) = self.recv(left)? {
                return Some(r);
            }
        }
    }

    /// The next request within `limit`, skipping responses.
    pub fn recv_request(&self, limit: Duration) -> Option<(Request, SocketAddr)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let (Message::Request(r), from) = self.recv(left)? {
                return Some((r, from));
            }
        }
    }

    /// Registers for `expires` seconds with the password (401, then credentials): the final
    /// response.
    pub fn register(&mut self, expires: u32) -> Response {
        self.register_with(expires, &self.password.clone())
    }

    /// Registers answering the challenge with `password` (right or wrong): the final response.
    pub fn register_with(&mut self, expires: u32, password: &str) -> Response {
        let first = self.register_request(expires, None);
        self.send(&first);
        let challenge = self.recv_response(Duration::from_secs(5)).expect("no answer to REGISTER");
        if challenge.status != 401 {
            return challenge;
        }
        let value = self.authorization(&challenge, password);
        let second = self.register_request(expires, Some(&value));
        self.send(&second);
        self.recv_response(Duration::from_secs(5)).expect("no answer to REGISTER")
    }

    /// The Authorization value answering `challenge` (a 401) for our next REGISTER.
    pub fn authorization(&mut self, challenge: &Response, password: &str) -> String {
        let challenges = challenge.headers.www_authenticate().unwrap();
        let chosen = preferred_challenge(&challenges).expect("a usable challenge");
        self.nc += 1;
        let uri = format!("sip:{}", self.registrar);
        let answer = ClientAnswer {
            user: &self.user,
            password,
            method: &Method::Register,
            uri: &uri,
            cnonce: "c0ffee42",
            nc: 1,
        };
        authorization(chosen, &answer).unwrap()
    }

    /// Answers `request` with `status` (To tag added for a dialog-creating answer).
    pub fn answer(&self, request: &Request, status: u16, from: SocketAddr, body: Option<&str>) {
        let mut r = Response::for_request(request, status, Some("agenttag"));
        if (200..300).contains(&status) && request.method == Method::Invite {
            r.headers.push("Contact", format!("<sip:{}@{}>", self.user, self.contact_host));
        }
        if let Some(b) = body {
            r.headers.push("Content-Type", "application/sdp".to_string());
            r.body = bytes::Bytes::from(b.to_string());
        }
        self.socket.send_to(&r.to_bytes(), from).unwrap();
    }
}
