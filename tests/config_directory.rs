//! The `[[directory]]` transfer targets and `[trunk] outbound`: none by default, the commented
//! example in the shipped config is valid once uncommented and means what it says, and each mistake
//! is reported at its `file:line:col` with a hint.

mod support;

use support::config_text::{check, errors, position_of};
use tongdai::acd::directory::{Destination, TargetKind};
use tongdai::acd::province::Province;
use tongdai::config::DEFAULT_TOML;

/// The shipped config with its commented `[trunk] outbound` and `[[directory]]` example turned on.
fn example() -> String {
    let start = DEFAULT_TOML.find("# [[directory]]").unwrap();
    // The example runs to the first empty line.
    let end = start + DEFAULT_TOML[start..].find("\n\n").unwrap();
    let entries: String = DEFAULT_TOML[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let head = DEFAULT_TOML[..start]
        .replace("# outbound = \"203.0.113.10:5060\"", "outbound = \"203.0.113.10:5060\"");
    format!("{head}{entries}{}", &DEFAULT_TOML[end..])
}

#[test]
fn no_directory_and_no_outbound_by_default() {
    let c = check(DEFAULT_TOML).unwrap();
    assert!(c.directory.is_empty());
    assert_eq!(c.trunk.outbound, None);
}

#[test]
fn the_shipped_example_uncommented_is_valid_and_means_what_it_says() {
    let text = example();
    let c = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.trunk.outbound, Some("203.0.113.10:5060".parse().unwrap()));
    let d = &c.directory;
    let names: Vec<&str> = d.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Công an 113",
            "Cấp cứu 115",
            "Đầu mối bảo vệ trẻ em Đồng Nai",
            "Đầu mối bảo vệ trẻ em Cần Thơ"
        ]
    );
    let police = d.by_code("*31").unwrap();
    assert_eq!(police.kind, TargetKind::Police);
    assert_eq!(police.destination, Destination::Number("113".into()));
    assert_eq!(police.province, None);
    assert_eq!(d.by_code("%2A32").map(|e| e.kind), Some(TargetKind::Medical));
    let dong_nai = d.by_code("*41").unwrap();
    assert_eq!(dong_nai.kind, TargetKind::FocalPoint);
    assert_eq!(dong_nai.province, Province::from_name("Đồng Nai"));
    match &dong_nai.destination {
        Destination::Sip { uri, address } => {
            assert_eq!(uri.as_str(), "sip:focal@198.51.100.61:5060");
            assert_eq!(*address, "198.51.100.61:5060".parse().unwrap());
        }
        other => panic!("{other:?}"),
    }
    let can_tho = d.by_code("*42").unwrap();
    assert_eq!(can_tho.destination, Destination::Number("+842923821111".into()));
    assert_eq!(can_tho.province, Province::from_name("Cần Thơ"));
    assert_eq!(d.by_code("*21"), None, "feature codes are not directory codes");
}

