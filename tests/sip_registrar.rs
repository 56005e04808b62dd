//! The registrar on virtual time: register, refresh, expiry, unregister, `Contact: *`, 423, the
//! cap, CSeq ordering, several contacts with q, RFC 5626 instance replacement, the NAT flow, presence
//! events, restore; with baresip's and Linphone's real REGISTER shapes written out literally.

use std::time::{Duration, Instant};

use tongdai::config::{AgentConfig, AgentRole, Credential, Secret};
use tongdai::sip::auth::{
    Algorithm, ChallengeKind, ClientAnswer, DigestServer, DigestServerConfig, VerifiedUser,
    authorization,
};
use tongdai::sip::message::{Contacts, Message, Request, Response, parse_datagram};
use tongdai::sip::registrar::{
    Binding, LogoutReason, Presence, RegisterError, Registrar, RegistrarConfig,
};
use tongdai::sip::transport::{Flow, Transport};

fn agent(id: &str, user: &str) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: id.into(),
        user: user.into(),
        credential: Credential::Password(Secret::new("secret".into())),
        role: AgentRole::Operator,
    }
}

fn agents() -> Vec<AgentConfig> {
    vec![agent("an", "1001"), agent("binh", "1002")]
}

fn registrar() -> Registrar {
    Registrar::new(RegistrarConfig::default(), &agents())
}

fn flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

fn verified(user: &str) -> VerifiedUser {
    VerifiedUser { user: user.into(), algorithm: Algorithm::Md5 }
}

fn parse(text: &str) -> Request {
    match parse_datagram(text.replace('\n', "\r\n").into_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// A REGISTER for `user` with the given Contact lines (`None`: no Contact) and Expires.
fn register(
    user: &str,
    contacts: &[&str],
    call_id: &str,
    cseq: u32,
    expires: Option<u32>,
) -> Request {
    let mut text = format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK{call_id}{cseq};rport\n\
         Max-Forwards: 70\n\
         To: <sip:{user}@127.0.0.1>\n\
         From: <sip:{user}@127.0.0.1>;tag=f{call_id}\n\
         Call-ID: {call_id}\n\
         CSeq: {cseq} REGISTER\n"
    );
    for c in contacts {
        text.push_str(&format!("Contact: {c}\n"));
    }
    if let Some(e) = expires {
        text.push_str(&format!("Expires: {e}\n"));
    }
    text.push_str("Content-Length: 0\n\n");
    parse(&text)
}

/// baresip 1.0's REGISTER with `sipnat=outbound`, as captured (Authorization left out: the caller
/// checks it before the registrar).
const BARESIP: &str = "REGISTER sip:127.0.0.1:53282;transport=udp SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:38584;branch=z9hG4bK030c78515217a997;rport
Contact: <sip:1001-0x55cfbdd77410@127.0.0.1:38584>;expires=600;+sip.instance=\"<urn:uuid:cccc6028-38e2-9c30-deb6-2f5f625f9bbc>\";reg-id=1
Max-Forwards: 70
Route: <sip:127.0.0.1:53282;transport=udp;lr>
To: <sip:1001@127.0.0.1:53282>
From: <sip:1001@127.0.0.1:53282>;tag=80e29135b42f87a1
Call-ID: dc9f808687f87ced
CSeq: 22153 REGISTER
User-Agent: baresip v1.0.0 (x86_64/linux)
Supported: gruu, outbound, path
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER
Content-Length: 0

";

/// Linphone (belle-sip) REGISTER shape, compact header names.
fn linphone(host: &str, port: u16, call_id: &str, cseq: u32) -> Request {
    parse(&format!(
        "REGISTER sip:10.0.0.1;transport=udp SIP/2.0
v: SIP/2.0/UDP {host}:{port};branch=z9hG4bK.dG1pU8~Qa{cseq};rport
f: <sip:1002@10.0.0.1>;tag=g4eB8T2xk
t: sip:1002@10.0.0.1
CSeq: {cseq} REGISTER
i: {call_id}
Max-Forwards: 70
k: replaces, outbound, gruu, path
Accept: application/sdp
m: <sip:1002@{host}:{port};transport=udp>;+sip.instance=\"<urn:uuid:5e9a0a3c-0f4b-4c39-b3a7-8c6f3e1d2b10>\";reg-id=1;+org.linphone.specs=\"lime,groupchat/1.1\";expires=3600
Expires: 3600
User-Agent: LinphoneAndroid/5.2.5 (Pixel 6) LinphoneSDK/5.3.47 (tags/5.3.47^0)
l: 0

"
    ))
}

fn response_contacts(r: &Response) -> Vec<(String, Option<u32>)> {
    match r.headers.contacts().unwrap() {
        Contacts::List(list) => {
            list.into_iter().map(|c| (c.addr.uri.as_str().to_owned(), c.expires)).collect()
        }
        Contacts::Wildcard => panic!("wildcard in a response"),
    }
}

fn logged_in(agent: &str) -> Presence {
    Presence::LoggedIn { agent: agent.into() }
}

fn logged_out(agent: &str, reason: LogoutReason) -> Presence {
    Presence::LoggedOut { agent: agent.into(), reason }
}

#[test]
fn baresip_registers_and_the_agent_logs_in() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let nat = flow("127.0.0.1:38584");
    let out = reg.handle_register(t0, &parse(BARESIP), nat, &verified("1001"));
    assert_eq!(out.refused, None);
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_in("an")]);
    let to = out.response.headers.to().unwrap();
    assert!(to.tag().is_some());
    assert_eq!(out.response.headers.call_id().unwrap(), "dc9f808687f87ced");
    let Contacts::List(c) = out.response.headers.contacts().unwrap() else { panic!() };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].addr.uri.as_str(), "sip:1001-0x55cfbdd77410@127.0.0.1:38584");
    assert_eq!(c[0].expires, Some(600));
    assert_eq!(
        c[0].sip_instance().as_deref(),
        Some("<urn:uuid:cccc6028-38e2-9c30-deb6-2f5f625f9bbc>")
    );
    assert_eq!(c[0].reg_id(), Some(1));
    // RFC 5626: the flow is kept, so the UA is told outbound is in use.
    assert_eq!(out.response.headers.require().unwrap(), ["outbound"]);
    assert_eq!(reg.agent_for_user("1001"), Some("an"));
    assert_eq!(reg.agent_for_user("an"), None);
    // By agent id or by user.
    let b = reg.lookup("an");
    assert_eq!(b.len(), 1);
    assert_eq!(reg.lookup("1001"), b);
    assert_eq!(b[0].flow, nat);
    assert_eq!((b[0].call_id.as_str(), b[0].cseq), ("dc9f808687f87ced", 22153));
    assert_eq!(b[0].expires_at, t0 + Duration::from_secs(600));
    assert!(reg.is_registered("an") && !reg.is_registered("binh"));
    assert_eq!(reg.binding_count(), 1);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(600)));
}

