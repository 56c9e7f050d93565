//! Reading `proto-spec/test-vectors.md`: every `### name` heading and the
//! ```hex block under it.

use std::collections::BTreeMap;

/// Decodes hex, ignoring ASCII whitespace. Panics on anything else.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
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

#[test]
fn parser_rejects_a_heading_without_hex() {
    let md = "### a\n```hex\n01\n```\n### b\ntext\n### c\n```hex\n02\n```\n";
    assert!(std::panic::catch_unwind(|| parse_vectors(md)).is_err());
    let ok = parse_vectors("# t\n### a\nsome text\n```hex\n01 02\n03\n```\n");
    assert_eq!(ok.get("a"), Some(&vec![1, 2, 3]));
}
