//! SDP (RFC 4566) for audio offer/answer (RFC 3264), wire layer, sans-IO: a lenient parser, a
//! strict printer, and the negotiation rules tongdai needs: answering a trunk's offer with one
//! G.711 codec plus telephone-event (RFC 4733), offering PCMU, PCMA and telephone-event 101 to
//! agents, reading an agent's answer, and recognising hold (`sendonly`, `inactive`, `c=0.0.0.0`).
//!
//! Only what a call needs is modelled; other lines (`b=`, `i=`, `k=`, ...) are skipped and unknown
//! attributes are kept as they came. The `o=` line of our own descriptions is owned by a
//! [`LocalOrigin`] per leg, which bumps the version only when the description changes (RFC 3264
//! §8 asks for exactly that: a re-offer of the same session keeps its version).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::media::g711::Codec;
use crate::media::relay::LegFormat;

/// The telephone-event payload type we use in our own offers (a common choice; any 96–127 works).
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;
/// The events we offer and accept: DTMF 0–9, `*`, `#`, A–D and flash (RFC 4733 §3.2).
pub const TELEPHONE_EVENTS: &str = "0-16";
/// The packetisation we send, in milliseconds.
pub const PTIME_MS: u32 = 20;

/// Why an SDP body could not be parsed. `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body does not start with `v=0`.
    #[error("SDP does not start with v=0")]
    MissingVersion,
    /// A line is not `<letter>=<value>`.
    #[error("SDP line {line} is not <type>=<value>")]
    MalformedLine {
        /// Line number.
        line: usize,
    },
    /// The `o=` line is missing.
    #[error("SDP has no o= line")]
    MissingOrigin,
    /// The `o=` line does not have six fields with a numeric version.
    #[error("SDP line {line}: malformed o= line")]
    BadOrigin {
        /// Line number.
        line: usize,
    },
    /// A `c=` line is not `IN IP4|IP6 <address>`.
    #[error("SDP line {line}: malformed c= line")]
    BadConnection {
        /// Line number.
        line: usize,
    },
    /// A `t=` line is not two numbers.
    #[error("SDP line {line}: malformed t= line")]
    BadTiming {
        /// Line number.
        line: usize,
    },
    /// An `m=` line is not `<media> <port>[/<count>] <proto> <fmt>...`.
    #[error("SDP line {line}: malformed m= line")]
    BadMedia {
        /// Line number.
        line: usize,
    },
    /// An `a=rtpmap`, `a=fmtp` or `a=ptime` value cannot be read.
    #[error("SDP line {line}: malformed a={attribute} attribute")]
    BadAttribute {
        /// Line number.
        line: usize,
        /// The attribute name.
        attribute: &'static str,
    },
}

/// No audio stream of the offer (or answer) uses a codec we support: SIP answers 488.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no common audio codec (PCMU or PCMA) in the session description")]
pub struct NoCommonCodec;

/// Media direction attributes (RFC 4566 §6, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    #[default]
    SendRecv,
    /// `a=sendonly`: the sender puts the other side on hold (it may play music).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`: no media either way.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction as seen from the other side: what an answer says to an offer (RFC 3264
    /// §6.1) and how we read a peer's direction as our own.
    pub const fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// True when the side with this direction sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// True when the side with this direction receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// `o=` (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when none.
    pub username: String,
    /// Session id, a numeric string kept as sent.
    pub session_id: String,
    /// Session version; a changed description must carry a greater one.
    pub session_version: u64,
    /// The originator's address.
    pub address: Connection,
}

/// A `c=` address, or the address of `o=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address as written (an IP address, rarely a host name); `/ttl` suffixes are dropped.
    pub address: String,
    /// True for `IP6`.
    pub ipv6: bool,
}

impl Connection {
    /// The connection for an IP address.
    pub fn from_ip(ip: IpAddr) -> Connection {
        Connection { address: ip.to_string(), ipv6: ip.is_ipv6() }
    }

    /// The address as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// True for `0.0.0.0` (or `::`), the RFC 2543 way to put a stream on hold.
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    fn parse(value: &str) -> Option<Connection> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(net), Some(kind), Some(addr), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        if !net.eq_ignore_ascii_case("IN") {
            return None;
        }
        let ipv6 = if kind.eq_ignore_ascii_case("IP4") {
            false
        } else if kind.eq_ignore_ascii_case("IP6") {
            true
        } else {
            return None;
        };
        let address = addr.split('/').next().unwrap_or(addr);
        if address.is_empty() {
            return None;
        }
        Some(Connection { address: address.to_owned(), ipv6 })
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.ipv6 { "IP6" } else { "IP4" };
        write!(f, "IN {kind} {}", self.address)
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type.
    pub payload_type: u8,
    /// The encoding name as written (`PCMU`, `telephone-event`, `opus`...).
    pub encoding: String,
    /// The clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u16>,
}

