//! Which record versions a run delivered in its settle window, kept in the
//! state in a few hundred bytes: a Bloom filter of `(id, updatedAt)`.
//!
//! The next run reads that window again (`pager::settle`) and asks, for
//! each version it finds there, whether the last run delivered it. A "no"
//! proves the API showed the update late: the version was written before
//! the last run started (its stamp is below that run's signpost), yet the
//! last run, which read past it, did not see it. A "yes" may be a false
//! positive (about 1 in 500 at the usual sizes, more in a window of
//! thousands of updates): the filter can only under-count late updates,
//! never report one that was not.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

/// Probes per version.
const HASHES: u64 = 4;
/// Bits per version the filter is sized for: about 0.2% false positives.
const BITS_PER_VERSION: usize = 12;
/// The filter's size bounds, in bits (powers of two): a window without
/// updates costs a few bytes; one of thousands, at most 1 KiB.
const MIN_BITS: usize = 64;
const MAX_BITS: usize = 8192;

/// The hash of one record version.
pub fn version_hash(id: &str, updated_ms: i64) -> u64 {
    // FNV-1a over the id and the stamp, then a finalizer that spreads the
    // bits (splitmix64's), so that the probes below are independent enough.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(updated_ms.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A Bloom filter of version hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// A power of two of bits, at least 64.
    words: Vec<u64>,
}

impl Seen {
    /// A filter holding `hashes`, sized for how many there are.
    pub fn of(hashes: &[u64]) -> Seen {
        let bits = (hashes.len() * BITS_PER_VERSION)
            .next_power_of_two()
            .clamp(MIN_BITS, MAX_BITS);
        let mut seen = Seen {
            words: vec![0; bits / 64],
        };
        for &h in hashes {
            for i in seen.probes(h) {
                seen.words[i / 64] |= 1 << (i % 64);
            }
        }
        seen
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.probes(hash)
            .all(|i| self.words[i / 64] & (1 << (i % 64)) != 0)
    }

    /// Double hashing: `h1 + k·h2` over the filter's bits.
    fn probes(&self, hash: u64) -> impl Iterator<Item = usize> {
        let mask = (self.words.len() * 64 - 1) as u64;
        let step = mix(hash) | 1;
        (0..HASHES).map(move |k| (hash.wrapping_add(k.wrapping_mul(step)) & mask) as usize)
    }

    /// Base64 of the bits, little-endian words.
    pub fn encode(&self) -> String {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        STANDARD_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Seen, String> {
        let bytes = STANDARD_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("is not base64: {e}"))?;
        let bits = bytes.len() * 8;
        if !bits.is_power_of_two() || !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(format!(
                "holds {bits} bits, not a power of two from {MIN_BITS} to {MAX_BITS}"
            ));
        }
        let words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        Ok(Seen { words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> String {
        format!("{i:024x}")
    }

    #[test]
    fn holds_what_it_was_given_and_round_trips() {
        let hashes: Vec<u64> = (0..300)
            .map(|i| version_hash(&id(i), 1_700_000_000_000 + i as i64))
            .collect();
        let seen = Seen::of(&hashes);
        assert!(hashes.iter().all(|&h| seen.contains(h)));
        let back = Seen::decode(&seen.encode()).unwrap();
        assert_eq!(back, seen);
    }

    #[test]
    fn rarely_claims_a_version_it_was_not_given() {
        let given: Vec<u64> = (0..500).map(|i| version_hash(&id(i), 5)).collect();
        let seen = Seen::of(&given);
        // The same ids at another stamp: other versions of the same records.
        let false_positives = (0..10_000)
            .filter(|&i| seen.contains(version_hash(&id(i % 500), 6 + i as i64)))
            .count();
        assert!(false_positives < 100, "{false_positives} in 10,000");
    }

    #[test]
    fn an_empty_window_is_a_few_bytes_and_holds_nothing() {
        let seen = Seen::of(&[]);
        assert_eq!(seen.encode().len(), 11);
        assert!(!seen.contains(version_hash(&id(1), 1)));
    }

    #[test]
    fn a_large_window_stays_within_a_kibibyte() {
        let given: Vec<u64> = (0..50_000).map(|i| version_hash(&id(i), 1)).collect();
        let seen = Seen::of(&given);
        assert_eq!(seen.words.len() * 8, MAX_BITS / 8);
    }

    #[test]
    fn broken_text_is_refused() {
        assert!(Seen::decode("not base64!").is_err());
        assert!(Seen::decode("AAAA").is_err(), "24 bits");
    }
}
