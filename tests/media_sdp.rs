//! SDP offer/answer with the offers real peers send: SIPp's default uac, baresip and Linphone.

use std::net::{IpAddr, SocketAddr};

use tongdai::media::g711::Codec;
use tongdai::sip::sdp::{
    Direction, LocalOrigin, NoCommonCodec, SdpError, SessionDescription, answer, negotiate_answer,
    offer,
};

/// SIPp 3.6's built-in uac scenario, with its keywords filled in.
const SIPP_UAC: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// baresip 1.0 with the g711 module only.
const BARESIP: &str = "v=0\r\n\
o=- 1912283851 3094529372 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10126 RTP/AVP 0 8 101\r\n\
b=AS:64\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2719458215 cname:2b3d5a3c-1f2e-4a41-9c37-7d1a2a3b4c5d\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

/// Linphone desktop: opus and speex first, three telephone-event clock rates, a video stream.
const LINPHONE: &str = "v=0\r\n\
o=agent1 3151 2406 IN IP4 192.168.1.23\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.23\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n\
m=video 9078 RTP/AVP 96\r\n\
a=rtpmap:96 VP8/90000\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn answers_sipp_with_pcmu_and_no_dtmf() {
    let offer = SessionDescription::parse(SIPP_UAC).unwrap();
    let a = answer(&offer, &[Codec::Pcma, Codec::Pcmu], ip("10.0.0.1"), 20000).unwrap();
    assert_eq!(a.audio.codec, Codec::Pcmu);
    assert_eq!(a.audio.payload_type, 0);
    assert_eq!(a.audio.telephone_event, None);
    assert_eq!(a.audio.remote, Some("127.0.0.1:6000".parse().unwrap()));
    assert_eq!(a.audio.direction, Direction::SendRecv);
    let text = a.sdp.to_string();
    assert!(text.contains("c=IN IP4 10.0.0.1\r\n"), "{text}");
    assert!(text.contains("m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"), "{text}");
    assert!(text.contains("a=ptime:20\r\na=sendrecv\r\n"), "{text}");
    // What we print, we parse back identically.
    assert_eq!(SessionDescription::parse(&text).unwrap(), a.sdp);
}

#[test]
fn answers_baresip_by_our_preference_keeping_dtmf_and_pts() {
    let offer = SessionDescription::parse(BARESIP).unwrap();
    let a = answer(&offer, &[Codec::Pcma, Codec::Pcmu], ip("10.0.0.1"), 20002).unwrap();
    assert_eq!((a.audio.codec, a.audio.payload_type), (Codec::Pcma, 8));
    assert_eq!(a.audio.telephone_event, Some(101));
    assert_eq!(a.audio.remote_ptime, Some(20));
    let m = &a.sdp.media[0];
    assert_eq!(m.formats, ["8", "101"]);
    assert_eq!(m.fmtp(101), Some("0-15"));
    let format = a.audio.leg_format();
    assert_eq!(
        (format.codec, format.payload_type, format.telephone_event),
        (Codec::Pcma, 8, Some(101))
    );
}

#[test]
fn answers_linphone_skipping_opus_and_rejecting_video() {
    let offer = SessionDescription::parse(LINPHONE).unwrap();
    assert_eq!(offer.attributes[0].name, "rtcp-xr");
    let audio = offer.audio().unwrap();
    assert_eq!(audio.codec(96), None, "opus is not ours");
    assert_eq!(audio.codec(18), None, "G.729 is not ours");
    assert_eq!(audio.telephone_event(), Some(100), "only the 8 kHz telephone-event");
    let a = answer(&offer, &[Codec::Pcmu, Codec::Pcma], ip("10.0.0.1"), 20004).unwrap();
    assert_eq!(
        (a.audio.codec, a.audio.payload_type, a.audio.telephone_event),
        (Codec::Pcmu, 0, Some(100))
    );
    assert_eq!(a.sdp.media.len(), 2, "one answer line per offer line");
    assert_eq!(a.sdp.media[0].formats, ["0", "100"]);
    assert_eq!(a.sdp.media[0].fmtp(100), Some("0-16"), "no fmtp offered: we say what we take");
    assert_eq!(a.sdp.media[1].media, "video");
    assert_eq!(a.sdp.media[1].port, 0);
    assert_eq!(a.sdp.to_string().lines().filter(|l| l.starts_with("m=")).count(), 2);
}

