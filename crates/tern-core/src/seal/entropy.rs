//! Where handshake randomness comes from.
//!
//! Ephemeral keys must be unpredictable, so drivers seed [`Entropy`] from
//! the operating system. The simulator seeds it from its run seed, which
//! keeps every run reproducible (and is fine there: nothing is secret).

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// A cryptographically secure generator (ChaCha12) for handshake keys.
pub struct Entropy(StdRng);

impl Entropy {
    /// From 32 bytes of OS randomness (what drivers do).
    pub fn from_seed(seed: [u8; 32]) -> Entropy {
        Entropy(StdRng::from_seed(seed))
    }

    /// From a 64-bit run seed: deterministic, for tests and the simulator
    /// only. An attacker who guesses the seed predicts every ephemeral key.
    pub fn from_test_seed(seed: u64) -> Entropy {
        Entropy(StdRng::seed_from_u64(seed ^ 0x5e41_ed00_7e24_0001))
    }

    /// A snow resolver whose generator is seeded from this one; everything
    /// else comes from snow's built-in primitives.
    pub(crate) fn resolver(&mut self) -> BoxedCryptoResolver {
        let mut seed = [0u8; 32];
        self.0.fill_bytes(&mut seed);
        Box::new(FallbackResolver::new(
            Box::new(SeededRng(seed)),
            Box::new(DefaultResolver),
        ))
    }

    /// Raw random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

/// Resolves only the generator, from a fixed seed.
struct SeededRng([u8; 32]);

struct SnowRandom(StdRng);

impl Random for SnowRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededRng {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SnowRandom(StdRng::from_seed(self.0))))
    }
    fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }
    fn resolve_hash(&self, _: &HashChoice) -> Option<Box<dyn Hash>> {
        None
    }
    fn resolve_cipher(&self, _: &CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}
