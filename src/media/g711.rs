//! G.711 (ITU-T G.711) µ-law and A-law companding, the wire layer of media.
//!
//! Decoding and µ-law↔A-law transcoding go through 256-entry tables built at compile time, so the
//! relay's transcoding step is one table lookup per byte. Encoding follows the segment search of
//! the ITU reference (the same arithmetic as the public-domain Sun `g711.c`), and is used once per
//! prompt at load time and by test tools, never per relayed packet.

/// A G.711 law, named as SDP and RFC 3551 name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law (`PCMU/8000`, static payload type 0): North America and Japan, most softphones.
    Pcmu,
    /// A-law (`PCMA/8000`, static payload type 8): Europe, Asia and Vietnamese trunks.
    Pcma,
}

impl Codec {
    /// The RFC 3551 static payload type: 0 for PCMU, 8 for PCMA.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec RFC 3551 assigns to a static payload type, if it is one of the two laws.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding name used in `a=rtpmap` (`PCMU` or `PCMA`).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for an `a=rtpmap` encoding name (case-insensitive, as RFC 4566 §6 asks).
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The byte this law uses for digital silence (a decoded 0 or ±8): padding for short frames.
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => ULAW_SILENCE,
            Codec::Pcma => ALAW_SILENCE,
        }
    }

    /// Encodes one linear 16-bit sample in this law.
    pub const fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }

    /// Decodes one byte of this law to a linear 16-bit sample.
    pub const fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ULAW_DECODE[byte as usize],
            Codec::Pcma => ALAW_DECODE[byte as usize],
        }
    }
}

/// µ-law silence: 0xFF decodes to 0.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law silence: 0xD5 decodes to +8, the smallest magnitude A-law can carry.
pub const ALAW_SILENCE: u8 = 0xD5;

/// Bias added before the µ-law segment search (G.711 §3.2, 33 in 14-bit units, 0x84 in 16-bit).
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude µ-law can encode once the bias is added.
const ULAW_CLIP: i32 = 8159;
/// Upper ends of the eight µ-law segments, in 14-bit units after the bias.
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of the eight A-law segments, in 13-bit units.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Encodes a linear 16-bit sample to µ-law. Only the top 14 bits count, as in G.711.
pub const fn ulaw_encode(sample: i16) -> u8 {
    let mut value = (sample as i32) >> 2;
    // µ-law stores the complement, so the mask flips all bits for positive samples.
    let mask: u8 = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    if value > ULAW_CLIP {
        value = ULAW_CLIP;
    }
    value += ULAW_BIAS >> 2;
    let seg = segment(value, &ULAW_SEGMENT_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((seg as i32) << 4) | ((value >> (seg + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// Encodes a linear 16-bit sample to A-law. Only the top 13 bits count, as in G.711.
pub const fn alaw_encode(sample: i16) -> u8 {
    let mut value = (sample as i32) >> 3;
    // A-law inverts the even bits (0x55) and carries the sign in bit 7 (set for positive).
    let mask: u8 = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let seg = segment(value, &ALAW_SEGMENT_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = if seg < 2 { (value >> 1) & 0x0F } else { (value >> seg) & 0x0F };
    (((seg as i32) << 4) | mantissa) as u8 ^ mask
}

const fn ulaw_decode_one(byte: u8) -> i16 {
    let u = !byte;
    let mut t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 { (ULAW_BIAS - t) as i16 } else { (t - ULAW_BIAS) as i16 }
}

const fn alaw_decode_one(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_one(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_decode() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_one(i as u8);
        i += 1;
    }
    table
}

const fn build_ulaw_to_alaw() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_encode(ulaw_decode_one(i as u8));
        i += 1;
    }
    table
}

const fn build_alaw_to_ulaw() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_encode(alaw_decode_one(i as u8));
        i += 1;
    }
    table
}

/// µ-law byte → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
/// A-law byte → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_alaw_decode();
/// µ-law byte → A-law byte (decode then encode, precomputed).
pub static ULAW_TO_ALAW: [u8; 256] = build_ulaw_to_alaw();
/// A-law byte → µ-law byte (decode then encode, precomputed).
pub static ALAW_TO_ULAW: [u8; 256] = build_alaw_to_ulaw();

/// Decodes one µ-law byte to a linear sample.
pub fn ulaw_decode(byte: u8) -> i16 {
    ULAW_DECODE[usize::from(byte)]
}

/// Decodes one A-law byte to a linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    ALAW_DECODE[usize::from(byte)]
}

/// Transcodes a payload from one law to the other in place; a no-op when `from == to`.
pub fn transcode_in_place(from: Codec, to: Codec, payload: &mut [u8]) {
    let table = match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
        (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
        _ => return,
    };
    for byte in payload {
        *byte = table[usize::from(*byte)];
    }
}

/// Appends `payload` transcoded from `from` to `to` onto `out` (copied unchanged when equal).
pub fn transcode_into(from: Codec, to: Codec, payload: &[u8], out: &mut Vec<u8>) {
    let table = match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
        (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
        _ => {
            out.extend_from_slice(payload);
            return;
        }
    };
    out.extend(payload.iter().map(|b| table[usize::from(*b)]));
}

/// Encodes linear samples in `codec`, appending one byte per sample to `out`.
pub fn encode_samples(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|s| codec.encode(*s)));
}