#[test]
fn linphone_compact_register_is_capped() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let out = reg.handle_register(
        t0,
        &linphone("10.0.0.23", 38213, "6F~cLhQkCs", 21),
        flow("10.0.0.23:38213"),
        &verified("1002"),
    );
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_in("binh")]);
    // 3600 asked, 600 granted.
    assert_eq!(
        response_contacts(&out.response),
        [("sip:1002@10.0.0.23:38213;transport=udp".to_owned(), Some(600))]
    );
}

#[test]
fn refresh_keeps_the_agent_logged_in_and_moves_expiry() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let contact = ["<sip:1001@192.168.1.20:5062>"];
    reg.handle_register(
        t0,
        &register("1001", &contact, "c1", 1, Some(300)),
        flow("203.0.113.7:40000"),
        &verified("1001"),
    );
    let t1 = t0 + Duration::from_secs(250);
    let out = reg.handle_register(
        t1,
        &register("1001", &contact, "c1", 2, Some(300)),
        flow("203.0.113.7:40000"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 200);
    assert!(out.events.is_empty());
    assert_eq!(reg.lookup("an")[0].expires_at, t1 + Duration::from_secs(300));
    assert_eq!(reg.lookup("an")[0].cseq, 2);
    // No instance, no reg-id, no Supported: outbound: no Require.
    assert!(out.response.headers.require().unwrap().is_empty());
    // Past the first expiry nothing lapses.
    assert!(reg.expire(t0 + Duration::from_secs(301)).is_empty());
    // A query REGISTER lists the remaining time, rounded up.
    let q = reg.handle_register(
        t1 + Duration::from_millis(100_500),
        &register("1001", &[], "c1", 3, None),
        flow("203.0.113.7:40000"),
        &verified("1001"),
    );
    assert!(q.events.is_empty());
    assert_eq!(
        response_contacts(&q.response),
        [("sip:1001@192.168.1.20:5062".to_owned(), Some(200))]
    );
}