impl RtpMap {
    /// The rtpmap of one of our codecs at `payload_type`.
    pub fn g711(payload_type: u8, codec: Codec) -> RtpMap {
        RtpMap {
            payload_type,
            encoding: codec.encoding_name().to_owned(),
            clock_rate: 8000,
            channels: None,
        }
    }

    /// The rtpmap of telephone-event/8000 at `payload_type`.
    pub fn telephone_event(payload_type: u8) -> RtpMap {
        RtpMap {
            payload_type,
            encoding: "telephone-event".to_owned(),
            clock_rate: 8000,
            channels: None,
        }
    }

    fn parse(value: &str) -> Option<RtpMap> {
        let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next()?.to_owned();
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.trim().parse().ok()?),
            None => None,
        };
        Some(RtpMap { payload_type: pt.parse().ok()?, encoding, clock_rate, channels })
    }

    fn is_mono_8k(&self) -> bool {
        self.clock_rate == 8000 && self.channels.is_none_or(|c| c == 1)
    }
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The payload type.
    pub payload_type: u8,
    /// The format parameters, as written.
    pub parameters: String,
}

/// Any other attribute, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name (before the colon).
    pub name: String,
    /// The value (after the colon), if any.
    pub value: Option<String>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The media type: `audio`, `video`, ...
    pub media: String,
    /// The transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<count>` of the port, rarely used.
    pub port_count: Option<u16>,
    /// The transport protocol: `RTP/AVP`, `RTP/SAVP`, ...
    pub protocol: String,
    /// The format list: RTP payload type numbers for RTP.
    pub formats: Vec<String>,
    /// The media-level `c=`, overriding the session's.
    pub connection: Option<Connection>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
    /// The media-level direction attribute.
    pub direction: Option<Direction>,
    /// Every other attribute.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    fn new(media: &str, port: u16, protocol: &str, formats: Vec<String>) -> MediaDescription {
        MediaDescription {
            media: media.to_owned(),
            port,
            port_count: None,
            protocol: protocol.to_owned(),
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
            attributes: Vec::new(),
        }
    }

    /// The payload types of the format list that are numbers, in offer order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The rtpmap of `payload_type`.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The fmtp parameters of `payload_type`.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps.iter().find(|f| f.payload_type == payload_type).map(|f| f.parameters.as_str())
    }

    /// The G.711 codec a listed payload type stands for: by its rtpmap, or by the RFC 3551 static
    /// number when it has none.
    pub fn codec(&self, payload_type: u8) -> Option<Codec> {
        match self.rtpmap(payload_type) {
            Some(map) if map.is_mono_8k() => Codec::from_encoding_name(&map.encoding),
            Some(_) => None,
            None => Codec::from_static_payload_type(payload_type),
        }
    }

    /// The first listed payload type mapped to telephone-event/8000.
    pub fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.is_mono_8k()
            })
        })
    }

    /// True for an RTP audio stream we can carry (plain RTP/AVP, or AVPF whose feedback we
    /// simply do not use). Secure profiles are not supported.
    fn is_usable_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
            && self.port != 0
            && (self.protocol.eq_ignore_ascii_case("RTP/AVP")
                || self.protocol.eq_ignore_ascii_case("RTP/AVPF"))
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`, `-` when there is nothing to say.
    pub session_name: String,
    /// The session-level `c=`.
    pub connection: Option<Connection>,
    /// `t=` start and stop, `0 0` for a permanent session.
    pub timing: (u64, u64),
    /// The session-level direction attribute.
    pub direction: Option<Direction>,
    /// Other session-level attributes.
    pub attributes: Vec<Attribute>,
    /// The `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body. Lenient: LF or CRLF, unknown lines and attributes are accepted.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end()))
            .filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::MissingVersion),
        }
        let mut origin = None;
        let mut session_name = String::from("-");
        let mut connection = None;
        let mut timing = (0, 0);
        let mut direction = None;
        let mut attributes = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        for (line, text) in lines {
            let bytes = text.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' {
                return Err(SdpError::MalformedLine { line });
            }
            let value = &text[2..];
            match (bytes[0], media.last_mut()) {
                (b'o', None) => origin = Some(parse_origin(value, line)?),
                (b's', None) => session_name = value.to_owned(),
                (b'c', None) => {
                    connection =
                        Some(Connection::parse(value).ok_or(SdpError::BadConnection { line })?);
                }
                (b'c', Some(m)) => {
                    m.connection =
                        Some(Connection::parse(value).ok_or(SdpError::BadConnection { line })?);
                }
                (b't', None) => timing = parse_timing(value, line)?,
                (b'm', _) => media.push(parse_media(value, line)?),
                (b'a', None) => {
                    let (name, val) = split_attribute(value);
                    match Direction::from_attribute(name) {
                        Some(d) => direction = Some(d),
                        None => attributes.push(Attribute {
                            name: name.to_owned(),
                            value: val.map(str::to_owned),
                        }),
                    }
                }
                (b'a', Some(m)) => parse_media_attribute(m, value, line)?,
                // b=, i=, u=, e=, p=, z=, k=, r= and anything new: not needed for a call.
                _ => {}
            }
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::MissingOrigin)?,
            session_name,
            connection,
            timing,
            direction,
            attributes,
            media,
        })
    }

    /// The connection that applies to `media`: its own `c=`, else the session's.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The direction that applies to `media`: its own attribute, else the session's, else
    /// `sendrecv`.
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }

    /// The first audio stream we can carry (port non-zero, RTP/AVP).
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.is_usable_audio())
    }

    /// True when the first audio stream is on hold from this description's side: `sendonly`,
    /// `inactive`, or the RFC 2543 `c=0.0.0.0`.
    pub fn is_hold(&self) -> bool {
        self.audio().is_some_and(|m| {
            let d = self.effective_direction(m);
            !d.receives()
        })
    }

    /// The direction of `media` with `c=0.0.0.0` folded in: such a side cannot receive.
    fn effective_direction(&self, media: &MediaDescription) -> Direction {
        let d = self.direction_for(media);
        if self.connection_for(media).is_some_and(Connection::is_hold) {
            match d {
                Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
                Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
            }
        } else {
            d
        }
    }

    /// Where `media`'s RTP should go, unless it is disabled or held with `0.0.0.0`.
    fn rtp_address(&self, media: &MediaDescription) -> Option<SocketAddr> {
        let ip = self.connection_for(media)?.ip()?;
        (media.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, media.port))
    }
}

