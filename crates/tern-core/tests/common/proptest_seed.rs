//! How every property test of tern-core is seeded (included with `#[path]`
//! by `tests/codec_roundtrip.rs` and by the unit tests that use proptest).
//!
//! - **Default: deterministic.** Each test runs its cases from one fixed
//!   seed, so `cargo test` and CI give the same verdict on every run.
//! - **`TERN_EXPLORE=1`: exploration.** Each test draws a fresh seed and runs
//!   16 times its cases (`PROPTEST_CASES=N` sets the count instead).
//!   `scripts/explore.sh` runs that in a loop.
//! - **`PROPTEST_RNG_SEED=S`: replay** of seed `S` (with the same
//!   `PROPTEST_CASES` as the run that failed).
//!
//! In every mode the test writes its seed and the command that replays it to
//! its output, which the test harness prints when the test fails.

use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

/// The seed of every default run.
pub const FIXED_SEED: u64 = 0x7e27_0001_5eed_0001;

/// How many more cases an exploration run makes than the default.
const EXPLORE_FACTOR: u32 = 16;

/// True when `TERN_EXPLORE` is set to anything but empty or `0`.
pub fn exploring() -> bool {
    std::env::var("TERN_EXPLORE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The proptest configuration of a test that runs `cases` cases by default.
pub fn config(cases: u32) -> Config {
    let (seed, origin) = match env_u64("PROPTEST_RNG_SEED") {
        Some(seed) => (seed, "from PROPTEST_RNG_SEED"),
        None if exploring() => (rand::random::<u64>(), "fresh, TERN_EXPLORE"),
        None => (FIXED_SEED, "fixed"),
    };
    let cases = match env_u64("PROPTEST_CASES") {
        Some(n) => u32::try_from(n).expect("PROPTEST_CASES fits in u32"),
        None if exploring() => cases.saturating_mul(EXPLORE_FACTOR),
        None => cases,
    };
    eprintln!(
        "proptest seed {seed} ({origin}), {cases} cases; replay: \
         PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases} {}",
        replay_command()
    );
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(seed),
        // A fixed seed replays a failure; no regression files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// `cargo test` for the running test alone (the harness names the test's
/// thread after the test).
fn replay_command() -> String {
    let package = env!("CARGO_PKG_NAME");
    let krate = env!("CARGO_CRATE_NAME");
    let target = if krate == package.replace('-', "_") {
        "--lib".to_owned()
    } else {
        format!("--test {krate}")
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("TEST_NAME")
        .to_owned();
    format!("cargo test -p {package} {target} -- --exact {test}")
}
