//! Banning repeated password guesses on virtual time: per (source, user), per source outside the
//! allow-list, only guesses counted, a stable log line, bounded records.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tongdai::sip::auth::{AuthBans, AuthFailure, Ban, BanConfig};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn five_guesses_ban_the_pair_for_ten_minutes() {
    let t0 = Instant::now();
    let mut bans = AuthBans::new(BanConfig::default());
    let src = ip("198.51.100.9");
    for i in 0..4 {
        let at = t0 + Duration::from_secs(i);
        assert!(bans.record_failure(at, src, "1001", &AuthFailure::WrongPassword).is_empty());
        assert!(!bans.is_banned(at, src, "1001"));
    }
    let started =
        bans.record_failure(t0 + Duration::from_secs(5), src, "1001", &AuthFailure::WrongPassword);
    assert_eq!(
        started,
        [Ban {
            source: src,
            user: Some("1001".into()),
            failures: 5,
            duration: Duration::from_secs(600)
        }]
    );
    assert_eq!(
        started[0].log_line(),
        "auth ban source=198.51.100.9 user=1001 failures=5 seconds=600"
    );
    assert!(bans.is_banned(t0 + Duration::from_secs(6), src, "1001"));
    // Only that pair: the same address for another user, another address for this user, go on.
    assert!(!bans.is_banned(t0 + Duration::from_secs(6), src, "1002"));
    assert!(!bans.is_banned(t0 + Duration::from_secs(6), ip("198.51.100.10"), "1001"));
    // Further guesses during the ban start no new ban (one log line per ban).
    assert!(
        bans.record_failure(t0 + Duration::from_secs(7), src, "1001", &AuthFailure::WrongPassword)
            .is_empty()
    );
    // The ban ends.
    assert!(!bans.is_banned(t0 + Duration::from_secs(605), src, "1001"));
}

#[test]
fn only_guesses_count_and_windows_restart() {
    let t0 = Instant::now();
    let mut bans = AuthBans::new(BanConfig::default());
    let src = ip("203.0.113.5");
    for f in [AuthFailure::Missing, AuthFailure::Stale, AuthFailure::Replay] {
        for _ in 0..10 {
            assert!(bans.record_failure(t0, src, "1001", &f).is_empty());
        }
    }
    assert!(bans.is_empty());
    // Unknown users count like wrong passwords (they are answered alike too).
    for i in 0..4 {
        bans.record_failure(t0 + Duration::from_secs(i), src, "9999", &AuthFailure::UnknownUser);
    }
    // A minute later the window has moved on: counting starts over.
    let later = t0 + Duration::from_secs(70);
    assert!(bans.record_failure(later, src, "9999", &AuthFailure::UnknownUser).is_empty());
    assert!(!bans.is_banned(later, src, "9999"));
}

#[test]
fn success_forgets_earlier_typos() {
    let t0 = Instant::now();
    let mut bans = AuthBans::new(BanConfig::default());
    let src = ip("10.0.0.23");
    for _ in 0..4 {
        bans.record_failure(t0, src, "1002", &AuthFailure::WrongPassword);
    }
    bans.record_success(t0, src, "1002");
    assert!(bans.record_failure(t0, src, "1002", &AuthFailure::WrongPassword).is_empty());
    assert!(!bans.is_banned(t0, src, "1002"));
}

#[test]
fn scanners_are_banned_wholesale_but_never_the_allow_list() {
    let t0 = Instant::now();
    let config = BanConfig { allow: vec!["10.0.0.0/8".parse().unwrap()], ..BanConfig::default() };
    let mut bans = AuthBans::new(config);
    let scanner = ip("192.0.2.66");
    let office = ip("10.0.0.1");
    let mut wholesale = Vec::new();
    for n in 0..20 {
        let user = format!("{}", 100 + n);
        wholesale.extend(bans.record_failure(t0, scanner, &user, &AuthFailure::UnknownUser));
        bans.record_failure(t0, office, &user, &AuthFailure::UnknownUser);
    }
    assert_eq!(wholesale.len(), 1);
    assert_eq!(wholesale[0].user, None);
    assert_eq!(
        wholesale[0].log_line(),
        "auth ban source=192.0.2.66 user=* failures=20 seconds=600"
    );
    assert!(bans.is_banned(t0, scanner, "1001"));
    // The office NAT (every softphone's address) is never banned as a whole.
    assert!(!bans.is_banned(t0, office, "1001"));
}

#[test]
fn records_are_bounded() {
    let t0 = Instant::now();
    let config =
        BanConfig { table_size: 100, max_source_failures: 1_000_000, ..BanConfig::default() };
    let mut bans = AuthBans::new(config);
    for n in 0..10_000u32 {
        let src = IpAddr::from(n.to_be_bytes());
        let at = t0 + Duration::from_millis(u64::from(n));
        bans.record_failure(at, src, "1001", &AuthFailure::UnknownUser);
        assert!(bans.len() <= 100);
    }
}
