//! DTMF over RTP (RFC 4733 telephone-event), wire and protocol layer, sans-IO: the 4-byte event
//! payload, and a detector that turns the stream of event packets into one key press each.
//!
//! An RFC 4733 sender repeats an event every packet while the key is held, with the same RTP
//! timestamp (the event start), and sends the final (end bit) packet three times. The detector
//! reports a key once, at its first packet, keyed by SSRC and timestamp, so the urgent-lane menu
//! ("press 1") reacts at once and a repeated end packet never counts twice.

use thiserror::Error;

/// Length of one telephone-event block (RFC 4733 §2.3).
pub const TELEPHONE_EVENT_LEN: usize = 4;

/// A telephone-event payload that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TelephoneEventError {
    /// Fewer than the 4 bytes of one event block.
    #[error("telephone-event payload of {len} bytes, expected at least 4")]
    TooShort {
        /// Payload length.
        len: usize,
    },
}

/// One RFC 4733 §2.3 event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D` (RFC 4733 §3.2).
    pub event: u8,
    /// The E bit: this is (a repetition of) the final packet of the event.
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in timestamp units (1/8000 s at 8 kHz).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload (later blocks are RFC 2198 redundancy).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, TelephoneEventError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(TelephoneEventError::TooShort { len: payload.len() });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Writes the event block (the reserved bit is sent as zero).
    pub fn to_bytes(&self) -> [u8; TELEPHONE_EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The DTMF key this event stands for, if it is one of the 16 DTMF events.
    pub fn digit(&self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }
}

/// Turns telephone-event packets of one leg into key presses, each reported once.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    /// (SSRC, RTP timestamp) of the last event reported: RFC 4733 §2.5.1.2 makes these the identity
    /// of one event across its repetitions.
    last: Option<(u32, u32)>,
}

impl DtmfDetector {
    /// A detector that has seen nothing yet.
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// Feeds one telephone-event packet; returns the key when this packet starts a new event.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, event: &TelephoneEvent) -> Option<char> {
        if self.last == Some((ssrc, timestamp)) {
            return None;
        }
        self.last = Some((ssrc, timestamp));
        event.digit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_an_event() {
        let e = TelephoneEvent::parse(&[1, 0x80 | 10, 0x03, 0x20]).unwrap();
        assert_eq!(e, TelephoneEvent { event: 1, end: true, volume: 10, duration: 800 });
        assert_eq!(e.to_bytes(), [1, 0x8A, 0x03, 0x20]);
        assert_eq!(e.digit(), Some('1'));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(TelephoneEventError::TooShort { len: 3 })
        );
    }

    #[test]
    fn digits_cover_the_sixteen_keys() {
        let keys: String = (0..16)
            .filter_map(|event| {
                TelephoneEvent { event, end: false, volume: 0, duration: 0 }.digit()
            })
            .collect();
        assert_eq!(keys, "0123456789*#ABCD");
        let flash = TelephoneEvent::parse(&[16, 0, 0, 0]).unwrap();
        assert_eq!(flash.digit(), None);
    }

    #[test]
    fn detector_reports_each_press_once() {
        let mut d = DtmfDetector::new();
        let start = TelephoneEvent::parse(&[1, 10, 0, 160]).unwrap();
        let end = TelephoneEvent::parse(&[1, 0x8A, 3, 0x20]).unwrap();
        assert_eq!(d.on_packet(9, 1000, &start), Some('1'));
        assert_eq!(d.on_packet(9, 1000, &start), None);
        for _ in 0..3 {
            assert_eq!(d.on_packet(9, 1000, &end), None);
        }
        // The same key pressed again starts at a new timestamp.
        assert_eq!(d.on_packet(9, 5000, &start), Some('1'));
    }
}