fn split_attribute(value: &str) -> (&str, Option<&str>) {
    match value.split_once(':') {
        Some((name, val)) => (name, Some(val)),
        None => (value, None),
    }
}

fn parse_origin(value: &str, line: usize) -> Result<Origin, SdpError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, session_id, version, net, kind, address] = fields[..] else {
        return Err(SdpError::BadOrigin { line });
    };
    let session_version = version.parse().map_err(|_| SdpError::BadOrigin { line })?;
    let address = Connection::parse(&format!("{net} {kind} {address}"))
        .ok_or(SdpError::BadOrigin { line })?;
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version,
        address,
    })
}

fn parse_timing(value: &str, line: usize) -> Result<(u64, u64), SdpError> {
    let mut fields = value.split_ascii_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Ok(start)), Some(Ok(stop)), None) => Ok((start, stop)),
        _ => Err(SdpError::BadTiming { line }),
    }
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let bad = SdpError::BadMedia { line };
    let mut fields = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(protocol)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad);
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(n.parse().map_err(|_| bad.clone())?)),
        None => (port, None),
    };
    let port = port.parse().map_err(|_| bad.clone())?;
    let mut m = MediaDescription::new(media, port, protocol, fields.map(str::to_owned).collect());
    m.port_count = port_count;
    Ok(m)
}

fn parse_media_attribute(
    m: &mut MediaDescription,
    value: &str,
    line: usize,
) -> Result<(), SdpError> {
    let (name, val) = split_attribute(value);
    match (name, val) {
        ("rtpmap", Some(v)) => {
            let map =
                RtpMap::parse(v).ok_or(SdpError::BadAttribute { line, attribute: "rtpmap" })?;
            m.rtpmaps.push(map);
        }
        ("fmtp", Some(v)) => {
            let bad = SdpError::BadAttribute { line, attribute: "fmtp" };
            let (pt, params) = v.trim().split_once(char::is_whitespace).ok_or(bad.clone())?;
            m.fmtps.push(Fmtp {
                payload_type: pt.parse().map_err(|_| bad)?,
                parameters: params.trim().to_owned(),
            });
        }
        ("ptime", Some(v)) => {
            m.ptime = Some(
                v.trim()
                    .parse()
                    .map_err(|_| SdpError::BadAttribute { line, attribute: "ptime" })?,
            );
        }
        _ => match Direction::from_attribute(name) {
            Some(d) => m.direction = Some(d),
            None => m
                .attributes
                .push(Attribute { name: name.to_owned(), value: val.map(str::to_owned) }),
        },
    }
    Ok(())
}