#[test]
fn no_common_codec_is_488() {
    let g729 = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\n\
                a=rtpmap:101 telephone-event/8000\r\n";
    let offer = SessionDescription::parse(g729).unwrap();
    assert_eq!(answer(&offer, &[Codec::Pcmu, Codec::Pcma], ip("10.0.0.1"), 1), Err(NoCommonCodec));
    // PCMU offered, but we were asked for PCMA only.
    let offer = SessionDescription::parse(SIPP_UAC).unwrap();
    assert_eq!(answer(&offer, &[Codec::Pcma], ip("10.0.0.1"), 1), Err(NoCommonCodec));
    // Secure RTP only.
    let srtp = SIPP_UAC.replace("RTP/AVP", "RTP/SAVP");
    let offer = SessionDescription::parse(&srtp).unwrap();
    assert_eq!(answer(&offer, &[Codec::Pcmu], ip("10.0.0.1"), 1), Err(NoCommonCodec));
    // A PCMU rtpmap at 16 kHz is not G.711.
    let odd = SIPP_UAC.replace("PCMU/8000", "PCMU/16000");
    let offer = SessionDescription::parse(&odd).unwrap();
    assert_eq!(answer(&offer, &[Codec::Pcmu], ip("10.0.0.1"), 1), Err(NoCommonCodec));
}

#[test]
fn hold_offers_are_mirrored() {
    let sendonly = BARESIP.replace("a=sendrecv", "a=sendonly");
    let offer = SessionDescription::parse(&sendonly).unwrap();
    assert!(offer.is_hold());
    let a = answer(&offer, &[Codec::Pcmu], ip("10.0.0.1"), 1).unwrap();
    assert_eq!(a.audio.direction, Direction::RecvOnly);
    assert!(a.audio.is_held_by_peer());
    assert!(a.sdp.to_string().contains("a=recvonly\r\n"));

    let inactive = BARESIP.replace("a=sendrecv", "a=inactive");
    let a =
        answer(&SessionDescription::parse(&inactive).unwrap(), &[Codec::Pcmu], ip("10.0.0.1"), 1)
            .unwrap();
    assert_eq!(a.audio.direction, Direction::Inactive);

    // RFC 2543 hold: c=0.0.0.0, no direction attribute.
    let zero = SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let offer = SessionDescription::parse(&zero).unwrap();
    assert!(offer.is_hold());
    let a = answer(&offer, &[Codec::Pcmu], ip("10.0.0.1"), 1).unwrap();
    assert_eq!(a.audio.remote, None);
    assert_eq!(a.audio.direction, Direction::RecvOnly);

    // Session-level direction applies when the stream has none.
    let session_level = SIPP_UAC.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let offer = SessionDescription::parse(&session_level).unwrap();
    assert!(offer.is_hold());
    assert!(!SessionDescription::parse(SIPP_UAC).unwrap().is_hold());
}

#[test]
fn ipv6_and_media_level_connection() {
    let v6 = "v=0\no=- 7 7 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\n\
              m=audio 5004 RTP/AVP 8\nc=IN IP6 2001:db8::99\n";
    let offer = SessionDescription::parse(v6).unwrap();
    let a = answer(&offer, &[Codec::Pcmu, Codec::Pcma], ip("2001:db8::5"), 30000).unwrap();
    let expected: SocketAddr = "[2001:db8::99]:5004".parse().unwrap();
    assert_eq!(a.audio.remote, Some(expected));
    assert_eq!(a.audio.codec, Codec::Pcma, "static PT 8 without rtpmap");
    let text = a.sdp.to_string();
    assert!(text.contains("o=tongdai 0 0 IN IP6 2001:db8::5\r\n"), "{text}");
    assert!(text.contains("c=IN IP6 2001:db8::5\r\n"), "{text}");
}

