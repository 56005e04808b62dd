//! Announcements and hold audio (media, loaded by the runtime at start-up and on reload): 8 kHz
//! 16-bit mono PCM WAV files, encoded once to both G.711 laws and shared between calls by `Arc`,
//! so a hundred callers on hold cost one copy of the music and no per-packet encoding.
//!
//! Anything that is not 8 kHz 16-bit mono PCM is refused with an error naming the file: silently
//! resampling would hide a wrong file until a caller hears it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::g711::{Codec, alaw_encode, ulaw_encode};

/// The only sample rate prompts may have: G.711's.
pub const PROMPT_SAMPLE_RATE: u32 = 8000;

/// Why a prompt file or directory could not be loaded.
#[derive(Debug, Error)]
pub enum PromptError {
    /// The prompt directory could not be listed.
    #[error("cannot list prompt directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened or is not a WAV file hound can read.
    #[error("cannot read prompt {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        #[source]
        source: hound::Error,
    },
    /// The file is WAV but not 8 kHz 16-bit mono integer PCM.
    #[error(
        "prompt {path} is {sample_rate} Hz, {bits_per_sample}-bit {format}, {channels} channel(s); \
         expected 8000 Hz 16-bit PCM mono (sox in.wav -r 8000 -c 1 -b 16 out.wav)"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// Sample rate found.
        sample_rate: u32,
        /// Bits per sample found.
        bits_per_sample: u16,
        /// Channels found.
        channels: u16,
        /// `PCM` or `float`.
        format: &'static str,
    },
    /// The file holds no samples.
    #[error("prompt {path} holds no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// One announcement or piece of hold audio, encoded in both laws. Cloning is cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The name used in configuration: the file stem (`welcome` for `welcome.wav`).
    pub name: Arc<str>,
    /// The audio in µ-law, one byte per sample.
    pub pcmu: Arc<[u8]>,
    /// The audio in A-law, one byte per sample.
    pub pcma: Arc<[u8]>,
    /// Number of samples (8000 per second).
    pub samples: usize,
}

impl Prompt {
    /// Builds a prompt from linear 8 kHz samples (also handy for generated tones in tests).
    pub fn from_samples(name: &str, samples: &[i16]) -> Prompt {
        let pcmu: Arc<[u8]> = samples.iter().map(|s| ulaw_encode(*s)).collect();
        let pcma: Arc<[u8]> = samples.iter().map(|s| alaw_encode(*s)).collect();
        Prompt { name: Arc::from(name), pcmu, pcma, samples: samples.len() }
    }

    /// Loads a WAV file; the prompt is named after the file stem.
    pub fn load(path: &Path) -> Result<Prompt, PromptError> {
        let reader = hound::WavReader::open(path)
            .map_err(|source| PromptError::Wav { path: path.to_path_buf(), source })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Prompt::from_reader(&name, path, reader)
    }

    /// Reads a WAV stream already opened; `path` is only used in error messages.
    pub fn from_wav<R: Read>(name: &str, path: &Path, source: R) -> Result<Prompt, PromptError> {
        let reader = hound::WavReader::new(source)
            .map_err(|source| PromptError::Wav { path: path.to_path_buf(), source })?;
        Prompt::from_reader(name, path, reader)
    }

    fn from_reader<R: Read>(
        name: &str,
        path: &Path,
        mut reader: hound::WavReader<R>,
    ) -> Result<Prompt, PromptError> {
        let spec = reader.spec();
        let is_int = spec.sample_format == hound::SampleFormat::Int;
        if spec.sample_rate != PROMPT_SAMPLE_RATE
            || spec.bits_per_sample != 16
            || spec.channels != 1
            || !is_int
        {
            return Err(PromptError::Format {
                path: path.to_path_buf(),
                sample_rate: spec.sample_rate,
                bits_per_sample: spec.bits_per_sample,
                channels: spec.channels,
                format: if is_int { "PCM" } else { "float" },
            });
        }
        let samples = reader
            .samples::<i16>()
            .collect::<Result<Vec<i16>, _>>()
            .map_err(|source| PromptError::Wav { path: path.to_path_buf(), source })?;
        if samples.is_empty() {
            return Err(PromptError::Empty { path: path.to_path_buf() });
        }
        Ok(Prompt::from_samples(name, &samples))
    }

