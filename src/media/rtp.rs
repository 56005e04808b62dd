//! RTP packets (RFC 3550 §5.1), the wire layer of media: a borrowed view that parses a datagram
//! without copying, a header writer for the packets we send, and the RFC 7983 first-byte demux
//! that tells RTP from RTCP, STUN and DTLS arriving on the same port.
//!
//! Parsing checks everything a relay relies on (version, CSRC list, header extension, padding) and
//! reports each defect as its own [`RtpError`] variant so the runtime can count drops by reason.

use thiserror::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// The only RTP version in use (RFC 3550).
pub const RTP_VERSION: u8 = 2;

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte header")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {version}, expected 2")]
    WrongVersion {
        /// The version found in the top two bits.
        version: u8,
    },
    /// The CSRC count points past the end of the datagram.
    #[error("{count} CSRC identifiers do not fit in a {len}-byte packet")]
    CsrcPastEnd {
        /// CSRC count from the header.
        count: u8,
        /// Datagram length.
        len: usize,
    },
    /// The header extension (X bit) runs past the end of the datagram.
    #[error("header extension runs past the end of a {len}-byte packet")]
    ExtensionPastEnd {
        /// Datagram length.
        len: usize,
    },
    /// The padding count (last byte, P bit set) is zero or larger than what follows the header.
    #[error("padding of {padding} bytes is invalid with {available} bytes after the header")]
    BadPadding {
        /// Padding count from the last byte.
        padding: u8,
        /// Bytes available after the header.
        available: usize,
    },
    /// The output buffer cannot hold the packet being written.
    #[error("buffer of {capacity} bytes cannot hold a {needed}-byte RTP packet")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
}

impl RtpError {
    /// The bounded metric label of this defect (`tongdai_rtp_dropped_packets_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            RtpError::TooShort { .. } => "short",
            RtpError::WrongVersion { .. } => "version",
            RtpError::CsrcPastEnd { .. } => "csrc_overflow",
            RtpError::ExtensionPastEnd { .. } => "extension_overflow",
            RtpError::BadPadding { .. } => "padding",
            RtpError::BufferTooSmall { .. } => "short",
        }
    }
}

/// An RTP header extension (RFC 3550 §5.3.1): the profile word and its data, unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    /// The 16-bit profile-defined identifier (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the datagram it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// The 16-bit sequence number.
    pub sequence: u16,
    /// The 32-bit media timestamp (8 kHz units for G.711 and telephone-event/8000).
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// The contributing sources, 4 bytes each, big-endian.
    pub csrc: &'a [u8],
    /// The header extension, when the X bit is set.
    pub extension: Option<RtpExtension<'a>>,
    /// The payload without padding.
    pub payload: &'a [u8],
    /// Padding bytes removed from the end (0 when the P bit is clear).
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram as RTP. Use [`classify`] first when RTCP or STUN may share the port.
    pub fn parse(buf: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        let len = buf.len();
        if len < RTP_HEADER_LEN {
            return Err(RtpError::TooShort { len });
        }
        let version = buf[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::WrongVersion { version });
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let csrc_count = buf[0] & 0x0F;
        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > len {
            return Err(RtpError::CsrcPastEnd { count: csrc_count, len });
        }
        let csrc = &buf[RTP_HEADER_LEN..offset];
        let extension = if has_extension {
            let Some(word) = buf.get(offset..offset + 4) else {
                return Err(RtpError::ExtensionPastEnd { len });
            };
            let profile = u16::from_be_bytes([word[0], word[1]]);
            let words = usize::from(u16::from_be_bytes([word[2], word[3]]));
            let start = offset + 4;
            let end = start + 4 * words;
            let Some(data) = buf.get(start..end) else {
                return Err(RtpError::ExtensionPastEnd { len });
            };
            offset = end;
            Some(RtpExtension { profile, data })
        } else {
            None
        };
        let mut end = len;
        let mut padding = 0;
        if has_padding {
            // The last octet counts the padding, itself included (RFC 3550 §5.1), so 0 is invalid.
            padding = buf[len - 1];
            let available = len - offset;
            if padding == 0 || usize::from(padding) > available {
                return Err(RtpError::BadPadding { padding, available });
            }
            end = len - usize::from(padding);
        }
        Ok(RtpPacket {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            csrc,
            extension,
            payload: &buf[offset..end],
            padding,
        })
    }

    /// The number of contributing sources.
    pub fn csrc_count(&self) -> usize {
        self.csrc.len() / 4
    }

    /// The contributing sources as numbers.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The fixed-header fields, to re-send this packet's identity with a new payload.
    pub fn header(&self) -> RtpHeader {
        RtpHeader {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        }
    }
}

/// The fixed RTP header fields of a packet we send. We never send CSRCs, extensions or padding:
/// tongdai is a translator that rewrites the SSRC, not a mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit.
    pub marker: bool,
    /// The 7-bit payload type (the top bit is ignored).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header into the start of `out`.
    pub fn write_header(&self, out: &mut [u8; RTP_HEADER_LEN]) {
        out[0] = RTP_VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Writes header and payload into `out`, returning the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let needed = RTP_HEADER_LEN + payload.len();
        if out.len() < needed {
            return Err(RtpError::BufferTooSmall { needed, capacity: out.len() });
        }
        let mut header = [0u8; RTP_HEADER_LEN];
        self.write_header(&mut header);
        out[..RTP_HEADER_LEN].copy_from_slice(&header);
        out[RTP_HEADER_LEN..needed].copy_from_slice(payload);
        Ok(needed)
    }

    /// Clears `out` and fills it with header and payload.
    pub fn write_vec(&self, payload: &[u8], out: &mut Vec<u8>) {
        let mut header = [0u8; RTP_HEADER_LEN];
        self.write_header(&mut header);
        out.clear();
        out.reserve(RTP_HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
    }

    /// Returns a new packet with this header and `payload`.
    pub fn to_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(RTP_HEADER_LEN + payload.len());
        self.write_vec(payload, &mut out);
        out
    }
}

