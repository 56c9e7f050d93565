//! The harness of the spec test vectors, shared by the checks of
//! `proto-spec/test-vectors.md` (version 1) and `test-vectors-v2.md`.
//!
//! Every `### name` heading in such a file is followed by a ```hex block
//! holding a whole datagram. A check knows, for each name, what the datagram
//! must mean: a valid packet (decode gives exactly that packet, and encoding
//! it gives back exactly those bytes), a packet sent with non-minimal varints
//! (decodes, and re-encodes to the minimal form), or an invalid datagram
//! (decode fails with exactly that error). A vector present on one side only
//! fails the check.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tern_core::wire::{DecodeError, Packet};

/// What a vector must decode to.
pub enum Expect {
    /// Decodes to this packet, which encodes back to the same bytes.
    Valid(Packet),
    /// Decodes to this packet; encoding it gives the minimal form `canonical`.
    NonCanonical {
        packet: Packet,
        canonical: &'static str,
    },
    /// Decoding fails with this error.
    Invalid(DecodeError),
}

/// Decodes hex, ignoring ASCII whitespace. Panics on anything else.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex digits {pair:?}"))
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every `### name` heading and the ```hex block that follows it.
pub fn parse_vectors(markdown: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut name: Option<String> = None;
    let mut block: Option<String> = None;
    for (i, line) in markdown.lines().enumerate() {
        let line_no = i + 1;
        if let Some(body) = block.as_mut() {
            if line.trim() == "```" {
                let name = name
                    .take()
                    .unwrap_or_else(|| panic!("line {line_no}: hex block without a ### heading"));
                let bytes = unhex(body);
                assert!(
                    out.insert(name.clone(), bytes).is_none(),
                    "vector {name} appears twice"
                );
                block = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(heading) = line.strip_prefix("### ") {
            assert!(
                name.is_none(),
                "line {line_no}: vector {:?} has no hex block",
                name.unwrap()
            );
            name = Some(heading.trim().to_string());
        } else if line.trim() == "```hex" {
            block = Some(String::new());
        } else if line.starts_with("## ") || line.starts_with("# ") {
            assert!(
                name.is_none(),
                "line {line_no}: vector {:?} has no hex block",
                name.unwrap()
            );
        }
    }
    assert!(block.is_none(), "unterminated hex block at end of file");
    assert!(
        name.is_none(),
        "vector {:?} has no hex block",
        name.unwrap()
    );
    out
}

fn check(name: &str, bytes: &[u8], expect: &Expect) {
    let decoded = Packet::decode(Bytes::copy_from_slice(bytes));
    match expect {
        Expect::Valid(packet) => {
            assert_eq!(decoded.as_ref(), Ok(packet), "{name}: decode");
            assert_eq!(hex(&packet.encode()), hex(bytes), "{name}: encode");
        }
        Expect::NonCanonical { packet, canonical } => {
            assert_eq!(decoded.as_ref(), Ok(packet), "{name}: decode");
            let canonical = unhex(canonical);
            assert_ne!(canonical, bytes, "{name}: the vector is canonical");
            assert_eq!(hex(&packet.encode()), hex(&canonical), "{name}: encode");
        }
        Expect::Invalid(err) => {
            assert_eq!(decoded.as_ref(), Err(err), "{name}: decode");
        }
    }
}

/// Checks every vector of the markdown file `spec` against `expected`.
pub fn check_file(spec: &str, expected: Vec<(&'static str, Expect)>) {
    let markdown = std::fs::read_to_string(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let found = parse_vectors(&markdown);

    let mut names = BTreeSet::new();
    let mut missing = Vec::new();
    for (name, expect) in &expected {
        assert!(names.insert(*name), "the test lists {name} twice");
        match found.get(*name) {
            Some(bytes) => check(name, bytes, expect),
            None => {
                // Print the encoding so that a new vector can be pasted in.
                let shown = match expect {
                    Expect::Valid(p) | Expect::NonCanonical { packet: p, .. } => hex(&p.encode()),
                    Expect::Invalid(_) => "(hand-made bytes)".to_string(),
                };
                missing.push(format!("{name}: {shown}"));
            }
        }
    }
    let unchecked: Vec<&String> = found
        .keys()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "vectors missing from test-vectors.md:\n{}",
        missing.join("\n")
    );
    assert!(
        unchecked.is_empty(),
        "vectors in test-vectors.md that this test does not check: {unchecked:?}"
    );
}

#[test]
fn parser_rejects_a_heading_without_hex() {
    let md = "### a\n```hex\n01\n```\n### b\ntext\n### c\n```hex\n02\n```\n";
    assert!(std::panic::catch_unwind(|| parse_vectors(md)).is_err());
    let ok = parse_vectors("# t\n### a\nsome text\n```hex\n01 02\n03\n```\n");
    assert_eq!(ok.get("a"), Some(&vec![1, 2, 3]));
}