fn write_attribute(f: &mut fmt::Formatter<'_>, a: &Attribute) -> fmt::Result {
    match &a.value {
        Some(v) => write!(f, "a={}:{}\r\n", a.name, v),
        None => write!(f, "a={}\r\n", a.name),
    }
}

impl fmt::Display for SessionDescription {
    /// Prints the description strictly: CRLF line ends, RFC 4566 §5 line order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v=0\r\n")?;
        write!(f, "o={} {} {} {}\r\n", o.username, o.session_id, o.session_version, o.address)?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write!(f, "t={} {}\r\n", self.timing.0, self.timing.1)?;
        for a in &self.attributes {
            write_attribute(f, a)?;
        }
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.protocol)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            write!(f, "\r\n")?;
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for map in &m.rtpmaps {
                write!(f, "a=rtpmap:{} {}/{}", map.payload_type, map.encoding, map.clock_rate)?;
                if let Some(ch) = map.channels {
                    write!(f, "/{ch}")?;
                }
                write!(f, "\r\n")?;
            }
            for fmtp in &m.fmtps {
                write!(f, "a=fmtp:{} {}\r\n", fmtp.payload_type, fmtp.parameters)?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            for a in &m.attributes {
                write_attribute(f, a)?;
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
        }
        Ok(())
    }
}

/// The audio stream one leg agreed on: what the relay and playout need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// The G.711 law.
    pub codec: Codec,
    /// Its payload type number on this leg.
    pub payload_type: u8,
    /// telephone-event/8000's payload type on this leg, if negotiated.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (before latching), `None` when the peer is on hold with `0.0.0.0`.
    pub remote: Option<SocketAddr>,
    /// Our direction: whether we may send (`sends`) and will receive (`receives`).
    pub direction: Direction,
    /// The peer's `a=ptime`, if it gave one.
    pub remote_ptime: Option<u32>,
}

impl NegotiatedAudio {
    /// The relay's view of this leg.
    pub fn leg_format(&self) -> LegFormat {
        LegFormat {
            codec: self.codec,
            payload_type: self.payload_type,
            telephone_event: self.telephone_event,
        }
    }

