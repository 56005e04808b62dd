//! STUN binding requests on the SIP port (RFC 5389, as RFC 5626 §4.4.2 keep-alives use them):
//! answered with the sender's reflexive address. Wire layer, sans-IO.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

/// The answer to a STUN binding request (RFC 5389) on the SIP port, as softphones send for NAT
/// keep-alive (RFC 5626 §4.4.2): a success response with XOR-MAPPED-ADDRESS. `None` when the
/// datagram is not a STUN binding request.
pub(super) fn stun_binding_response(datagram: &[u8], source: SocketAddr) -> Option<Bytes> {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    if datagram.len() < 20 || datagram[0..2] != [0x00, 0x01] || datagram[4..8] != COOKIE {
        return None;
    }
    let txid = &datagram[8..20];
    let mut attr = Vec::with_capacity(24);
    let port = source.port() ^ 0x2112;
    match source.ip() {
        IpAddr::V4(ip) => {
            attr.extend_from_slice(&[0x00, 0x01]);
            attr.extend_from_slice(&port.to_be_bytes());
            for (b, c) in ip.octets().iter().zip(COOKIE) {
                attr.push(b ^ c);
            }
        }
        IpAddr::V6(ip) => {
            attr.extend_from_slice(&[0x00, 0x02]);
            attr.extend_from_slice(&port.to_be_bytes());
            let key: Vec<u8> = COOKIE.iter().chain(txid).copied().collect();
            for (b, k) in ip.octets().iter().zip(key) {
                attr.push(b ^ k);
            }
        }
    }
    let mut out = Vec::with_capacity(20 + 4 + attr.len());
    out.extend_from_slice(&[0x01, 0x01]);
    out.extend_from_slice(&((4 + attr.len()) as u16).to_be_bytes());
    out.extend_from_slice(&COOKIE);
    out.extend_from_slice(txid);
    out.extend_from_slice(&[0x00, 0x20]);
    out.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    out.extend_from_slice(&attr);
    Some(Bytes::from(out))
}
