//! The datagrams of `proto-spec/test-vectors.md` and `proto-spec/sealed.md`:
//! every `### name` heading followed by a ```` ```hex ```` block. They seed
//! the corpus of raw datagrams (`fuzz/seeds/datagrams`) and the dictionary
//! (`fuzz/tern.dict`), for these targets and for anyone fuzzing a live
//! `ternd` with their own tools.

use tern_core::wire::{encode_to_bytes, Packet};

/// The spec files holding vectors, relative to the repository root.
pub const SPEC_FILES: [&str; 5] = [
    "proto-spec/test-vectors.md",
    "proto-spec/test-vectors-v2.md",
    "proto-spec/test-vectors-groups.md",
    "proto-spec/test-vectors-address-tokens.md",
    "proto-spec/sealed.md",
];

/// Longest dictionary entry libFuzzer accepts.
pub const MAX_DICT_WORD: usize = 64;

/// `(name, datagram)` for every vector in `markdown`, in order.
pub fn vectors(markdown: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    let mut hex: Option<String> = None;
    for line in markdown.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            name = Some(h.trim().to_string());
        } else if line.trim() == "```hex" {
            hex = Some(String::new());
        } else if line.trim() == "```" {
            if let (Some(n), Some(h)) = (name.take(), hex.take()) {
                if let Some(bytes) = parse_hex(&h) {
                    out.push((n, bytes));
                }
            }
        } else if let Some(h) = hex.as_mut() {
            h.push_str(line);
        }
    }
    out
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// Dictionary words: the clear and sealed header prefixes, the header of
/// each vector, and every frame of the vectors that decode, re-encoded, up
/// to [`MAX_DICT_WORD`] bytes.
pub fn dictionary(vectors: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut words: Vec<(String, Vec<u8>)> = vec![
        ("clear_header".into(), vec![0x01, 0x00]),
        ("sealed_header".into(), vec![0x01, 0x01]),
        ("no_session".into(), vec![0; 8]),
    ];
    for (name, bytes) in vectors {
        if bytes.len() >= 10 {
            words.push((format!("{name}_session"), bytes[2..10].to_vec()));
        }
        let Ok(p) = Packet::decode(bytes.clone().into()) else {
            continue;
        };
        for (i, f) in p.frames.iter().enumerate() {
            words.push((format!("{name}_frame{i}"), encode_to_bytes(f).to_vec()));
        }
    }
    words.retain(|(_, w)| !w.is_empty() && w.len() <= MAX_DICT_WORD);
    let mut seen = std::collections::HashSet::new();
    words.retain(|(_, w)| seen.insert(w.clone()));
    words
}

/// One dictionary line in libFuzzer's (and AFL's) format: `name="\xNN..."`.
pub fn dict_line(name: &str, word: &[u8]) -> String {
    let escaped: String = word.iter().map(|b| format!("\\x{b:02x}")).collect();
    format!("{name}=\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vectors_parse_and_the_dictionary_is_libfuzzer_sized() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let md = std::fs::read_to_string(format!("{root}/{}", SPEC_FILES[0])).unwrap();
        let v = vectors(&md);
        assert!(v.len() > 60, "{} vectors", v.len());
        let login = &v.iter().find(|(n, _)| n == "login").unwrap().1;
        assert!(Packet::decode(login.clone().into()).is_ok());
        let d = dictionary(&v);
        assert!(d.iter().all(|(_, w)| w.len() <= MAX_DICT_WORD));
        assert_eq!(dict_line("x", &[1, 0xab]), "x=\"\\x01\\xab\"");
    }
}
