//! Fixed seeds for the store's randomized equivalence tests, with a replay
//! line for any seed that fails.

/// Runs `f(seed)` for each seed of `base`, printing the seed and how to
/// replay it if it fails. `TERN_EQ_SEED=<n>` runs that seed alone;
/// `TERN_EXPLORE=1` (see `scripts/explore.sh`) adds one fresh seed.
pub fn for_seeds(test: &str, base: &[u64], f: impl Fn(u64)) {
    let seeds: Vec<u64> = match std::env::var("TERN_EQ_SEED") {
        Ok(s) => vec![s.parse().expect("TERN_EQ_SEED must be a u64")],
        Err(_) => {
            let mut v = base.to_vec();
            if std::env::var("TERN_EXPLORE").is_ok_and(|v| !v.is_empty() && v != "0") {
                v.push(rand::random());
            }
            v
        }
    };
    for seed in seeds {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(p) = r {
            eprintln!(
                "{test} failed with seed {seed}; replay: \
                 TERN_EQ_SEED={seed} cargo test -p tern --test {test}"
            );
            std::panic::resume_unwind(p);
        }
    }
}