#[test]
fn each_mistake_is_reported_where_it_is_with_a_hint() {
    let extra = "\n[[directory]]\nname = \"both\"\nuri = \"sip:a@192.0.2.1\"\nnumber = \"113\"\nkind = \"police\"\n\n\
                 [[directory]]\nname = \"neither\"\nkind = \"police\"\n\n\
                 [[directory]]\nname = \"host\"\nuri = \"sip:focal@so.example.vn\"\nkind = \"focal_point\"\n\n\
                 [[directory]]\nname = \"letters\"\nnumber = \"11a\"\nkind = \"police\"\n\n\
                 [[directory]]\nname = \"dn\"\nuri = \"sip:f@192.0.2.2\"\nprovince = \"Dong Nai\"\nkind = \"focal_point\"\n\n\
                 [[directory]]\nname = \"hn\"\nuri = \"sip:f@192.0.2.3\"\nprovince = \"Hà Nội\"\nkind = \"focal_point\"\n\n\
                 [[directory]]\nname = \"kind\"\nuri = \"sip:f@192.0.2.4\"\nkind = \"polise\"\n\n\
                 [[directory]]\nname = \"pause\"\nuri = \"sip:f@192.0.2.5\"\nkind = \"other\"\ncode = \"*21\"\n\n\
                 [[directory]]\nname = \"first\"\nuri = \"sip:f@192.0.2.6\"\nkind = \"other\"\ncode = \"*50\"\n\n\
                 [[directory]]\nname = \"second\"\nuri = \"sip:f@192.0.2.7\"\nkind = \"other\"\ncode = \"*50\"\n\n\
                 [[directory]]\nname = \"nostar\"\nuri = \"sip:f@192.0.2.8\"\nkind = \"other\"\ncode = \"31\"\n\n\
                 [[directory]]\nname = \"first\"\nuri = \"sip:f@192.0.2.9\"\nkind = \"national\"\n\n\
                 [[directory]]\nname = \"nokind\"\nuri = \"sip:f@192.0.2.10\"\n\n\
                 [[directory]]\nname = \"typo\"\nuri = \"sip:f@192.0.2.11\"\nkind = \"other\"\nprovice = \"Long An\"\n";
    let text = format!("{DEFAULT_TOML}{extra}");
    let errs = errors(&text);
    // Where the value of the `nth` (from 0) `key = value` line `line` of `extra` starts.
    let at = |line: &str, nth: usize| {
        let start = DEFAULT_TOML.len() + extra.match_indices(line).nth(nth).unwrap().0;
        let offset = start + line.find("= ").map_or(0, |i| i + 2);
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let row = text[..offset].matches('\n').count() + 1;
        format!("t.toml:{row}:{}:", text[line_start..offset].chars().count() + 1)
    };
    let expect = [
        (at("number = \"113\"", 0), "both `uri` and `number`", "keep one"),
        (at("uri = \"sip:focal@so.example.vn\"", 0), "IP address", "UDP"),
        (at("number = \"11a\"", 0), "not a number to dial", "digits only"),
        (
            at("province = \"Dong Nai\"", 0),
            "unknown province `Dong Nai`",
            "did you mean \"Đồng Nai\"",
        ),
        (at("province = \"Hà Nội\"", 0), "unknown province", "Cà Mau"),
        (at("kind = \"polise\"", 0), "unknown kind `polise`", "did you mean \"police\""),
        (at("code = \"*21\"", 0), "the agents' `pause` feature code", "[queue.feature_codes]"),
        (at("code = \"*50\"", 1), "also the code of `first`", "its own code"),
        (at("code = \"31\"", 0), "not a short code", "\"*31\""),
        (at("name = \"first\"", 1), "a second directory entry named `first`", "unique"),
    ];
    for (position, words, hint) in expect {
        assert!(
            errs.iter().any(|e| e.starts_with(&position) && e.contains(words) && e.contains(hint)),
            "{position} {words} / {hint}: {errs:#?}"
        );
    }
    let with = |words: &str| errs.iter().filter(|e| e.contains(words)).count();
    assert_eq!(with("neither `uri` nor `number`"), 1, "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("provice")), "an unknown key is named: {errs:#?}");
    let nokind = errs.iter().find(|e| e.contains("directory[12].kind"));
    assert!(nokind.is_some_and(|e| e.contains("missing")), "{errs:#?}");
}

#[test]
fn a_number_needs_the_trunk_outbound_address() {
    let extra = "\n[[directory]]\nname = \"Công an 113\"\nnumber = \"113\"\nkind = \"police\"\n";
    let text = format!("{DEFAULT_TOML}{extra}");
    let errs = errors(&text);
    let (row, col) = position_of(&text[DEFAULT_TOML.len()..], "number = \"113\"");
    let row = row + DEFAULT_TOML.matches('\n').count();
    let position = format!("t.toml:{row}:{}:", col + "number = ".len());
    assert!(
        errs.iter().any(|e| e.starts_with(&position)
            && e.contains("[trunk] outbound is not set")
            && e.contains("[trunk] outbound = \"IP:port\"")),
        "{errs:#?}"
    );
    // With the address, the same entry is accepted; a SIP-URI entry never needs it.
    let ok = text
        .replace("numbers = [\"111\"]\n", "numbers = [\"111\"]\noutbound = \"127.0.0.1:5090\"\n");
    assert_eq!(check(&ok).unwrap().directory.entries().len(), 1);
    let sip = format!(
        "{DEFAULT_TOML}\n[[directory]]\nname = \"NC\"\nuri = \"sip:111@127.0.0.1:5091\"\nkind = \"national\"\n"
    );
    assert!(check(&sip).is_ok());
}

#[test]
fn a_bad_outbound_address_is_reported_with_a_hint() {
    let text = DEFAULT_TOML
        .replace("numbers = [\"111\"]\n", "numbers = [\"111\"]\noutbound = \"sbc.example.vn\"\n");
    let errs = errors(&text);
    let (row, _) = position_of(&text, "outbound = \"sbc");
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("t.toml:{row}:")) && e.contains("outbound")),
        "{errs:#?}"
    );
}
