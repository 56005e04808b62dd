//! The prompts shipped in config/prompts load as the daemon will load them.

use std::path::Path;

use tongdai::media::prompt::PromptSet;

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
    for n in 1..=10 {
        assert!(set.contains(&format!("position-{n}")), "position-{n}");
    }
    let music = set.get("hold-music").unwrap();
    assert!((20_000..=30_000).contains(&music.duration_ms()));
    // The whole set stays small: 16 KB per second of audio, under ~2 MB.
    let bytes: usize = set.names().map(|n| set.get(n).unwrap().samples * 2).sum();
    assert!(bytes < 2 * 1024 * 1024, "{bytes} bytes");
}
