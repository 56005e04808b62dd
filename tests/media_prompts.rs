//! The prompts shipped in config/prompts load as the daemon will load them.

use std::path::Path;

use tongdai::media::prompt::{PromptSet, names};

#[test]
fn shipped_prompts_load_and_are_sane() {
    let set = PromptSet::load_dir(Path::new("config/prompts")).unwrap();
    for name in
        ["welcome", "urgent-menu", "please-hold", "transfer-national", "all-busy", "outside-hours"]
    {
        let p = set.get(name).unwrap_or_else(|| panic!("{name}.wav missing"));
        assert!((1000..15_000).contains(&p.duration_ms()), "{name}: {} ms", p.duration_ms());
        assert_eq!(p.pcmu.len(), p.samples);
        assert_eq!(p.pcma.len(), p.samples);
    }
    for n in 1..=names::MAX_POSITION {
        let name = names::position(n).unwrap();
        assert!(set.contains(&name), "{name}.wav missing");
    }
    for m in names::WAIT_MINUTES {
        let name = names::estimated_wait(u64::from(*m) * 60).unwrap();
        assert!(set.contains(&name), "{name}.wav missing");
    }
    for name in [
        names::FEATURE_PAUSED,
        names::FEATURE_RESUMED,
        names::FEATURE_WRAPUP_ENDED,
        names::FEATURE_LOGGED_OUT,
        names::URGENT_MENU,
    ] {
        let p = set.get(name).unwrap_or_else(|| panic!("{name}.wav missing"));
        assert!((500..10_000).contains(&p.duration_ms()), "{name}: {} ms", p.duration_ms());
    }
    let music = set.get("hold-music").unwrap();
    assert!((20_000..=30_000).contains(&music.duration_ms()));
    // The whole set stays small: 16 KB per second of audio, under ~4 MB.
    let bytes: usize = set.names().map(|n| set.get(n).unwrap().samples * 2).sum();
    assert!(bytes < 4 * 1024 * 1024, "{bytes} bytes");
}

#[test]
fn prompts_are_encoded_once_and_shared() {
    let set = PromptSet::load_dir(Path::new("config/prompts")).unwrap();
    // A reload or a call takes a clone of the set or of a prompt: the audio is never copied.
    let copy = set.clone();
    for name in set.names() {
        let (a, b) = (set.get(name).unwrap(), copy.get(name).unwrap());
        assert!(std::sync::Arc::ptr_eq(&a.pcmu, &b.pcmu), "{name}");
        assert!(std::sync::Arc::ptr_eq(&a.pcma, &b.pcma), "{name}");
    }
}