#[test]
fn expiry_logs_the_agent_out() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 1, Some(120)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, Some(60)),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    assert!(reg.expire(t0 + Duration::from_secs(59)).is_empty());
    assert_eq!(
        reg.expire(t0 + Duration::from_secs(60)),
        [logged_out("binh", LogoutReason::Expired)]
    );
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    assert_eq!(
        reg.expire(t0 + Duration::from_secs(500)),
        [logged_out("an", LogoutReason::Expired)]
    );
    assert_eq!(reg.poll_timeout(), None);
    assert!(reg.expire(t0 + Duration::from_secs(900)).is_empty());
}

#[test]
fn a_lapsed_binding_is_not_listed_before_the_sweep() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 1, Some(60)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    // expire() did not run; the query at t0+61 must not list the lapsed binding, and the agent,
    // logged in so far, is reported out.
    let q = reg.handle_register(
        t0 + Duration::from_secs(61),
        &register("1001", &[], "c1", 2, None),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert!(response_contacts(&q.response).is_empty());
    assert_eq!(q.events, [logged_out("an", LogoutReason::Expired)]);
}

#[test]
fn unregister_with_expires_zero() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let contact = ["<sip:1001@10.1.1.1:5062;transport=udp>"];
    reg.handle_register(
        t0,
        &register("1001", &contact, "c1", 1, Some(300)),
        flow("10.1.1.1:5062"),
        &verified("1001"),
    );
    // Same contact, differently written (host case, the param's case): the same binding.
    let out = reg.handle_register(
        t0 + Duration::from_secs(5),
        &register("1001", &["<sip:1001@10.1.1.1:5062;transport=UDP;x=y>;expires=0"], "c1", 2, None),
        flow("10.1.1.1:5062"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_out("an", LogoutReason::Unregistered)]);
    assert!(response_contacts(&out.response).is_empty());
    assert_eq!(reg.poll_timeout(), None);
    // Removing a binding that does not exist is fine and changes nothing.
    let out = reg.handle_register(
        t0,
        &register("1001", &contact, "c1", 3, Some(0)),
        flow("10.1.1.1:5062"),
        &verified("1001"),
    );
    assert_eq!((out.response.status, out.events.len()), (200, 0));
}

#[test]
fn wildcard_removes_everything_only_with_expires_zero() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let two = ["<sip:1001@10.1.1.1>", "<sip:1001@10.1.1.9>;q=0.3"];
    let out = reg.handle_register(
        t0,
        &register("1001", &two, "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(response_contacts(&out.response).len(), 2);

    for (text, expires) in [("*", Some(60)), ("*", None)] {
        let out = reg.handle_register(
            t0,
            &register("1001", &[text], "c9", 1, expires),
            flow("10.1.1.1:5060"),
            &verified("1001"),
        );
        assert_eq!(out.response.status, 400);
        assert_eq!(out.refused, Some(RegisterError::BadWildcard));
    }
    // `*` beside another contact does not even parse as a Contact set.
    let out = reg.handle_register(
        t0,
        &register("1001", &["*", "<sip:1001@10.1.1.3>"], "c9", 1, Some(0)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 400);
    assert!(matches!(out.refused, Some(RegisterError::Header(_))));
    assert_eq!(reg.binding_count(), 2);

    let out = reg.handle_register(
        t0,
        &register("1001", &["*"], "c9", 1, Some(0)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_out("an", LogoutReason::Unregistered)]);
    assert_eq!(reg.binding_count(), 0);
}

#[test]
fn wildcard_obeys_cseq_order() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 10, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    let out = reg.handle_register(
        t0,
        &register("1001", &["*"], "c1", 10, Some(0)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!((out.response.status, out.refused), (500, Some(RegisterError::OutOfOrder)));
    assert_eq!(reg.binding_count(), 1);
}

#[test]
fn too_brief_gets_423_with_min_expires_and_changes_nothing() {
    let t0 = Instant::now();
    let mut reg = registrar();
    // Two contacts, the second too brief: neither is bound.
    let out = reg.handle_register(
        t0,
        &register(
            "1001",
            &["<sip:1001@10.1.1.1>", "<sip:1001@10.1.1.2>;expires=30"],
            "c1",
            1,
            Some(300),
        ),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 423);
    assert_eq!(out.response.reason, "Interval Too Brief");
    assert_eq!(out.response.headers.min_expires().unwrap(), Some(60));
    assert_eq!(out.refused, Some(RegisterError::IntervalTooBrief { min_expires: 60 }));
    assert!(out.events.is_empty());
    assert_eq!(reg.binding_count(), 0);
    // Exactly the minimum is fine; the Expires header counts when the contact says nothing.
    let out = reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 2, Some(59)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 423);
    let out = reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 3, Some(60)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(response_contacts(&out.response)[0].1, Some(60));
}

#[test]
fn long_and_default_expiry_are_capped() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let out = reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>;expires=86400"], "c1", 1, None),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(response_contacts(&out.response)[0].1, Some(600));
    let out = reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, None),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    assert_eq!(response_contacts(&out.response)[0].1, Some(600));
    // Another configuration: the default applies below the cap.
    let config = RegistrarConfig { max_expires: 7200, ..RegistrarConfig::default() };
    let mut reg = Registrar::new(config, &agents());
    let out = reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, None),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    assert_eq!(response_contacts(&out.response)[0].1, Some(3600));
}