#[test]
fn our_offer_and_the_agents_answer() {
    let mut origin = LocalOrigin::new(3_900_000_000);
    let mut sdp = offer(ip("10.0.0.1"), 20010, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
    origin.stamp(&mut sdp);
    let text = sdp.to_string();
    assert_eq!(
        text,
        "v=0\r\no=tongdai 3900000000 3900000000 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n\
         t=0 0\r\nm=audio 20010 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
         a=ptime:20\r\na=sendrecv\r\n"
    );
    // baresip answering our offer: echoes both laws and the events.
    let answered =
        BARESIP.replace("m=audio 10126 RTP/AVP 0 8 101", "m=audio 10126 RTP/AVP 8 0 101");
    let agent = negotiate_answer(&SessionDescription::parse(&answered).unwrap()).unwrap();
    assert_eq!(
        (agent.codec, agent.payload_type, agent.telephone_event),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!(agent.remote, Some("127.0.0.1:10126".parse().unwrap()));
    // A rejected stream is no answer we can use.
    let rejected = SIPP_UAC.replace("m=audio 6000", "m=audio 0");
    assert_eq!(
        negotiate_answer(&SessionDescription::parse(&rejected).unwrap()),
        Err(NoCommonCodec)
    );
}

#[test]
fn origin_version_moves_only_on_change() {
    let mut origin = LocalOrigin::new(100);
    let mut first = offer(ip("10.0.0.1"), 20010, &[Codec::Pcmu], Direction::SendRecv);
    origin.stamp(&mut first);
    assert_eq!(first.origin.session_version, 100);
    // A refresh (session timer re-INVITE) with the same body keeps the version.
    let mut same = offer(ip("10.0.0.1"), 20010, &[Codec::Pcmu], Direction::SendRecv);
    origin.stamp(&mut same);
    assert_eq!(same.origin.session_version, 100);
    // Hold changes the body.
    let mut hold = offer(ip("10.0.0.1"), 20010, &[Codec::Pcmu], Direction::SendOnly);
    origin.stamp(&mut hold);
    assert_eq!(hold.origin.session_version, 101);
    let mut resume = offer(ip("10.0.0.1"), 20010, &[Codec::Pcmu], Direction::SendRecv);
    origin.stamp(&mut resume);
    assert_eq!((resume.origin.session_version, origin.version()), (102, 102));
    assert_eq!(resume.origin.session_id, "100");
}

#[test]
fn parse_errors_are_typed() {
    assert_eq!(SessionDescription::parse(""), Err(SdpError::MissingVersion));
    assert_eq!(SessionDescription::parse("v=1\r\n"), Err(SdpError::MissingVersion));
    assert_eq!(SessionDescription::parse("v=0\r\ns=-\r\nt=0 0\r\n"), Err(SdpError::MissingOrigin));
    assert_eq!(
        SessionDescription::parse("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n").map(|_| ()),
        Ok(()),
        "the session id is kept as text"
    );
    assert_eq!(
        SessionDescription::parse("v=0\r\no=- 1 x IN IP4 1.2.3.4\r\n"),
        Err(SdpError::BadOrigin { line: 2 })
    );
    let base = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n";
    let cases = [
        ("garbage\r\n", SdpError::MalformedLine { line: 3 }),
        ("c=IN IPX 1.2.3.4\r\n", SdpError::BadConnection { line: 3 }),
        ("t=now\r\n", SdpError::BadTiming { line: 3 }),
        ("m=audio\r\n", SdpError::BadMedia { line: 3 }),
        ("m=audio x RTP/AVP 0\r\n", SdpError::BadMedia { line: 3 }),
        (
            "m=audio 1 RTP/AVP 0\r\na=rtpmap:zero PCMU/8000\r\n",
            SdpError::BadAttribute { line: 4, attribute: "rtpmap" },
        ),
        (
            "m=audio 1 RTP/AVP 0\r\na=ptime:twenty\r\n",
            SdpError::BadAttribute { line: 4, attribute: "ptime" },
        ),
    ];
    for (tail, expected) in cases {
        assert_eq!(SessionDescription::parse(&format!("{base}{tail}")), Err(expected), "{tail}");
    }
    // Unknown lines and attributes are accepted and kept.
    let sdp = SessionDescription::parse(&format!(
        "{base}s=x\r\ni=info\r\nt=0 0\r\nm=audio 1/2 RTP/AVP 0\r\nb=AS:64\r\na=x-custom:1\r\n"
    ))
    .unwrap();
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.media[0].attributes[0].name, "x-custom");
}
