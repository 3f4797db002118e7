//! Ids remembered by a 128-bit hash instead of their text, where a run must know every id it has seen
//! (duplicate rows, two records deriving one resource id): 16 bytes an id however long it is.

use std::hash::{Hash, Hasher};

/// A 128-bit hash of `text` (two SipHash passes told apart by a prefix, with fixed keys: the same in every
/// run), so that two different ids sharing one is not a concern even for hundreds of millions of ids.
pub fn hash128(text: &str) -> u128 {
    let mut first = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut first);
    let mut second = std::collections::hash_map::DefaultHasher::new();
    (1u8, text).hash(&mut second);
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn different_ids_hash_apart_and_one_id_always_alike() {
        let ids: std::collections::HashSet<u128> = (0..100_000)
            .map(|n| super::hash128(&format!("ref-{n}")))
            .collect();
        assert_eq!(ids.len(), 100_000);
        assert_eq!(super::hash128("ref-1"), super::hash128("ref-1"));
        assert_ne!(super::hash128(""), super::hash128("\0"));
    }
}