#[test]
fn cseq_ordering_per_call_id() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let contact = ["<sip:1001@10.1.1.1>"];
    reg.handle_register(
        t0,
        &register("1001", &contact, "c1", 5, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    for cseq in [4, 5] {
        let out = reg.handle_register(
            t0,
            &register("1001", &contact, "c1", cseq, Some(0)),
            flow("10.1.1.1:5060"),
            &verified("1001"),
        );
        assert_eq!(out.response.status, 500, "cseq {cseq}");
        assert_eq!(out.refused, Some(RegisterError::OutOfOrder));
        assert!(out.events.is_empty());
    }
    assert_eq!(reg.binding_count(), 1);
    // Another Call-ID (the phone restarted) may use any CSeq.
    let out = reg.handle_register(
        t0,
        &register("1001", &contact, "c2", 1, Some(120)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 200);
    let b = &reg.lookup("an")[0];
    assert_eq!((b.call_id.as_str(), b.cseq), ("c2", 1));
}

#[test]
fn several_contacts_ordered_by_q_then_recency() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(
        t0,
        &register(
            "1001",
            &["<sip:1001@10.1.1.1>;q=0.5", "<sip:1001@10.1.1.2>;q=0.9"],
            "c1",
            1,
            Some(300),
        ),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    let t1 = t0 + Duration::from_secs(10);
    let out = reg.handle_register(
        t1,
        &register("1001", &["<sip:1001@10.1.1.3>;q=0.5"], "c3", 1, Some(300)),
        flow("10.1.1.3:5060"),
        &verified("1001"),
    );
    assert!(out.events.is_empty());
    let order: Vec<&str> = reg.lookup("an").iter().map(|b| b.contact.as_str()).collect();
    assert_eq!(order, ["sip:1001@10.1.1.2", "sip:1001@10.1.1.3", "sip:1001@10.1.1.1"]);
    // The 200 lists every binding with its q.
    let contacts = out.response.headers.contacts().unwrap();
    let Contacts::List(list) = contacts else { panic!() };
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].q, Some(900));
    // Removing one leaves the agent logged in.
    let out = reg.handle_register(
        t1,
        &register("1001", &["<sip:1001@10.1.1.2>"], "c1", 2, Some(0)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert!(out.events.is_empty());
    assert_eq!(reg.binding_count(), 2);
}

#[test]
fn same_instance_replaces_the_old_contact() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let first = reg.handle_register(
        t0,
        &linphone("10.0.0.23", 38213, "call-a", 21),
        flow("198.51.100.4:38213"),
        &verified("1002"),
    );
    assert_eq!(first.events, [logged_in("binh")]);
    // The phone moved to another network and restarted: new address, new Call-ID, same device.
    let t1 = t0 + Duration::from_secs(30);
    let moved = reg.handle_register(
        t1,
        &linphone("10.8.0.5", 40111, "call-b", 1),
        flow("198.51.100.99:40111"),
        &verified("1002"),
    );
    assert_eq!(moved.response.status, 200);
    assert!(moved.events.is_empty());
    let b = reg.lookup("binh");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact.as_str(), "sip:1002@10.8.0.5:40111;transport=udp");
    assert_eq!(b[0].flow.remote, "198.51.100.99:40111".parse().unwrap());
    assert_eq!(b[0].instance.as_deref(), Some("<urn:uuid:5e9a0a3c-0f4b-4c39-b3a7-8c6f3e1d2b10>"));
    assert_eq!(response_contacts(&moved.response).len(), 1);
}

