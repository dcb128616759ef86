//! The Goldilocks field: integers modulo p = 2^64 − 2^32 + 1.
//!
//! Elements are plain `u64`s in *canonical* form (`x < P`); every function here
//! takes canonical inputs and returns canonical outputs. [`is_canonical`] checks
//! untrusted input, [`reduce`] maps any `u64` into the field.
//!
//! p − 1 = 2^32 · (2^32 − 1), so the multiplicative group has a subgroup of order
//! 2^k for every k ≤ [`TWO_ADICITY`]: [`root_of_unity`] returns its generator, the
//! root an NTT of size 2^k uses.
//!
//! ```
//! use pjp_gpu::field::{self, P};
//!
//! assert_eq!(field::add(P - 1, 1), 0);
//! assert_eq!(field::sub(0, 1), P - 1);
//! assert_eq!(field::mul(P - 1, P - 1), 1); // (−1)² = 1
//! let x = 123_456_789;
//! assert_eq!(field::mul(x, field::inverse(x).unwrap()), 1);
//! ```

/// The modulus p = 2^64 − 2^32 + 1.
pub const P: u64 = 0xffff_ffff_0000_0001;

/// 2^64 mod p = 2^32 − 1.
pub const EPSILON: u64 = 0xffff_ffff;

/// The largest k with 2^k dividing p − 1: NTT sizes up to 2^32.
pub const TWO_ADICITY: u32 = 32;

/// A generator of the multiplicative group.
pub const GENERATOR: u64 = 7;

/// A primitive 2^32-th root of unity: 7^((p−1)/2^32).
pub const ROOT_OF_UNITY_2_32: u64 = 1_753_635_133_440_165_772;

/// Whether `x` is a canonical field element (`x < P`).
#[inline]
pub const fn is_canonical(x: u64) -> bool {
    x < P
}

/// Maps any `u64` into the field (`x mod p`).
#[inline]
pub const fn reduce(x: u64) -> u64 {
    if x >= P { x - P } else { x }
}

/// `len` pseudo-random canonical elements from `seed` (SplitMix64): reproducible
/// test vectors and benchmark inputs. Not for cryptography.
///
/// ```
/// use pjp_gpu::field;
///
/// let v = field::sample(4, 7);
/// assert_eq!(v, field::sample(4, 7));
/// assert!(v.iter().all(|&x| field::is_canonical(x)));
/// ```
pub fn sample(len: usize, seed: u64) -> Vec<u64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            reduce(z ^ (z >> 31))
        })
        .collect()
}

/// a + b mod p.
#[inline]
pub const fn add(a: u64, b: u64) -> u64 {
    let (sum, overflow) = a.overflowing_add(b);
    let (less_p, borrow) = sum.overflowing_sub(P);
    // On overflow the true sum is sum + 2^64 ≡ sum + EPSILON, which wrapping
    // `sum - P` computes; otherwise subtract p iff sum ≥ p.
    if overflow || !borrow { less_p } else { sum }
}

/// a − b mod p.
#[inline]
pub const fn sub(a: u64, b: u64) -> u64 {
    let (diff, borrow) = a.overflowing_sub(b);
    // On borrow, diff = a − b + 2^64; a − b + p = diff − EPSILON (mod 2^64).
    if borrow {
        diff.wrapping_sub(EPSILON)
    } else {
        diff
    }
}

/// −a mod p.
#[inline]
pub const fn neg(a: u64) -> u64 {
    if a == 0 { 0 } else { P - a }
}

/// Reduces a 128-bit value modulo p, using 2^64 ≡ 2^32 − 1 and 2^96 ≡ −1.
#[inline]
pub const fn reduce128(x: u128) -> u64 {
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    let hi_hi = hi >> 32;
    let hi_lo = hi & EPSILON;
    // lo − hi_hi·2^96 ≡ lo − hi_hi. On borrow t0 = lo − hi_hi + 2^64 ≥ 2^64 − 2^32
    // > EPSILON, so subtracting EPSILON (≡ adding p) cannot underflow.
    let (t0, borrow) = lo.overflowing_sub(hi_hi);
    let t0 = t0.wrapping_sub(EPSILON * borrow as u64);
    // hi_lo·2^64 ≡ hi_lo·(2^32 − 1) < 2^64.
    let t1 = (hi_lo << 32) - hi_lo;
    // On carry t2 ≤ 2^64 − 2^33, so adding EPSILON cannot overflow.
    let (t2, carry) = t0.overflowing_add(t1);
    let r = t2.wrapping_add(EPSILON * carry as u64);
    reduce(r)
}

