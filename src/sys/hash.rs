//! A short, stable name for a long key (interface names, socket paths):
//! FNV-1a, 64 bits, the same in every release, unlike std's hasher.

pub fn fnv1a64(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