#[test]
fn binding_keeps_the_flow_not_the_private_contact() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let public = flow("203.0.113.7:40000");
    reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@192.168.1.20:5062>"], "c1", 1, Some(120)),
        public,
        &verified("1001"),
    );
    let b = reg.lookup("an")[0].clone();
    assert_eq!(b.contact.as_str(), "sip:1001@192.168.1.20:5062");
    assert_eq!(b.flow, public);
    // The NAT rebinds the port: the refresh moves the binding to the new flow.
    let rebound = flow("203.0.113.7:40222");
    reg.handle_register(
        t0 + Duration::from_secs(60),
        &register("1001", &["<sip:1001@192.168.1.20:5062>"], "c1", 2, Some(120)),
        rebound,
        &verified("1001"),
    );
    assert_eq!(reg.lookup("an")[0].flow, rebound);
    // The old flow dying changes nothing; the current one dying logs the agent out.
    assert!(reg.remove_flow(public).is_empty());
    assert_eq!(reg.remove_flow(rebound), [logged_out("an", LogoutReason::Unreachable)]);
}

#[test]
fn aor_must_belong_to_the_authenticated_user() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let out = reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1002"),
    );
    assert_eq!((out.response.status, out.refused.clone()), (403, Some(RegisterError::Forbidden)));
    assert!(out.response.headers.to().unwrap().tag().is_some());
    // A user that authenticated but is no agent any more.
    let out = reg.handle_register(
        t0,
        &register("1003", &["<sip:1003@10.1.1.1>"], "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1003"),
    );
    assert_eq!(out.response.status, 404);
    // To must be a sip/sips AOR.
    let tel = parse(
        "REGISTER sip:127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKtel\n\
         To: <tel:+84281001>\n\
         From: <tel:+84281001>;tag=1\n\
         Call-ID: tel1\n\
         CSeq: 1 REGISTER\n\
         Contact: <sip:1001@10.1.1.1>\n\
         Content-Length: 0\n\n",
    );
    let out = reg.handle_register(t0, &tel, flow("10.1.1.1:5060"), &verified("1001"));
    assert_eq!((out.response.status, out.refused), (400, Some(RegisterError::NotSipAor)));
    assert_eq!(reg.binding_count(), 0);
    assert_eq!(RegisterError::TooManyBindings.label(), "too_many_bindings");
}

#[test]
fn bindings_per_agent_are_bounded() {
    let t0 = Instant::now();
    let config = RegistrarConfig { max_bindings: 2, ..RegistrarConfig::default() };
    let mut reg = Registrar::new(config, &agents());
    let three = ["<sip:1001@10.1.1.1>", "<sip:1001@10.1.1.2>", "<sip:1001@10.1.1.3>"];
    let out = reg.handle_register(
        t0,
        &register("1001", &three, "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    assert_eq!((out.response.status, out.refused), (403, Some(RegisterError::TooManyBindings)));
    assert_eq!(reg.binding_count(), 0);
}

#[test]
fn restore_after_a_restart() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(t0, &parse(BARESIP), flow("127.0.0.1:38584"), &verified("1001"));
    reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, Some(60)),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    let saved: Vec<Binding> = reg.bindings().cloned().collect();
    assert_eq!(saved.len(), 2);

    let mut fresh = registrar();
    let later = t0 + Duration::from_secs(120);
    // binh's binding lapsed while we were down; an's is back, flow and all.
    assert_eq!(fresh.restore(later, saved.clone()), [logged_in("an")]);
    assert_eq!(fresh.lookup("an")[0], &saved.iter().find(|b| b.agent == "an").cloned().unwrap());
    assert!(fresh.lookup("binh").is_empty());
    // Restoring twice does not duplicate.
    assert!(fresh.restore(later, saved).is_empty());
    assert_eq!(fresh.binding_count(), 1);
}

