//! The RFC 4475 / RFC 5118 torture corpus sent over UDP to a running daemon: each file gets exactly
//! the disposition of `tests/data/TORTURE.md`, with policy applied as a hotline would (a valid
//! INVITE for a number that is not ours gets 404, OPTIONS gets 200, a REGISTER is challenged).
//! One fresh daemon per file, because the corpus reuses branches across files and a live daemon would
//! rightly treat a repeated branch as a retransmission.

mod support;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use support::daemon::TestDaemon;

/// What the daemon must send back: the final status, or nothing (`None`: dropped and counted).
const EXPECTED: &[(&str, Option<u16>)] = &[
    // §3.1.1: valid messages, answered as valid requests (policy: not our number → 404).
    ("rfc4475/wsinv.dat", Some(481)), // To carries a tag: an in-dialog request for no dialog
    ("rfc4475/esc01.dat", Some(404)),
    ("rfc4475/escnull.dat", Some(401)),
    ("rfc4475/lwsdisp.dat", Some(200)),
    ("rfc4475/longreq.dat", Some(404)),
    ("rfc4475/semiuri.dat", Some(200)),
    ("rfc4475/transports.dat", Some(200)),
    ("rfc4475/intmeth.dat", Some(501)),
    ("rfc4475/esc02.dat", Some(501)),
    ("rfc4475/mpart01.dat", Some(405)),
    ("rfc4475/unreason.dat", None), // a response matching nothing
    ("rfc4475/noreason.dat", None),
    ("rfc4475/dblreq.dat", Some(401)), // the first message; trailing octets ignored
    // §3.1.2: invalid messages.
    ("rfc4475/badinv01.dat", None), // its Via is unusable: no response can be routed
    ("rfc4475/clerr.dat", Some(400)),
    ("rfc4475/scalar02.dat", Some(400)),
    ("rfc4475/quotbal.dat", Some(400)),
    ("rfc4475/lwsruri.dat", Some(400)),
    ("rfc4475/mismatch01.dat", Some(400)),
    ("rfc4475/escruri.dat", Some(400)),
    ("rfc4475/badaspec.dat", Some(400)),
    ("rfc4475/lwsstart.dat", Some(404)), // accepted leniently: the meaning is unambiguous
    ("rfc4475/trws.dat", Some(200)),     // accepted leniently
    ("rfc4475/baddn.dat", Some(200)),    // accepted leniently
    ("rfc4475/regbadct.dat", Some(400)), // refused: the Contact's meaning is ambiguous
    ("rfc4475/baddate.dat", Some(404)),  // Date does not matter to us
    ("rfc4475/ltgtruri.dat", Some(400)),
    ("rfc4475/ncl.dat", Some(400)),
    ("rfc4475/scalarlg.dat", None),
    ("rfc4475/badvers.dat", Some(505)),
    ("rfc4475/mismatch02.dat", Some(501)),
    ("rfc4475/bigcode.dat", None),
    // §3.2 / §3.3 / §3.4.
    ("rfc4475/badbranch.dat", Some(200)), // RFC 2543-style matching
    ("rfc4475/insuf.dat", Some(400)),
    ("rfc4475/unkscm.dat", Some(416)),
    ("rfc4475/novelsc.dat", Some(416)),
    ("rfc4475/unksm2.dat", Some(400)),
    ("rfc4475/bext01.dat", Some(420)),
    ("rfc4475/invut.dat", Some(415)),
    ("rfc4475/regaut01.dat", Some(401)),
    ("rfc4475/multi01.dat", Some(400)),
    ("rfc4475/mcl01.dat", Some(400)),
    ("rfc4475/bcast.dat", None),
    ("rfc4475/zeromf.dat", Some(200)), // Max-Forwards 0 addressed to us: processed
    ("rfc4475/cparam01.dat", Some(401)),
    ("rfc4475/cparam02.dat", Some(401)),
    ("rfc4475/regescrt.dat", Some(401)),
    ("rfc4475/sdp01.dat", Some(406)),
    ("rfc4475/inv2543.dat", Some(404)),
    // RFC 5118.
    ("rfc5118/ipv6-good", Some(401)),
    ("rfc5118/port-ambiguous", Some(401)),
    ("rfc5118/port-unambiguous", Some(401)),
    ("rfc5118/via-received-param-with-delim", Some(481)), // a BYE for no dialog
    ("rfc5118/via-received-param-no-delim", Some(200)),
    ("rfc5118/ipv6-in-sdp", Some(404)),
    ("rfc5118/mult-ip-in-header", Some(481)),
    ("rfc5118/mult-ip-in-sdp", Some(404)),
    ("rfc5118/ipv4-mapped-ipv6", Some(404)),
    ("rfc5118/ipv6-correct-abnf-2-colons", Some(200)),
    ("rfc5118/ipv6-bad", Some(400)),
    ("rfc5118/ipv6-bug-abnf-3-colons", Some(400)),
];

/// Sends `bytes` and returns the status of the first final response, if any comes within 300 ms.
fn final_status(daemon: &TestDaemon, bytes: &[u8]) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(bytes, daemon.sip_udp()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut buf = [0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        let Ok(n) = socket.recv(&mut buf) else { break };
        let status: u16 = std::str::from_utf8(&buf[8..n.min(11)]).ok()?.parse().ok()?;
        if status >= 200 {
            return Some(status);
        }
    }
    None
}

#[test]
fn every_corpus_file_gets_its_disposition_from_a_live_daemon() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut listed: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    listed.sort();
    let mut on_disk = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(data.join(dir)).unwrap() {
            on_disk.push(format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    on_disk.sort();
    assert_eq!(listed, on_disk, "every corpus file has an expected disposition");

    let mut wrong = Vec::new();
    for (file, want) in EXPECTED {
        let daemon = TestDaemon::start();
        let bytes = std::fs::read(data.join(file)).unwrap();
        let got = final_status(&daemon, &bytes);
        if got != *want {
            wrong.push(format!("{file}: want {want:?}, got {got:?}"));
        }
        // Whatever it was sent, the daemon still answers a valid OPTIONS.
        let ping =
            b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKping\r\n\
From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(final_status(&daemon, ping), Some(200), "daemon unhealthy after {file}");
    }
    assert!(wrong.is_empty(), "dispositions differ:\n{}", wrong.join("\n"));
}