/// Decodes a `codec` payload, appending one linear sample per byte to `out`.
pub fn decode_payload(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|b| codec.decode(*b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips_through_linear() {
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(b)), b, "A-law {b:#04x}");
            // µ-law has two zeros; negative zero (0x7F) re-encodes as positive zero.
            let expected = if b == 0x7F { 0xFF } else { b };
            assert_eq!(ulaw_encode(ulaw_decode(b)), expected, "µ-law {b:#04x}");
        }
    }

    #[test]
    fn decode_tables_are_odd_symmetric_and_monotonic() {
        for b in 0..128u8 {
            assert_eq!(ULAW_DECODE[usize::from(b)], -ULAW_DECODE[usize::from(b | 0x80)]);
            assert_eq!(ALAW_DECODE[usize::from(b)], -ALAW_DECODE[usize::from(b | 0x80)]);
        }
        // Positive µ-law codes 0xFF down to 0x80 grow in magnitude.
        for b in 0x80..0xFFu8 {
            assert!(ulaw_decode(b) > ulaw_decode(b + 1));
        }
    }

    #[test]
    fn encoding_error_is_within_one_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            // The quantisation step at the top segment is 1024 (µ) / 1024 (A); half of that
            // plus the clip region for µ-law.
            let clip = if s.unsigned_abs() > 32124 { 700 } else { 0 };
            assert!((i32::from(u) - i32::from(s)).abs() <= 516 + clip, "µ {s} -> {u}");
            assert!((i32::from(a) - i32::from(s)).abs() <= 516, "A {s} -> {a}");
        }
    }

    #[test]
    fn transcoding_tables_match_decode_then_encode() {
        for b in 0..=255u8 {
            assert_eq!(ULAW_TO_ALAW[usize::from(b)], alaw_encode(ulaw_decode(b)));
            assert_eq!(ALAW_TO_ULAW[usize::from(b)], ulaw_encode(alaw_decode(b)));
        }
        assert_eq!(ULAW_TO_ALAW[usize::from(ULAW_SILENCE)], ALAW_SILENCE);
        assert_eq!(ALAW_TO_ULAW[usize::from(ALAW_SILENCE)], 0xFE);
        // A round trip µ→A→µ stays within one µ-law step.
        for b in 0..=255u8 {
            let back = ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(b)])];
            let delta = i32::from(ulaw_decode(back)) - i32::from(ulaw_decode(b));
            assert!(delta.abs() <= 1024, "{b:#04x} -> {back:#04x}");
        }
    }

    #[test]
    fn transcode_helpers_agree() {
        let frame: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        transcode_into(Codec::Pcmu, Codec::Pcma, &frame, &mut out);
        let mut in_place = frame.clone();
        transcode_in_place(Codec::Pcmu, Codec::Pcma, &mut in_place);
        assert_eq!(out, in_place);
        out.clear();
        transcode_into(Codec::Pcma, Codec::Pcma, &frame, &mut out);
        assert_eq!(out, frame);
    }
}
