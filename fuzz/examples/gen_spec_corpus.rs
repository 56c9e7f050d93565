//! Writes the raw-datagram seed corpus and the dictionary made from the
//! spec's test vectors (`tern_fuzz::spec_vectors`):
//!
//! ```sh
//! cd fuzz && cargo run --example gen_spec_corpus   # fuzz/seeds/datagrams/*.bin, fuzz/tern.dict
//! ```
//!
//! One file per vector, the datagram exactly as the spec writes it (valid
//! and invalid ones alike: an outside fuzzer learns both shapes).

use std::fmt::Write as _;
use std::path::PathBuf;

use tern_fuzz::spec_vectors::{dict_line, dictionary, vectors, SPEC_FILES};

fn main() -> std::io::Result<()> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = fuzz.join("seeds/datagrams");
    std::fs::create_dir_all(&dir)?;
    let mut all = Vec::new();
    for file in SPEC_FILES {
        let md = std::fs::read_to_string(fuzz.join("..").join(file))?;
        all.extend(vectors(&md));
    }
    for (name, bytes) in &all {
        std::fs::write(dir.join(format!("{name}.bin")), bytes)?;
    }
    let mut dict = String::from(
        "# Tern wire protocol (versions 1 and 2): words from proto-spec/test-vectors.md,\n\
         # test-vectors-v2.md, test-vectors-groups.md, test-vectors-address-tokens.md\n\
         # and sealed.md\n\
         # (header prefixes, session ids, whole frames). Written by\n\
         # `cargo run --example gen_spec_corpus`; libFuzzer -dict= and AFL++ -x read it.\n",
    );
    for (name, word) in dictionary(&all) {
        let _ = writeln!(dict, "{}", dict_line(&name, &word));
    }
    std::fs::write(fuzz.join("tern.dict"), dict)?;
    println!(
        "{} datagrams in {}, dictionary in fuzz/tern.dict",
        all.len(),
        dir.display()
    );
    Ok(())
}
