//! Transport facts the sans-IO SIP core needs without touching a socket: which transport a message
//! used and between which addresses (a [`Flow`]), and where a response must go (RFC 3261 §18.2.2 with
//! RFC 3581 `rport`). Protocol layer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::message::{Host, Via};

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, so transactions retransmit.
    Udp,
    /// TCP: reliable; responses go back over the connection the request came on.
    Tcp,
}

impl Transport {
    /// True for transports that deliver reliably (no retransmissions, zero wait timers).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The name used in Via headers.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// One direction-independent path a message travelled: our local socket and the peer's address. For
/// TCP the runtime maps it to the connection (and connects when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}<->{}", self.transport.via_name(), self.local, self.remote)
    }
}

impl Flow {
    /// The same flow with another remote address.
    pub fn to(self, remote: SocketAddr) -> Flow {
        Flow { remote, ..self }
    }
}

/// Stamps a received request's top Via (RFC 3261 §18.2.1, RFC 3581 §4): `received` when the sent-by
/// host is not the packet's source address, and the `rport` value when the client asked for it — or
/// always, with `force_rport` (symmetric responses, as Kamailio's `force_rport()` and Asterisk's
/// `force_rport=yes` do: trunks and softphones behind NAT listen where they send from).
/// Returns true when the Via changed.
pub fn stamp_received(via: &mut Via, source: SocketAddr, force_rport: bool) -> bool {
    let mut changed = false;
    if force_rport && via.rport().is_none() {
        set_param(via, "rport", None);
    }
    let sent_by_ip = match &via.host {
        Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        Host::Domain(_) => None,
    };
    let asked_rport = via.rport().is_some();
    if sent_by_ip != Some(source.ip()) || asked_rport {
        set_param(via, "received", Some(host_text(source.ip())));
        changed = true;
    }
    if asked_rport {
        set_param(via, "rport", Some(source.port().to_string()));
        changed = true;
    }
    changed
}

/// The `received` value: the bare address, IPv6 without brackets, as RFC 3261's ABNF writes it
/// (`received = "received" EQUAL (IPv4address / IPv6address)`; RFC 5118 §4.5). Readers accept both.
fn host_text(ip: IpAddr) -> String {
    ip.to_string()
}

fn set_param(via: &mut Via, name: &str, value: Option<String>) {
    match via.params.iter_mut().find(|p| p.name.eq_ignore_ascii_case(name)) {
        Some(p) => p.value = value,
        None => via.params.push(super::message::Param { name: name.to_string(), value }),
    }
}

/// Where a response to a request that arrived on `flow` with top Via `via` goes (RFC 3261 §18.2.2,
/// RFC 3581 §4): reliable transports answer on the same flow; over UDP the answer goes to the
/// `received` address (the source) and to the `rport` port when the client asked for it, else to the
/// Via's port (5060 when absent).
pub fn response_flow(flow: Flow, via: &Via) -> Flow {
    if flow.transport.is_reliable() {
        return flow;
    }
    let ip = via.received_ip().unwrap_or(flow.remote.ip());
    let port = match via.rport() {
        Some(Some(port)) => port,
        Some(None) => flow.remote.port(),
        None => via.port.unwrap_or(5060),
    };
    flow.to(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(remote: &str) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn rport_sends_back_to_the_source_port() {
        let mut via = Via::parse("SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK1;rport").unwrap();
        assert!(stamp_received(&mut via, "127.0.0.1:40000".parse().unwrap(), false));
        assert_eq!(via.received(), Some("127.0.0.1"));
        assert_eq!(via.rport(), Some(Some(40000)));
        assert_eq!(
            response_flow(flow("127.0.0.1:40000"), &via).remote,
            "127.0.0.1:40000".parse().unwrap()
        );
    }

    #[test]
    fn without_rport_the_via_port_is_used_at_the_source_address() {
        let mut via = Via::parse("SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bK1").unwrap();
        stamp_received(&mut via, "127.0.0.1:40000".parse().unwrap(), false);
        assert_eq!(via.received(), Some("127.0.0.1"));
        assert_eq!(
            response_flow(flow("127.0.0.1:40000"), &via).remote,
            "127.0.0.1:5070".parse().unwrap()
        );
    }

    #[test]
    fn a_matching_sent_by_is_left_alone() {
        let mut via = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1").unwrap();
        assert!(!stamp_received(&mut via, "127.0.0.1:5070".parse().unwrap(), false));
        assert_eq!(via.received(), None);
    }

    #[test]
    fn force_rport_answers_the_source_even_when_not_asked() {
        let mut via = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1").unwrap();
        stamp_received(&mut via, "127.0.0.1:40000".parse().unwrap(), true);
        assert_eq!(via.rport(), Some(Some(40000)));
        assert_eq!(
            response_flow(flow("127.0.0.1:40000"), &via).remote,
            "127.0.0.1:40000".parse().unwrap()
        );
    }

    #[test]
    fn ipv6_received_is_written_bare() {
        let mut via = Via::parse("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1;rport").unwrap();
        stamp_received(&mut via, "[::1]:6000".parse().unwrap(), false);
        assert_eq!(via.received(), Some("::1"));
        assert_eq!(via.received_ip(), Some("::1".parse().unwrap()));
    }
}
