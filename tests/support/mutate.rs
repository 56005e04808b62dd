//! Grammar-aware mutation of SIP messages, for black-box replay against a running daemon. Sans-IO
//! and deterministic: a seeded xorshift generator, seed messages in, mutated bytes out.
//!
//! A message is split into its start line, header lines and body; each mutation works on one of
//! these parts the way a broken or hostile peer would: every start-line field, any header's name
//! or value, duplicated and missing mandatory headers, Content-Length lies, bad UTF-8 and NUL
//! bytes, separators (LF-only, missing blank line, folded lines, stray whitespace), huge values,
//! and plain byte flips, insertions and truncations.

/// xorshift64* (Vigna): small, fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced: xorshift must not start at zero).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `num`/`den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den as usize) < num as usize
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A message cut into its grammar's parts. Lines keep no line ending; `eol` is put back between
/// them when printed, so separators can be mutated as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The start line's fields (request: method, Request-URI, version; response: version, code,
    /// reason), split on single spaces.
    pub start: Vec<Vec<u8>>,
    /// Header lines as (name, value); a line without a colon keeps its text as the name.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The line ending printed after every line.
    pub eol: Vec<u8>,
    /// Whether the blank line before the body is printed.
    pub blank_line: bool,
    /// The body.
    pub body: Vec<u8>,
}

impl Parts {
    /// Splits `bytes` (CRLF or LF line endings).
    pub fn parse(bytes: &[u8]) -> Parts {
        let (head, body) = match find(bytes, b"\r\n\r\n") {
            Some(i) => (&bytes[..i], &bytes[i + 4..]),
            None => match find(bytes, b"\n\n") {
                Some(i) => (&bytes[..i], &bytes[i + 2..]),
                None => (bytes, &[][..]),
            },
        };
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let start = lines.next().unwrap_or_default().split(|&b| b == b' ').map(<[u8]>::to_vec);
        let mut start: Vec<Vec<u8>> = start.collect();
        // The reason phrase may hold spaces: keep at most three fields.
        if start.len() > 3 {
            let rest = start.split_off(2).join(&b' ');
            start.push(rest);
        }
        let headers = lines
            .map(|l| match l.iter().position(|&b| b == b':') {
                Some(i) => (l[..i].to_vec(), trim_start(&l[i + 1..]).to_vec()),
                None => (l.to_vec(), Vec::new()),
            })
            .collect();
        Parts { start, headers, eol: b"\r\n".to_vec(), blank_line: true, body: body.to_vec() }
    }

