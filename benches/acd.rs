//! ACD engine hot paths: one whole call (offer, prompt end, ring, answer, hang-up, wrap-up) with
//! six agents on three lines, and one input into a busy engine (a queue of twenty callers, every
//! line in use) followed by the invariant audit. Run: `cargo bench --bench acd`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tongdai::acd::{AgentId, CallId, EndedBy, Engine, EngineConfig, Input, Lane, Output};

fn agents() -> Vec<AgentId> {
    (0..6).map(|i| AgentId::new(&format!("op{i}"))).collect()
}

fn logged_in(now: Instant) -> Engine {
    let mut engine = Engine::new(EngineConfig::default(), agents());
    for agent in agents() {
        engine.handle(now, Input::AgentLoggedIn { agent }).unwrap();
    }
    while engine.poll_output().is_some() {}
    engine
}

fn whole_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("acd");
    group.throughput(Throughput::Elements(1));
    let mut now = Instant::now();
    let mut engine = logged_in(now);
    let mut id = 0;
    group.bench_function("whole_call", |b| {
        b.iter(|| {
            id += 1;
            let call = CallId(id);
            engine
                .handle(
                    now,
                    Input::CallOffered {
                        call,
                        lane: Lane::Normal,
                        province: None,
                        may_overflow: true,
                    },
                )
                .ok();
            engine.handle(now, Input::PromptFinished { call }).ok();
            let mut rung = None;
            while let Some(out) = engine.poll_output() {
                if let Output::RingAgent { agent, .. } = out {
                    rung = Some(agent);
                }
            }
            let agent = rung.expect("an agent is free");
            now += Duration::from_secs(3);
            engine.handle(now, Input::AgentAnswered { call, agent }).ok();
            now += Duration::from_secs(300);
            engine.handle(now, Input::CallEnded { call, by: EndedBy::Caller }).ok();
            now += Duration::from_secs(30);
            engine.handle_timeout(now);
            while let Some(out) = engine.poll_output() {
                black_box(out);
            }
        })
    });

    // A saturated engine: three calls bridged, twenty waiting.
    let mut now = Instant::now();
    let mut busy = logged_in(now);
    for n in 0..23 {
        let call = CallId(n);
        busy.handle(
            now,
            Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true },
        )
        .ok();
        busy.handle(now, Input::PromptFinished { call }).ok();
    }
    let mut ringing = Vec::new();
    while let Some(out) = busy.poll_output() {
        if let Output::RingAgent { call, agent } = out {
            ringing.push((call, agent));
        }
    }
    for (call, agent) in ringing {
        busy.handle(now, Input::AgentAnswered { call, agent }).ok();
    }
    while busy.poll_output().is_some() {}
    group.bench_function("input_into_a_full_queue_and_audit", |b| {
        b.iter(|| {
            now += Duration::from_millis(10);
            let urgent = black_box(true);
            busy.handle(now, Input::MenuChoice { call: CallId(10), urgent }).ok();
            black_box(busy.poll_timeout());
            busy.check_invariants().expect("invariants");
            while let Some(out) = busy.poll_output() {
                black_box(out);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, whole_call);
criterion_main!(benches);