/// a · b mod p.
#[inline]
pub const fn mul(a: u64, b: u64) -> u64 {
    reduce128((a as u128) * (b as u128))
}

/// a² mod p.
#[inline]
pub const fn square(a: u64) -> u64 {
    mul(a, a)
}

/// base^exp mod p (square and multiply).
pub const fn pow(base: u64, mut exp: u64) -> u64 {
    let mut acc = 1;
    let mut b = base;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, b);
        }
        b = square(b);
        exp >>= 1;
    }
    acc
}

/// The multiplicative inverse a^(p−2), or `None` for zero.
pub const fn inverse(a: u64) -> Option<u64> {
    if a == 0 { None } else { Some(pow(a, P - 2)) }
}

/// A primitive 2^`log_n`-th root of unity (the one NTTs of size 2^`log_n` use),
/// or `None` when `log_n` exceeds [`TWO_ADICITY`].
///
/// ```
/// use pjp_gpu::field;
///
/// assert_eq!(field::root_of_unity(0), Some(1));
/// assert_eq!(field::root_of_unity(1), Some(field::P - 1)); // −1
/// assert_eq!(field::root_of_unity(32), Some(field::ROOT_OF_UNITY_2_32));
/// assert_eq!(field::root_of_unity(33), None);
/// ```
pub const fn root_of_unity(log_n: u32) -> Option<u64> {
    if log_n > TWO_ADICITY {
        return None;
    }
    let mut w = ROOT_OF_UNITY_2_32;
    let mut k = TWO_ADICITY;
    while k > log_n {
        w = square(w);
        k -= 1;
    }
    Some(w)
}

/// The inverse of 2^`log_n` in the field (the inverse NTT's scaling factor), or
/// `None` when `log_n` exceeds [`TWO_ADICITY`].
pub const fn inverse_of_power_of_two(log_n: u32) -> Option<u64> {
    if log_n > TWO_ADICITY {
        return None;
    }
    // 2^-1 = (p + 1) / 2.
    let half = P.div_ceil(2);
    Some(pow(half, log_n as u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(u128::from(P), (1u128 << 64) - (1u128 << 32) + 1);
        assert_eq!(u128::from(EPSILON), (1u128 << 64) % u128::from(P));
        assert_eq!(pow(GENERATOR, (P - 1) >> 32), ROOT_OF_UNITY_2_32);
        assert_eq!(pow(ROOT_OF_UNITY_2_32, 1 << 31), P - 1);
        assert_eq!(pow(ROOT_OF_UNITY_2_32, 1 << 32), 1);
    }

    #[test]
    fn edges() {
        assert_eq!(add(P - 1, P - 1), P - 2);
        assert_eq!(sub(0, P - 1), 1);
        assert_eq!(mul(P - 1, 2), P - 2);
        assert_eq!(neg(0), 0);
        assert_eq!(neg(1), P - 1);
        assert_eq!(reduce(u64::MAX), EPSILON - 1);
        assert_eq!(reduce128(u128::MAX), (u128::MAX % P as u128) as u64);
        assert_eq!(inverse(0), None);
        assert_eq!(mul(2, inverse_of_power_of_two(1).unwrap()), 1);
        for k in 0..=TWO_ADICITY {
            let n_inv = inverse_of_power_of_two(k).unwrap();
            assert_eq!(mul(n_inv, pow(2, u64::from(k))), 1, "k = {k}");
        }
    }

    #[test]
    fn roots_have_exact_order() {
        for k in 1..=TWO_ADICITY {
            let w = root_of_unity(k).unwrap();
            assert_eq!(pow(w, 1 << k), 1);
            assert_eq!(
                pow(w, 1 << (k - 1)),
                P - 1,
                "order of root {k} is not 2^{k}"
            );
        }
    }
}