    /// The encoded audio for `codec`.
    pub fn encoded(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// Play time in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.samples as u64 * 1000 / u64::from(PROMPT_SAMPLE_RATE)
    }
}

/// The prompt names the daemon plays (file stems in `config/prompts/`), in one place.
pub mod names {
    /// On answer: "Tổng đài quốc gia bảo vệ trẻ em 111 …".
    pub const WELCOME: &str = "welcome";
    /// After the welcome: "if a child is in danger now, press 1".
    pub const URGENT_MENU: &str = "urgent-menu";
    /// Between hold-music loops.
    pub const PLEASE_HOLD: &str = "please-hold";
    /// The hold loop.
    pub const HOLD_MUSIC: &str = "hold-music";
    /// Long waits.
    pub const ALL_BUSY: &str = "all-busy";
    /// Before overflow to the national centre.
    pub const TRANSFER_NATIONAL: &str = "transfer-national";
    /// No shift staffed.
    pub const OUTSIDE_HOURS: &str = "outside-hours";
    /// Feature code *21: the agent is paused.
    pub const FEATURE_PAUSED: &str = "feature-paused";
    /// Feature code *22: the agent takes calls again.
    pub const FEATURE_RESUMED: &str = "feature-resumed";
    /// Feature code *23: wrap-up ended early.
    pub const FEATURE_WRAPUP_ENDED: &str = "feature-wrapup-ended";
    /// Feature code *24: the agent logged out.
    pub const FEATURE_LOGGED_OUT: &str = "feature-logged-out";
    /// The highest position with its own announcement (`position-1` … `position-30`).
    pub const MAX_POSITION: u32 = 30;
    /// The estimated waits with their own announcement, in minutes.
    pub const WAIT_MINUTES: &[u32] = &[1, 2, 3, 4, 5, 10, 15, 20, 30];

    /// "You are number `n` in the queue", or `None` past [`MAX_POSITION`] (a caller that far back
    /// hears the wait instead) or for 0.
    pub fn position(n: u32) -> Option<String> {
        (1..=MAX_POSITION).contains(&n).then(|| format!("position-{n}"))
    }

    /// "The estimated wait is about N minutes" for `seconds`, rounded up to the next announced
    /// step (never promising less than the estimate); `None` past the longest step.
    pub fn estimated_wait(seconds: u64) -> Option<String> {
        let minutes = seconds.div_ceil(60).max(1);
        let step = WAIT_MINUTES.iter().copied().find(|m| u64::from(*m) >= minutes)?;
        Some(if step == 1 { "wait-1-minute".to_owned() } else { format!("wait-{step}-minutes") })
    }
}

/// All prompts of a deployment, by name.
#[derive(Debug, Clone, Default)]
pub struct PromptSet {
    prompts: BTreeMap<Arc<str>, Prompt>,
}

impl PromptSet {
    /// An empty set.
    pub fn new() -> PromptSet {
        PromptSet::default()
    }

    /// Loads every `*.wav` file of `dir` (not recursive). One bad file fails the whole load, so a
    /// reload never half-applies.
    pub fn load_dir(dir: &Path) -> Result<PromptSet, PromptError> {
        let dir_error = |source| PromptError::Directory { path: dir.to_path_buf(), source };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let path = entry.map_err(dir_error)?.path();
            let is_wav = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if is_wav && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut set = PromptSet::new();
        for path in paths {
            set.insert(Prompt::load(&path)?);
        }
        Ok(set)
    }

