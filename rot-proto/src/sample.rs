//! Deterministic sampling from a seed. The conformance checks pick the transactions and
//! inputs they verify with a [`Sampler`], so that anyone holding the seed (a proxy publishing
//! an incident, a server operator reading it) picks the same ones again and can replay the
//! evidence. The stream is SHA-256 of a domain tag, a label, the seed and a counter: simple
//! to reimplement in any language. Each use has its own label, so one check's picks do not
//! depend on how many values another check drew.

use crate::hash::sha256;

/// Domain tag of the stream, so its values never collide with other uses of SHA-256.
const DOMAIN: &[u8] = b"rot/sample/v1";

/// A reproducible stream of random numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampler {
    label: String,
    seed: u64,
    counter: u64,
}

impl Sampler {
    /// The stream of `seed` for the use named `label` (e.g. a check's name).
    pub fn new(seed: u64, label: &str) -> Self {
        Self {
            label: label.to_owned(),
            seed,
            counter: 0,
        }
    }

    /// The next value: the first 8 bytes (little-endian) of
    /// `sha256("rot/sample/v1" || len(label) as u8 || label || seed as u64 LE || counter as
    /// u64 LE)`, counter from 0; labels are at most 255 bytes (longer ones are cut).
    pub fn next_u64(&mut self) -> u64 {
        let label = &self.label.as_bytes()[..self.label.len().min(255)];
        let mut input = Vec::with_capacity(DOMAIN.len() + 1 + label.len() + 16);
        input.extend_from_slice(DOMAIN);
        input.push(label.len() as u8);
        input.extend_from_slice(label);
        input.extend_from_slice(&self.seed.to_le_bytes());
        input.extend_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        let digest = sha256(&input);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    /// A value in `0..n` (`n` must not be 0). The modulo bias is below 2^-40 for any `n`
    /// a sample is drawn from here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `k` distinct indices of `0..n` (all of them, in a mixed order, when `k >= n`), in the
    /// order drawn. Robert Floyd's algorithm: `k` draws whatever `n` is.
    pub fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut picked = Vec::with_capacity(k);
        for j in n - k..n {
            let t = self.below(j + 1);
            picked.push(if picked.contains(&t) { j } else { t });
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let mut a = Sampler::new(42, "x");
        let mut b = Sampler::new(42, "x");
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], Sampler::new(43, "x").next_u64());
        assert_ne!(first[0], Sampler::new(42, "y").next_u64());
        // The stream is the documented hash, so other implementations can replay it.
        let mut input = b"rot/sample/v1\x01x".to_vec();
        input.extend_from_slice(&42u64.to_le_bytes());
        input.extend_from_slice(&0u64.to_le_bytes());
        let expected = u64::from_le_bytes(sha256(&input)[..8].try_into().unwrap());
        assert_eq!(first[0], expected);
    }

    #[test]
    fn distinct_indices_are_distinct_and_in_range() {
        for seed in 0..50 {
            let mut sampler = Sampler::new(seed, "distinct");
            for (n, k) in [(10, 3), (10, 10), (3, 8), (1000, 7), (1, 1), (0, 4)] {
                let picked = sampler.distinct(n, k);
                assert_eq!(picked.len(), k.min(n));
                assert!(picked.iter().all(|&i| i < n));
                let mut sorted = picked.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), picked.len(), "{picked:?}");
            }
        }
    }

    #[test]
    fn samples_spread_over_the_range() {
        let mut sampler = Sampler::new(7, "spread");
        let mut seen = [false; 10];
        for _ in 0..200 {
            seen[sampler.below(10)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
