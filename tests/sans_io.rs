//! The sans-IO rule (ARCHITECTURE.md §3), checked rather than hoped: the protocol and domain core and
//! the media pacing/relay/mix logic never import tokio, open sockets or read a clock. Time comes in
//! as a value; only `src/runtime` does I/O.

use std::path::Path;

const CORE: &[&str] =
    &["src/sip", "src/acd", "src/media/pacing.rs", "src/media/relay.rs", "src/media/mix.rs"];
const FORBIDDEN: &[&str] = &[
    "tokio",
    "Instant::now",
    "SystemTime::now",
    "std::net::UdpSocket",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "UdpSocket::bind",
    "TcpStream::connect",
    "std::thread::sleep",
    "std::fs::",
];

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Lines of `text` outside comments (line comments and doc comments; the core has no block comments
/// hiding code), up to the unit-test module: tests may take a base `Instant` from the clock, the code
/// under test may not.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().take_while(|(_, l)| l.trim() != "#[cfg(test)]").filter_map(|(i, l)| {
        let code = l.split("//").next().unwrap_or("");
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    for root in CORE {
        rust_files(Path::new(root), &mut files);
    }
    assert!(files.iter().any(|f| f.starts_with("src/sip")), "the scan must see the SIP core");
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, code) in code_lines(&text) {
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{line}: {word}: {}", file.display(), code.trim()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "sans-IO violations:\n{}", hits.join("\n"));
}

#[test]
fn the_scan_would_catch_a_violation() {
    let sample = "use std::time::Instant;\nfn f() { let t = Instant::now(); } // Instant::now in a comment\n#[cfg(test)]\nmod tests { fn t() { Instant::now(); } }\n";
    let found: Vec<_> =
        code_lines(sample).filter(|(_, c)| FORBIDDEN.iter().any(|w| c.contains(w))).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, 2);
}