    /// Adds or replaces a prompt by its name.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    /// The prompt called `name`.
    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    /// True when a prompt called `name` is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    /// Names of all prompts, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(|k| &**k)
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// True when no prompt is loaded.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{alaw_decode, ulaw_decode};
    use std::io::Cursor;

    fn wav(spec: hound::WavSpec, samples: &[i16]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for s in samples {
            writer.write_sample(*s).unwrap();
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(sample_rate: u32, channels: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_8khz_mono_and_encodes_both_laws() {
        let samples: Vec<i16> = (0..800).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let bytes = wav(spec(8000, 1), &samples);
        let p = Prompt::from_wav("welcome", Path::new("welcome.wav"), Cursor::new(bytes)).unwrap();
        assert_eq!(&*p.name, "welcome");
        assert_eq!(p.samples, 800);
        assert_eq!(p.duration_ms(), 100);
        for (i, s) in samples.iter().enumerate() {
            assert_eq!(p.pcmu[i], ulaw_encode(*s));
            assert_eq!(p.pcma[i], alaw_encode(*s));
            assert!((i32::from(ulaw_decode(p.pcmu[i])) - i32::from(*s)).abs() < 64);
            assert!((i32::from(alaw_decode(p.pcma[i])) - i32::from(*s)).abs() < 64);
        }
        assert!(Arc::ptr_eq(p.encoded(Codec::Pcmu), &p.clone().pcmu));
    }

    #[test]
    fn rejects_other_formats_naming_the_file() {
        let bytes = wav(spec(16000, 1), &[0; 10]);
        let err = Prompt::from_wav("x", Path::new("/p/x.wav"), Cursor::new(bytes)).unwrap_err();
        assert!(matches!(err, PromptError::Format { sample_rate: 16000, .. }));
        assert!(err.to_string().contains("/p/x.wav"), "{err}");
        let bytes = wav(spec(8000, 2), &[0; 10]);
        let err = Prompt::from_wav("x", Path::new("x.wav"), Cursor::new(bytes)).unwrap_err();
        assert!(matches!(err, PromptError::Format { channels: 2, .. }));
        let err = Prompt::from_wav("x", Path::new("junk.wav"), Cursor::new(b"RIFFjunk".to_vec()))
            .unwrap_err();
        assert!(matches!(err, PromptError::Wav { .. }));
        assert!(err.to_string().contains("junk.wav"));
        let bytes = wav(spec(8000, 1), &[]);
        let err = Prompt::from_wav("x", Path::new("e.wav"), Cursor::new(bytes)).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }));
    }

    #[test]
    fn announcement_names() {
        assert_eq!(names::position(1).as_deref(), Some("position-1"));
        assert_eq!(names::position(30).as_deref(), Some("position-30"));
        assert_eq!(names::position(31), None);
        assert_eq!(names::position(0), None);
        assert_eq!(names::estimated_wait(0).as_deref(), Some("wait-1-minute"));
        assert_eq!(names::estimated_wait(60).as_deref(), Some("wait-1-minute"));
        assert_eq!(names::estimated_wait(61).as_deref(), Some("wait-2-minutes"));
        assert_eq!(names::estimated_wait(6 * 60 + 1).as_deref(), Some("wait-10-minutes"));
        assert_eq!(names::estimated_wait(30 * 60).as_deref(), Some("wait-30-minutes"));
        assert_eq!(names::estimated_wait(30 * 60 + 1), None);
    }

    #[test]
    fn set_is_keyed_by_name() {
        let mut set = PromptSet::new();
        set.insert(Prompt::from_samples("b", &[0; 160]));
        set.insert(Prompt::from_samples("a", &[1; 160]));
        set.insert(Prompt::from_samples("a", &[2; 320]));
        assert_eq!(set.len(), 2);
        assert_eq!(set.names().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(set.get("a").unwrap().samples, 320);
        assert!(set.get("c").is_none());
        assert!(matches!(
            PromptSet::load_dir(Path::new("/nonexistent/prompts")),
            Err(PromptError::Directory { .. })
        ));
    }
}
