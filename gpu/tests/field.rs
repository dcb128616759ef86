//! Goldilocks arithmetic checked against plain u128 arithmetic, on random and
//! edge inputs.

use pjp_gpu::field::{self, P};
use proptest::prelude::*;

const P128: u128 = P as u128;

/// Canonical elements, with the edges (0, 1, p − 1, 2^32 ± 1, …) drawn often.
fn element() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..P,
        1 => prop::sample::select(vec![
            0,
            1,
            2,
            P - 1,
            P - 2,
            field::EPSILON,
            field::EPSILON + 1,
            field::EPSILON - 1,
            1 << 32,
            1 << 63,
            (1 << 63) - 1,
            P >> 1,
            (P >> 1) + 1,
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn mul_matches_u128(a in element(), b in element()) {
        let expected = (u128::from(a) * u128::from(b) % P128) as u64;
        prop_assert_eq!(field::mul(a, b), expected);
    }

    #[test]
    fn reduce128_matches_u128(x in any::<u128>()) {
        prop_assert_eq!(field::reduce128(x), (x % P128) as u64);
    }

    #[test]
    fn add_sub_match_u128(a in element(), b in element()) {
        prop_assert_eq!(field::add(a, b), ((u128::from(a) + u128::from(b)) % P128) as u64);
        prop_assert_eq!(field::sub(a, b), ((u128::from(a) + P128 - u128::from(b)) % P128) as u64);
        prop_assert_eq!(field::add(field::sub(a, b), b), a);
        prop_assert_eq!(field::add(a, field::neg(a)), 0);
    }

    #[test]
    fn inverse_inverts(a in 1..P) {
        let inv = field::inverse(a);
        prop_assert!(inv.is_some());
        prop_assert_eq!(field::mul(a, inv.unwrap_or(0)), 1);
    }

    #[test]
    fn reduce_is_mod_p(x in any::<u64>()) {
        prop_assert_eq!(field::reduce(x), x % P);
        prop_assert!(field::is_canonical(field::reduce(x)));
    }
}

#[test]
fn all_edge_pairs() {
    let edges = [
        0,
        1,
        2,
        P - 1,
        P - 2,
        field::EPSILON,
        field::EPSILON + 1,
        1 << 32,
        1 << 63,
        u64::MAX >> 1,
        P >> 1,
    ];
    for &a in &edges {
        for &b in &edges {
            let (a128, b128) = (u128::from(a), u128::from(b));
            assert_eq!(field::mul(a, b), (a128 * b128 % P128) as u64, "{a} * {b}");
            assert_eq!(field::add(a, b), ((a128 + b128) % P128) as u64, "{a} + {b}");
            assert_eq!(
                field::sub(a, b),
                ((a128 + P128 - b128) % P128) as u64,
                "{a} - {b}"
            );
        }
    }
}

#[test]
fn root_of_unity_2_32_is_the_known_value() {
    assert_eq!(field::ROOT_OF_UNITY_2_32, 1_753_635_133_440_165_772);
    assert_eq!(field::pow(7, (P - 1) >> 32), 1_753_635_133_440_165_772);
    assert_eq!(field::root_of_unity(32), Some(1_753_635_133_440_165_772));
}
