//! The sans-IO core keeps nothing of a finished call: the endpoint and the switchboard on virtual
//! time take thousands of complete calls (trunk INVITE, 200, ACK, an agent rung and answering,
//! the caller's BYE, the agent's BYE answered, every timer run out), and the heap they hold after
//! the second thousand is what it was after the first. Measured with a counting global allocator,
//! so the figure is exact and the same on every run (no RSS, no timing).
//!
//! Unsafe code: a `GlobalAlloc` can only be written with it; it forwards to the system allocator
//! and only adds a counter.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use support::rig::{Rig, addr, trunk_offer, trunk_offer_at, trunk_request};
use tongdai::sip::message::{Method, Request, Response};

/// Bytes allocated and not yet freed, by anyone in this test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call forwards to `System` with the caller's own arguments; the counter is a
// relaxed atomic and changes nothing about the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` above, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const AGENT: &str = "127.0.0.1:6000";

fn find(requests: Vec<(tongdai::sip::transport::Flow, Request)>, method: Method) -> Request {
    let found = requests.into_iter().map(|(_, r)| r).find(|r| r.method == method);
    found.unwrap_or_else(|| panic!("no {method:?} sent"))
}

/// One complete call `n`: answered by the agent, hung up by the caller, every timer run out.
fn call(rig: &mut Rig, n: usize) {
    // The agent refreshes its registration (the virtual day is long).
    assert_eq!(rig.register("op1", "op1-test-password", addr(AGENT), AGENT), 200);
    let unique = |text: String| {
        text.replace("sb-1@trunk", &format!("call-{n}@trunk"))
            .replace("branch=z9hG4bK", &format!("branch=z9hG4bK{n}x"))
    };
    rig.send_trunk(unique(trunk_request("INVITE", 1, "inv", None, &trunk_offer(1, "sendrecv"))));
    let tag = rig.final_response(200).headers.to().unwrap().tag().unwrap().to_string();
    rig.send_trunk(unique(trunk_request("ACK", 1, "ack", Some(&tag), "")));
    // The welcome prompt (0.1 s), the menu, then the agent is rung.
    rig.advance(Duration::from_secs(6));
    let invite = find(rig.requests(), Method::Invite);
    let mut ok = Response::for_request(&invite, 200, Some("agenttag"));
    ok.headers.push("Contact", format!("<sip:op1@{AGENT}>"));
    ok.headers.push("Content-Type", "application/sdp".to_string());
    ok.body = bytes::Bytes::from(trunk_offer_at(1, "sendrecv", 41000));
    rig.receive(addr(AGENT), &String::from_utf8_lossy(&ok.to_bytes()));
    rig.advance(Duration::from_secs(2));
    rig.take_sent();
    rig.send_trunk(unique(trunk_request("BYE", 2, "bye", Some(&tag), "")));
    let bye = find(rig.requests(), Method::Bye);
    let ok = Response::for_request(&bye, 200, None);
    rig.receive(addr(AGENT), &String::from_utf8_lossy(&ok.to_bytes()));
    // Wrap-up (30 s) and every transaction timer (64·T1 = 32 s).
    rig.advance(Duration::from_secs(40));
    // What the harness keeps is the harness's.
    rig.take_sent();
    rig.reports.clear();
}

#[test]
fn a_thousand_more_calls_leave_the_core_holding_no_more_memory() {
    let mut rig = Rig::new(&[("keepalive_interval = \"30s\"", "keepalive_interval = \"0s\"")]);
    // Warm-up: tables reach the capacity one call at a time needs.
    for n in 0..200 {
        call(&mut rig, n);
    }
    let after_warm_up = LIVE.load(Ordering::Relaxed);
    for n in 200..1200 {
        call(&mut rig, n);
    }
    let after_1000 = LIVE.load(Ordering::Relaxed);
    for n in 1200..2200 {
        call(&mut rig, n);
    }
    let after_2000 = LIVE.load(Ordering::Relaxed);
    assert_eq!(rig.sb.calls(), 0);
    assert_eq!(rig.ep.dialog_count(), 0);
    assert_eq!(rig.state("op1"), Some(tongdai::acd::AgentState::Available));
    // A table that grows with calls would hold at least tens of bytes per call (a key and a value).
    let per_call = |from: isize, to: isize| (to - from) as f64 / 1000.0;
    assert!(
        per_call(after_warm_up, after_1000) < 4.0 && per_call(after_1000, after_2000) < 4.0,
        "heap held: {after_warm_up} B after the warm-up, {after_1000} B after 1,000 more calls, \
         {after_2000} B after 2,000"
    );
}