    /// The bytes, with the line ending `eol` after every line.
    pub fn print(&self) -> Vec<u8> {
        let mut out = self.start.join(&b' ');
        out.extend_from_slice(&self.eol);
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            if !value.is_empty() || !name.contains(&b' ') {
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
            }
            out.extend_from_slice(&self.eol);
        }
        if self.blank_line {
            out.extend_from_slice(&self.eol);
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// The index of the first header named `name` (any case; compact forms not included).
    pub fn header(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Sets every `name` header to `value` (adds one when there is none).
    pub fn set(&mut self, name: &str, value: &[u8]) {
        let mut found = false;
        for (n, v) in &mut self.headers {
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                *v = value.to_vec();
                found = true;
            }
        }
        if !found {
            self.headers.push((name.as_bytes().to_vec(), value.to_vec()));
        }
    }

    /// Makes the message unique (`tag`): a new Call-ID, and a new branch in the top Via, so a
    /// live daemon takes it for a new transaction and not a retransmission.
    pub fn personalise(&mut self, tag: &str) {
        for (name, value) in &mut self.headers {
            let lower = name.to_ascii_lowercase();
            if lower == b"call-id" || lower == b"i" {
                *value = format!("replay-{tag}@mutate").into_bytes();
            }
        }
        let via = self
            .headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(b"via") || n.eq_ignore_ascii_case(b"v"));
        if let Some(i) = via {
            let value = &self.headers[i].1;
            let text = String::from_utf8_lossy(value).into_owned();
            let new = match text.find("branch=") {
                Some(at) => {
                    let end = text[at..].find([';', ',', ' ']).map_or(text.len(), |e| at + e);
                    format!("{}branch=z9hG4bK{tag}{}", &text[..at], &text[end..])
                }
                None => format!("{text};branch=z9hG4bK{tag}"),
            };
            self.headers[i].1 = new.into_bytes();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

/// The headers a request cannot do without (RFC 3261 §8.1.1), and Content-Length, which frames
/// streams.
pub const MANDATORY: &[&str] =
    &["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact", "Content-Length"];

/// Methods, real and not.
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "PUBLISH",
    "invite",
    "INV ITE",
    "",
    "GET",
    "Ιnvite",
    "!interesting-Method0123456789_*+`.%indeed'~",
];

/// Values that break numbers, lists and quoting.
const HOSTILE_VALUES: &[&str] = &[
    "",
    " ",
    "-1",
    "0",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1.5",
    "0x10",
    "\"",
    "\"unterminated",
    "<sip:",
    "<>",
    "<sip:a@b>>",
    "sip:",
    ";;;;",
    ",,,,",
    "=",
    "a=b=c;d==;=e",
    "<sip:a@[::1>",
    "<sip:a@[::1]:99999>",
    "sip:%00@x",
    "%",
    "%zz",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP :5060;branch=",
    "SIP/2.0/UDP [::1;branch=z9hG4bK",
    "1 INVITE INVITE",
    "INVITE 1",
    "Digest",
    "Digest realm=\"x\", nonce=, response=\"",
    "Digest username=\"\\\"\", uri=\"sip:x\", response=\"zz\", nc=zz, qop=auth, algorithm=SHA-999",
    "application/sdp; charset=\"",
    "\u{1F600}\u{1F600}",
];

/// One mutation applied to a message's parts (or its bytes).
fn mutate_once(rng: &mut Rng, p: &mut Parts) {
    match rng.below(16) {
        // Start-line fields.
        0 => {
            if p.start.is_empty() {
                p.start.push(Vec::new());
            }
            let field = rng.below(p.start.len());
            p.start[field] = match (field, rng.below(4)) {
                (0, 0 | 1) => rng.pick(METHODS).as_bytes().to_vec(),
                (2, 0) => rng
                    .pick(&["SIP/3.0", "sip/2.0", "SIP/2.", "SIP/2.0 ", "HTTP/1.1", "SIP/20"])
                    .as_bytes()
                    .to_vec(),
                (1, 0) => rng
                    .pick(&[
                        "sip:",
                        "111",
                        "sip:111@",
                        "sip:111@127.0.0.1:0",
                        "sip:111@127.0.0.1:99999",
                        "tel:111",
                        "tel:+84;x",
                        "http://111",
                        "sip:111@[::1",
                        "<sip:111@127.0.0.1>",
                        "sip:%31%31%31@127.0.0.1",
                        "sips:111@127.0.0.1;transport=tcp",
                        "sip:111@127.0.0.1;;;=;",
                    ])
                    .as_bytes()
                    .to_vec(),
                _ => hostile(rng),
            };
        }
        // A header's value.
        1 | 2 => {
            if let Some(i) = some_header(rng, p) {
                p.headers[i].1 = hostile(rng);
            }
        }
        // A header's value, edited inside: a byte removed, doubled or replaced by a delimiter.
        3 => {
            if let Some(i) = some_header(rng, p) {
                let v = &mut p.headers[i].1;
                if !v.is_empty() {
                    let at = rng.below(v.len());
                    match rng.below(3) {
                        0 => {
                            v.remove(at);
                        }
                        1 => v.insert(at, v[at]),
                        _ => v[at] = *rng.pick(b";,=<>\"\\:@ \t%[]"),
                    }
                }
            }
        }
        // A header's name: compact form, case, stray space before the colon, no colon.
        4 => {
            if let Some(i) = some_header(rng, p) {
                let name = &mut p.headers[i].0;
                *name = match rng.below(5) {
                    0 => name.to_ascii_lowercase(),
                    1 => [name.as_slice(), b" "].concat(),
                    2 => rng
                        .pick(&["i", "v", "f", "t", "m", "l", "c", "k", "s", "e", "x"])
                        .as_bytes()
                        .to_vec(),
                    3 => [b"X-".as_slice(), name].concat(),
                    _ => [name.as_slice(), b" missing colon"].concat(),
                };
            }
        }
        // A mandatory header missing.
        5 => {
            let name = rng.pick(MANDATORY);
            p.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        }
        // A mandatory header duplicated, with a different value.
        6 => {
            let name = rng.pick(MANDATORY);
            let value = match p.header(name) {
                Some(i) if rng.chance(1, 2) => {
                    let mut v = p.headers[i].1.clone();
                    v.extend_from_slice(b"x");
                    v
                }
                _ => hostile(rng),
            };
            let at = rng.below(p.headers.len() + 1);
            p.headers.insert(at, (name.as_bytes().to_vec(), value));
        }
        // Content-Length lies.
        7 => {
            let n = p.body.len();
            let lie = match rng.below(6) {
                0 => (n + 1 + rng.below(100)).to_string(),
                1 => n.saturating_sub(1 + rng.below(n.max(1))).to_string(),
                2 => "-5".into(),
                3 => "99999999999".into(),
                4 => format!("{n} {n}"),
                _ => "ten".into(),
            };
            p.set("Content-Length", lie.as_bytes());
        }
        // Encodings: bad UTF-8 or NUL bytes in a header value or the start line.
        8 => {
            let junk = *rng.pick::<&[u8]>(&[
                b"\xff\xfe".as_slice(),
                b"\xc3\x28",
                b"\0",
                b"\0\0\0\0",
                b"\xe2\x82",
                b"\xed\xa0\x80",
                b"\x1b[31m",
            ]);
            match some_header(rng, p) {
                Some(i) if rng.chance(3, 4) => {
                    let v = &mut p.headers[i].1;
                    let at = rng.below(v.len() + 1);
                    v.splice(at..at, junk.iter().copied());
                }
                _ => {
                    if let Some(f) = p.start.first_mut() {
                        f.extend_from_slice(junk);
                    }
                }
            }
        }
        // Separators.
        9 => match rng.below(5) {
            0 => p.eol = b"\n".to_vec(),
            1 => p.eol = b"\r".to_vec(),
            2 => p.blank_line = false,
            3 => {
                // A folded header line (RFC 3261 §7.3.1: continuation lines start with whitespace).
                if let Some(i) = some_header(rng, p) {
                    let v = &mut p.headers[i].1;
                    let at = v.iter().position(|&b| b == b';' || b == b',').unwrap_or(v.len());
                    v.splice(at..at, b"\r\n   \t".iter().copied());
                }
            }
            _ => {
                if let Some(i) = some_header(rng, p) {
                    let name = &mut p.headers[i].0;
                    name.splice(0..0, b" \t".iter().copied());
                }
            }
        },
        // Huge values: a very long header, or a great many headers.
        10 => {
            if rng.chance(1, 2) {
                let len = *rng.pick(&[1_000, 8_000, 40_000, 70_000]);
                let value = vec![b'a' + rng.below(26) as u8; len];
                match some_header(rng, p) {
                    Some(i) => p.headers[i].1 = value,
                    None => p.headers.push((b"X-Huge".to_vec(), value)),
                }
            } else {
                let name = rng.pick(&["Via", "Route", "Record-Route", "X-Many", "Contact"]);
                let value = b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKmany".to_vec();
                let n = *rng.pick(&[100, 1_000, 3_000]);
                for _ in 0..n {
                    p.headers.push((name.as_bytes().to_vec(), value.clone()));
                }
            }
        }
        // The body: emptied, garbage, or a broken SDP.
        11 => {
            p.body = match rng.below(4) {
                0 => Vec::new(),
                1 => (0..rng.below(500)).map(|_| rng.next_u64() as u8).collect(),
                2 => b"v=0\r\nm=audio 99999 RTP/AVP 0\r\nc=IN IP4 \r\n".to_vec(),
                _ => b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
                       m=audio 0 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"
                    .to_vec(),
            };
        }
        // Header order shuffled: two lines swapped.
        12 => {
            if p.headers.len() > 1 {
                let (a, b) = (rng.below(p.headers.len()), rng.below(p.headers.len()));
                p.headers.swap(a, b);
            }
        }
        // Whole-line deletion (any header, start line kept).
        13 => {
            if !p.headers.is_empty() {
                let i = rng.below(p.headers.len());
                p.headers.remove(i);
            }
        }
        // Leading junk before the start line.
        14 => {
            let lead = *rng.pick::<&[u8]>(&[b"\r\n".as_slice(), b" ", b"\r\n\r\n\r\n", b"\t"]);
            if let Some(f) = p.start.first_mut() {
                f.splice(0..0, lead.iter().copied());
            }
        }
        // Max-Forwards and CSeq extremes.
        _ => {
            if rng.chance(1, 2) {
                let v = rng.pick(&["0", "255", "256", "-1", "70 70", ""]);
                p.set("Max-Forwards", v.as_bytes());
            } else {
                let method = p.start.first().cloned().unwrap_or_default();
                let num = rng.pick(&["0", "2147483647", "2147483648", "4294967296", "-1", ""]);
                let mut v = num.as_bytes().to_vec();
                v.push(b' ');
                v.extend_from_slice(&method);
                p.set("CSeq", &v);
            }
        }
    }
}

fn some_header(rng: &mut Rng, p: &Parts) -> Option<usize> {
    (!p.headers.is_empty()).then(|| rng.below(p.headers.len()))
}

fn hostile(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => (0..1 + rng.below(40)).map(|_| rng.next_u64() as u8).collect(),
        _ => rng.pick(HOSTILE_VALUES).as_bytes().to_vec(),
    }
}

/// Byte-level damage to a printed message: flipped bits, inserted or removed bytes, truncation.
fn damage(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let at = rng.below(bytes.len());
            let n = 1 + rng.below(16);
            bytes.splice(at..at, (0..n).map(|_| rng.next_u64() as u8));
        }
        2 => {
            let at = rng.below(bytes.len());
            let n = (1 + rng.below(16)).min(bytes.len() - at);
            bytes.drain(at..at + n);
        }
        _ => bytes.truncate(rng.below(bytes.len())),
    }
}