/// What a datagram on a media port is, by its first bytes (RFC 7983 §7, RFC 5761 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// RTP (first byte 128–191, second byte outside the RTCP range).
    Rtp,
    /// RTCP (first byte 128–191, packet type 192–223: SR 200, RR 201, SDES 202, BYE 203, APP 204,
    /// feedback 205/206, XR 207 and the rest of the range RFC 5761 reserves).
    Rtcp,
    /// STUN (first byte 0–3), e.g. ICE connectivity checks or keep-alives.
    Stun,
    /// DTLS (first byte 20–63).
    Dtls,
    /// Anything else, including datagrams under two bytes.
    Unknown,
}

/// Classifies a datagram received on an RTP port so each kind can be handled and counted apart.
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(20..=63) => PacketKind::Dtls,
        Some(128..=191) => match buf.get(1) {
            // RFC 5761 §4: RTCP packet types 192–223 collide with RTP PT 64–95 with the marker
            // set, which is why those payload types are never used for RTP.
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

/// Compares two sequence numbers modulo 2^16: true when `a` comes after `b` (RFC 3550 A.1).
pub fn sequence_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, rest_len: usize) -> Vec<u8> {
        let mut p = vec![first, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xDE, 0xAD, 0xBE, 0xEF];
        p.extend(std::iter::repeat_n(0xAB, rest_len));
        p
    }

    #[test]
    fn parses_a_plain_packet() {
        let mut p = packet(0x80, 160);
        p[1] = 0x80 | 8;
        let rtp = RtpPacket::parse(&p).unwrap();
        assert!(rtp.marker);
        assert_eq!(rtp.payload_type, 8);
        assert_eq!(rtp.sequence, 0x1234);
        assert_eq!(rtp.timestamp, 320);
        assert_eq!(rtp.ssrc, 0xDEAD_BEEF);
        assert_eq!(rtp.payload.len(), 160);
        assert_eq!(rtp.csrc_count(), 0);
        assert_eq!(rtp.extension, None);
        assert_eq!(rtp.padding, 0);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut p = packet(0x80 | 0x20 | 0x10 | 2, 0);
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // two CSRCs
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // one-word extension
        p.extend_from_slice(&[9, 9, 9]); // payload
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let rtp = RtpPacket::parse(&p).unwrap();
        assert_eq!(rtp.csrcs().collect::<Vec<_>>(), vec![1, 2]);
        let ext = rtp.extension.unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[1, 2, 3, 4]);
        assert_eq!(rtp.payload, &[9, 9, 9]);
        assert_eq!(rtp.padding, 3);
    }

    #[test]
    fn rejects_each_bad_input() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort { len: 11 }));
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(RtpPacket::parse(&packet(0x40, 4)), Err(RtpError::WrongVersion { version: 1 }));
        assert_eq!(
            RtpPacket::parse(&packet(0x80 | 3, 8)),
            Err(RtpError::CsrcPastEnd { count: 3, len: 20 })
        );
        // X bit with no room for the extension word.
        assert_eq!(RtpPacket::parse(&packet(0x90, 2)), Err(RtpError::ExtensionPastEnd { len: 14 }));
        // Extension word claiming 2 words of data, only one present.
        let mut p = packet(0x90, 0);
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 1, 2, 3, 4]);
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::ExtensionPastEnd { len: 20 }));
        // Padding count of zero and padding larger than the payload.
        let mut p = packet(0xA0, 4);
        *p.last_mut().unwrap() = 0;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadPadding { padding: 0, available: 4 }));
        *p.last_mut().unwrap() = 5;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadPadding { padding: 5, available: 4 }));
        // Padding that eats the whole payload is valid.
        *p.last_mut().unwrap() = 4;
        assert_eq!(RtpPacket::parse(&p).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn builder_round_trips() {
        let header = RtpHeader {
            marker: true,
            payload_type: 101,
            sequence: 65535,
            timestamp: u32::MAX,
            ssrc: 7,
        };
        let bytes = header.to_packet(&[1, 2, 3]);
        let parsed = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(parsed.header(), header);
        assert_eq!(parsed.payload, &[1, 2, 3]);
        let mut small = [0u8; 14];
        assert_eq!(
            header.write(&[1, 2, 3], &mut small),
            Err(RtpError::BufferTooSmall { needed: 15, capacity: 14 })
        );
        let mut big = [0u8; 64];
        assert_eq!(header.write(&[1, 2, 3], &mut big), Ok(15));
        assert_eq!(&big[..15], &bytes[..]);
    }

    #[test]
    fn classifies_rfc7983_ranges() {
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun);
        assert_eq!(classify(&[22, 0xFE]), PacketKind::Dtls);
        assert_eq!(classify(&[0x80, 0]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 8]), PacketKind::Rtp);
        assert_eq!(classify(&[0x81, 200]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 204]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0xFF, 0]), PacketKind::Unknown);
    }

    #[test]
    fn sequence_comparison_wraps() {
        assert!(sequence_newer(1, 0));
        assert!(sequence_newer(0, 65535));
        assert!(!sequence_newer(65535, 0));
        assert!(!sequence_newer(5, 5));
    }
}