#[test]
fn reload_drops_agents_that_left() {
    let t0 = Instant::now();
    let mut reg = registrar();
    reg.handle_register(
        t0,
        &register("1001", &["<sip:1001@10.1.1.1>"], "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, Some(300)),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    let events = reg.set_agents(&[agent("an", "1001"), agent("chi", "1003")]);
    assert_eq!(events, [logged_out("binh", LogoutReason::Removed)]);
    assert!(reg.is_registered("an"));
    assert_eq!(reg.binding_count(), 1);
}

/// The whole REGISTER exchange as the endpoint will run it: 401 with challenges, the softphone's
/// answer verified, then the registrar.
#[test]
fn challenge_then_register() {
    let t0 = Instant::now();
    let config = agents();
    let mut digest = DigestServer::new(DigestServerConfig::new("tongdai"), [3; 32], t0);
    let mut reg = registrar();
    let lookup = |u: &str| config.iter().find(|a| a.user == u).map(|a| &a.credential);

    let first = register("1001", &["<sip:1001@192.168.1.20:5062>"], "c1", 1, Some(600));
    let err = digest.verify_request(t0, &first, ChallengeKind::Www, lookup).unwrap_err();
    let algorithms = digest.algorithms_for(lookup("1001"));
    let tag = tongdai::sip::registrar::to_tag(&first);
    let challenge =
        digest.challenge_response(t0, &first, ChallengeKind::Www, &algorithms, false, Some(&tag));
    assert_eq!((err.reason(), challenge.status), ("missing", 401));
    assert_eq!(challenge.headers.to().unwrap().tag(), Some(tag.as_str()));
    assert_eq!(tongdai::sip::registrar::to_tag(&first), tag);
    assert_eq!(digest.claimed_user(&first, ChallengeKind::Www), None);

    let challenges = challenge.headers.www_authenticate().unwrap();
    let chosen = tongdai::sip::auth::preferred_challenge(&challenges).unwrap();
    let mut second = register("1001", &["<sip:1001@192.168.1.20:5062>"], "c1", 2, Some(600));
    let answer = ClientAnswer {
        user: "1001",
        password: "secret",
        method: &second.method,
        uri: second.uri.as_str(),
        cnonce: "0a4f113b",
        nc: 1,
    };
    let value = authorization(chosen, &answer).unwrap();
    second.headers.push("Authorization", value);
    assert_eq!(digest.claimed_user(&second, ChallengeKind::Www).as_deref(), Some("1001"));
    let t1 = t0 + Duration::from_millis(20);
    let user = digest.verify_request(t1, &second, ChallengeKind::Www, lookup).unwrap();
    assert_eq!(user.algorithm, Algorithm::Sha256);
    let out = reg.handle_register(t1, &second, flow("203.0.113.7:40000"), &user);
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_in("an")]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Random REGISTER traffic from two agents on virtual time: presence events alternate per
    /// agent and always agree with the bindings, nothing lapsed survives `expire`, the next timeout
    /// is the earliest expiry, and no agent holds more than `max_bindings`.
    #[test]
    fn presence_always_matches_bindings(
        steps in proptest::collection::vec(
            (0..2usize, 0..4usize, 0..6usize, 0..3u32, 0..3usize, 0..200u64),
            1..40,
        )
    ) {
        let t0 = Instant::now();
        let config = RegistrarConfig { max_bindings: 3, ..RegistrarConfig::default() };
        let mut reg = Registrar::new(config, &agents());
        let users = ["1001", "1002"];
        let ids = ["an", "binh"];
        let mut model = [false, false];
        let mut cseq = [[1u32; 3]; 2];
        let mut now = t0;
        for (who, contact, expiry, bump, call, dt) in steps {
            now += Duration::from_secs(dt);
            let user = users[who];
            let call_id = format!("{user}-call{call}");
            cseq[who][call] = cseq[who][call].saturating_add(bump).saturating_sub(1).max(1);
            let expires = [Some(0), Some(30), Some(60), Some(120), Some(700), None][expiry];
            let contact_text = format!("<sip:{user}@10.0.0.{contact}:5060>");
            let contacts: Vec<&str> = match contact {
                3 if expires == Some(0) => vec!["*"],
                _ => vec![contact_text.as_str()],
            };
            let request = register(user, &contacts, &call_id, cseq[who][call], expires);
            let out = reg.handle_register(now, &request, flow("10.0.0.1:5060"), &verified(user));
            let mut events = out.events;
            events.extend(reg.expire(now));
            for e in events {
                let (agent, up) = match &e {
                    Presence::LoggedIn { agent } => (agent.clone(), true),
                    Presence::LoggedOut { agent, .. } => (agent.clone(), false),
                };
                let i = ids.iter().position(|id| *id == agent).unwrap();
                proptest::prop_assert_ne!(model[i], up, "{:?} repeated", e);
                model[i] = up;
            }
            for (i, id) in ids.iter().enumerate() {
                proptest::prop_assert_eq!(reg.is_registered(id), model[i]);
                let bindings = reg.lookup(id);
                proptest::prop_assert!(bindings.len() <= 3);
                proptest::prop_assert!(bindings.iter().all(|b| b.expires_at > now));
            }
            let earliest = reg.bindings().map(|b| b.expires_at).min();
            proptest::prop_assert_eq!(reg.poll_timeout(), earliest);
        }
    }
}

#[test]
fn users_match_without_regard_to_case_and_ids_come_first() {
    let t0 = Instant::now();
    // Agent "1001" (an id) registers as user "alice"; agent "bob" registers as user "1001".
    let mut reg =
        Registrar::new(RegistrarConfig::default(), &[agent("1001", "Alice"), agent("bob", "1001")]);
    let out = reg.handle_register(
        t0,
        &register("ALICE", &["<sip:alice@10.1.1.1>"], "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("alice"),
    );
    assert_eq!(out.response.status, 200);
    assert_eq!(out.events, [logged_in("1001")]);
    // The binding names the user as configured.
    assert_eq!(reg.lookup("1001")[0].user, "Alice");
    assert_eq!(reg.agent_for_user("alice"), Some("1001"));
    // "1001" is first the agent id: bob (user 1001) has no binding, and is found by "bob".
    assert!(reg.lookup("bob").is_empty());
    assert_eq!(reg.lookup("ALICE").len(), 1);
}

#[test]
fn unregister_agent_removes_every_binding_once() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let contacts = ["<sip:1001@10.1.1.1>", "<sip:1001@10.1.1.9>;q=0.5"];
    reg.handle_register(
        t0,
        &register("1001", &contacts, "c1", 1, Some(300)),
        flow("10.1.1.1:5060"),
        &verified("1001"),
    );
    reg.handle_register(
        t0,
        &register("1002", &["<sip:1002@10.1.1.2>"], "c2", 1, Some(300)),
        flow("10.1.1.2:5060"),
        &verified("1002"),
    );
    assert_eq!(reg.lookup("an").len(), 2);
    // By agent id (what the `*24` feature code knows): every binding goes, binh stays.
    assert_eq!(reg.unregister_agent("an"), [logged_out("an", LogoutReason::Unregistered)]);
    assert!(!reg.is_registered("an"));
    assert!(reg.is_registered("binh"));
    // A second logout, an unknown agent: nothing to report.
    assert!(reg.unregister_agent("an").is_empty());
    assert!(reg.unregister_agent("nobody").is_empty());
    // By SIP user, any case.
    assert_eq!(reg.unregister_agent("1002"), [logged_out("binh", LogoutReason::Unregistered)]);
    assert_eq!(reg.binding_count(), 0);
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn membership_changes_when_a_binding_comes_or_goes_not_on_refresh() {
    let t0 = Instant::now();
    let mut reg = registrar();
    let m0 = reg.membership();
    let req = |cseq| register("1001", &["<sip:1001@10.1.1.1>"], "c1", cseq, Some(300));
    reg.handle_register(t0, &req(1), flow("10.1.1.1:5060"), &verified("1001"));
    let m1 = reg.membership();
    assert_ne!(m0, m1, "a new binding");
    reg.handle_register(t0, &req(2), flow("10.1.1.1:5060"), &verified("1001"));
    assert_eq!(reg.membership(), m1, "a refresh on the same flow");
    // The same contact from another flow (a NAT rebinding) is followed by the keep-alives.
    reg.handle_register(t0, &req(3), flow("10.1.1.1:5099"), &verified("1001"));
    let m2 = reg.membership();
    assert_ne!(m1, m2, "a new flow");
    reg.expire(t0 + Duration::from_secs(301));
    assert_ne!(reg.membership(), m2, "an expiry");
}