/// `seed` made unique by `tag` (see [`Parts::personalise`]), then given one to three mutations;
/// one time in five, byte-level damage on top.
pub fn mutate(rng: &mut Rng, seed: &[u8], tag: &str) -> Vec<u8> {
    let mut parts = Parts::parse(seed);
    parts.personalise(tag);
    for _ in 0..1 + rng.below(3) {
        mutate_once(rng, &mut parts);
    }
    let mut bytes = parts.print();
    if rng.chance(1, 5) {
        damage(rng, &mut bytes);
    }
    bytes
}

/// `bytes` with every IP address literal that is not loopback replaced by a loopback one, so
/// that nothing the daemon sends in reply (responses, a BYE to a Contact, RTP to an SDP address)
/// ever leaves the machine, whatever the mutations made of the addresses.
pub fn loopback_only(bytes: &[u8]) -> Vec<u8> {
    let ipv4 = |run: &[u8]| {
        let text = std::str::from_utf8(run).ok()?;
        let fields: Vec<&str> = text.split('.').collect();
        (fields.len() == 4 && fields.iter().all(|f| !f.is_empty()))
            .then_some(text.starts_with("127."))
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let is_run = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
        if !is_run(bytes[i]) || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let end = i + bytes[i..].iter().take_while(|&&b| is_run(b)).count();
        let run = &bytes[i..end];
        let colons = run.iter().filter(|&&b| b == b':').count();
        let digits_and_dots = run.iter().all(|b| b.is_ascii_digit() || *b == b'.');
        if digits_and_dots && ipv4(run) == Some(false) {
            out.extend_from_slice(b"127.0.0.1");
        } else if colons >= 2 && run != b"::1" {
            out.extend_from_slice(b"::1");
        } else if colons == 1 && !digits_and_dots {
            // host:port, or an IPv4 with a port: keep the port, check the address.
            let at = run.iter().position(|&b| b == b':').unwrap_or(0);
            let (host, port) = run.split_at(at);
            match ipv4(host) {
                Some(false) => {
                    out.extend_from_slice(b"127.0.0.1");
                    out.extend_from_slice(port);
                }
                _ => out.extend_from_slice(run),
            }
        } else {
            out.extend_from_slice(run);
        }
        i = end;
    }
    out
}