    /// True when the peer put this leg on hold (it does not want our audio).
    pub fn is_held_by_peer(&self) -> bool {
        !self.direction.sends()
    }
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP to send (stamp its `o=` with the leg's [`LocalOrigin`]).
    pub sdp: SessionDescription,
    /// What was agreed for the audio stream.
    pub audio: NegotiatedAudio,
}

fn placeholder_origin(addr: IpAddr) -> Origin {
    Origin {
        username: "tongdai".to_owned(),
        session_id: "0".to_owned(),
        session_version: 0,
        address: Connection::from_ip(addr),
    }
}

fn our_audio(
    port: u16,
    protocol: &str,
    codecs: &[(u8, Codec)],
    telephone_event: Option<(u8, String)>,
    direction: Direction,
) -> MediaDescription {
    let mut formats: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut m = MediaDescription::new("audio", port, protocol, Vec::new());
    m.rtpmaps = codecs.iter().map(|(pt, c)| RtpMap::g711(*pt, *c)).collect();
    if let Some((pt, events)) = telephone_event {
        formats.push(pt.to_string());
        m.rtpmaps.push(RtpMap::telephone_event(pt));
        m.fmtps.push(Fmtp { payload_type: pt, parameters: events });
    }
    m.formats = formats;
    m.ptime = Some(PTIME_MS);
    m.direction = Some(direction);
    m
}

fn session(addr: IpAddr, media: Vec<MediaDescription>) -> SessionDescription {
    SessionDescription {
        origin: placeholder_origin(addr),
        session_name: "-".to_owned(),
        connection: Some(Connection::from_ip(addr)),
        timing: (0, 0),
        direction: None,
        attributes: Vec::new(),
        media,
    }
}

/// Answers an offer (RFC 3264 §6): the first usable audio stream gets the first codec of `prefs`
/// that the offer lists (keeping the offer's payload type number) plus telephone-event/8000 if
/// offered; every other stream is rejected with port 0. Our direction mirrors the offer's.
///
/// `prefs` decides, not the offer's order, so the B2BUA can pick the other leg's codec and avoid
/// transcoding. Exactly one audio codec is answered so the peer cannot switch mid-call.
pub fn answer(
    offer: &SessionDescription,
    prefs: &[Codec],
    addr: IpAddr,
    port: u16,
) -> Result<Answer, NoCommonCodec> {
    let mut chosen: Option<NegotiatedAudio> = None;
    let mut media = Vec::with_capacity(offer.media.len());
    for m in &offer.media {
        let accepted = if chosen.is_none() && m.is_usable_audio() {
            prefs.iter().find_map(|want| {
                m.payload_types().find(|pt| m.codec(*pt) == Some(*want)).map(|pt| (pt, *want))
            })
        } else {
            None
        };
        let Some((pt, codec)) = accepted else {
            // RFC 3264 §6: a rejected stream keeps its m= line, with port 0.
            let mut rejected = MediaDescription::new(&m.media, 0, &m.protocol, m.formats.clone());
            rejected.formats.truncate(1);
            media.push(rejected);
            continue;
        };
        let telephone_event = m.telephone_event();
        let events = telephone_event.map(|te| {
            let events = m.fmtp(te).unwrap_or(TELEPHONE_EVENTS).to_owned();
            (te, events)
        });
        let direction = offer.effective_direction(m).reversed();
        media.push(our_audio(port, &m.protocol, &[(pt, codec)], events, direction));
        chosen = Some(NegotiatedAudio {
            codec,
            payload_type: pt,
            telephone_event,
            remote: offer.rtp_address(m),
            direction,
            remote_ptime: m.ptime,
        });
    }
    let audio = chosen.ok_or(NoCommonCodec)?;
    Ok(Answer { sdp: session(addr, media), audio })
}

/// Our offer to an agent (or a transfer target): one audio stream with `codecs` at their static
/// payload types and telephone-event at [`OFFER_TELEPHONE_EVENT_PT`]. Stamp its `o=` with the
/// leg's [`LocalOrigin`]. Use `Direction::SendOnly` to put the peer on hold.
pub fn offer(
    addr: IpAddr,
    port: u16,
    codecs: &[Codec],
    direction: Direction,
) -> SessionDescription {
    let list: Vec<(u8, Codec)> = codecs.iter().map(|c| (c.static_payload_type(), *c)).collect();
    let events = Some((OFFER_TELEPHONE_EVENT_PT, TELEPHONE_EVENTS.to_owned()));
    session(addr, vec![our_audio(port, "RTP/AVP", &list, events, direction)])
}

/// Reads the answer to one of our offers: the first accepted audio stream and the first G.711
/// codec it lists (an answerer lists what it will send first, RFC 3264 §6.1).
pub fn negotiate_answer(answer: &SessionDescription) -> Result<NegotiatedAudio, NoCommonCodec> {
    let m = answer.audio().ok_or(NoCommonCodec)?;
    let (payload_type, codec) =
        m.payload_types().find_map(|pt| m.codec(pt).map(|c| (pt, c))).ok_or(NoCommonCodec)?;
    Ok(NegotiatedAudio {
        codec,
        payload_type,
        telephone_event: m.telephone_event(),
        remote: answer.rtp_address(m),
        direction: answer.effective_direction(m).reversed(),
        remote_ptime: m.ptime,
    })
}

/// The `o=` line of one leg's descriptions: a fixed session id and a version that grows by one
/// each time the description we send changes, and only then.
#[derive(Debug, Clone)]
pub struct LocalOrigin {
    session_id: u64,
    version: u64,
    last: Option<SessionDescription>,
}

impl LocalOrigin {
    /// A new origin; the runtime supplies the session id (e.g. random or time-based, RFC 4566
    /// §5.2 suggests an NTP timestamp), and the first description gets that number as version.
    pub fn new(session_id: u64) -> LocalOrigin {
        LocalOrigin { session_id, version: session_id, last: None }
    }

    /// The version of the last stamped description.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Sets `sdp`'s `o=` line: our session id, and the version, increased when the rest of the
    /// description differs from the last one stamped.
    pub fn stamp(&mut self, sdp: &mut SessionDescription) {
        sdp.origin.username = "tongdai".to_owned();
        sdp.origin.session_id = self.session_id.to_string();
        // Compare with a neutral origin so only the body decides.
        let mut body = sdp.clone();
        body.origin.session_version = 0;
        if let Some(last) = &self.last
            && *last != body
        {
            self.version = self.version.wrapping_add(1);
        }
        self.last = Some(body);
        sdp.origin.session_version = self.version;
    }
}
