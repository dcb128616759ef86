//! The CPU NTT against a naive O(n²) DFT, round trips, and known answers.

use pjp_gpu::field::{self, P};
use pjp_gpu::{CpuNtt, Direction, NttError};

/// X_k = Σ_j x_j ω^(jk) (ω⁻¹ and a factor n⁻¹ for the inverse).
fn naive_dft(x: &[u64], direction: Direction) -> Vec<u64> {
    let n = x.len();
    let log_n = n.trailing_zeros();
    let root = field::root_of_unity(log_n).unwrap_or(0);
    let w = match direction {
        Direction::Forward => root,
        Direction::Inverse => field::inverse(root).unwrap_or(0),
    };
    let scale = match direction {
        Direction::Forward => 1,
        Direction::Inverse => field::inverse_of_power_of_two(log_n).unwrap_or(0),
    };
    (0..n)
        .map(|k| {
            let wk = field::pow(w, k as u64);
            let mut acc = 0;
            let mut wjk = 1;
            for &xj in x {
                acc = field::add(acc, field::mul(xj, wjk));
                wjk = field::mul(wjk, wk);
            }
            field::mul(acc, scale)
        })
        .collect()
}

#[test]
fn matches_naive_dft_for_small_sizes() -> Result<(), NttError> {
    let ntt = CpuNtt::new();
    for log_n in 0..=9 {
        for direction in [Direction::Forward, Direction::Inverse] {
            let x = field::sample(1 << log_n, u64::from(log_n) * 31 + 7);
            let mut y = x.clone();
            ntt.transform(&mut y, log_n, direction)?;
            assert_eq!(y, naive_dft(&x, direction), "2^{log_n} {direction}");
        }
    }
    Ok(())
}

#[test]
fn batches_transform_each_polynomial() -> Result<(), NttError> {
    let ntt = CpuNtt::new();
    for (log_n, batch) in [(0, 3), (1, 5), (4, 7), (6, 16), (8, 3)] {
        let n = 1usize << log_n;
        let x = field::sample(n * batch, 99 + log_n as u64);
        for direction in [Direction::Forward, Direction::Inverse] {
            let mut y = x.clone();
            ntt.transform(&mut y, log_n, direction)?;
            for (poly_in, poly_out) in x.chunks(n).zip(y.chunks(n)) {
                assert_eq!(poly_out, naive_dft(poly_in, direction).as_slice());
            }
        }
    }
    Ok(())
}

#[test]
fn inverse_undoes_forward_up_to_2_pow_20() -> Result<(), NttError> {
    let ntt = CpuNtt::new();
    for log_n in [1u32, 2, 3, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, 20] {
        let x = field::sample(1 << log_n, u64::from(log_n));
        let mut y = x.clone();
        ntt.forward(&mut y)?;
        assert_ne!(x, y, "2^{log_n}: forward changed nothing");
        ntt.inverse(&mut y)?;
        assert_eq!(x, y, "2^{log_n}: inverse(forward(x)) != x");
    }
    // And batched, both ways round.
    let x = field::sample(16 << 12, 5);
    let mut y = x.clone();
    ntt.transform(&mut y, 12, Direction::Inverse)?;
    ntt.transform(&mut y, 12, Direction::Forward)?;
    assert_eq!(x, y);
    Ok(())
}

#[test]
fn delta_and_ones_are_a_transform_pair() -> Result<(), NttError> {
    let ntt = CpuNtt::new();
    for log_n in [0, 1, 4, 10, 16] {
        let n = 1usize << log_n;
        let mut delta = vec![0; n];
        delta[0] = 1;
        let mut y = delta.clone();
        ntt.forward(&mut y)?;
        assert_eq!(y, vec![1; n], "forward(δ) = 1 at 2^{log_n}");
        // forward(ones) = n·δ; inverse(ones) = δ.
        let mut ones = vec![1; n];
        ntt.forward(&mut ones)?;
        let mut n_delta = vec![0; n];
        n_delta[0] = n as u64 % P;
        assert_eq!(ones, n_delta);
        let mut ones = vec![1; n];
        ntt.inverse(&mut ones)?;
        assert_eq!(ones, delta);
    }
    Ok(())
}

#[test]
fn monomial_x_evaluates_to_the_powers_of_the_root() -> Result<(), NttError> {
    let ntt = CpuNtt::new();
    let log_n = 12;
    let n = 1usize << log_n;
    let mut x = vec![0; n];
    x[1] = 1;
    ntt.forward(&mut x)?;
    let w = field::root_of_unity(log_n).unwrap_or(0);
    assert_eq!(x[1], w);
    assert_eq!(
        x[1],
        field::pow(field::ROOT_OF_UNITY_2_32, 1 << (32 - log_n))
    );
    assert_eq!(x[n / 2], P - 1);
    assert_eq!(x[n - 1], field::inverse(w).unwrap_or(0));
    Ok(())
}

#[test]
fn size_2_pow_32_root_is_the_known_value() -> Result<(), NttError> {
    // The generator of the largest subgroup, as the twiddle tables derive it.
    let t = pjp_gpu::Twiddles::new(3, Direction::Forward)?;
    assert_eq!(
        t.table()[5],
        field::pow(field::ROOT_OF_UNITY_2_32, 1 << 29),
        "ω₈ = ω₂³²^(2²⁹)"
    );
    Ok(())
}

#[test]
fn dedicated_pool_gives_the_same_answer() -> Result<(), Box<dyn std::error::Error>> {
    let x = field::sample(4 << 15, 11);
    let mut a = x.clone();
    let mut b = x;
    CpuNtt::new().transform(&mut a, 15, Direction::Forward)?;
    let pooled = CpuNtt::with_threads(3)?;
    assert_eq!(pooled.threads(), 3);
    pooled.transform(&mut b, 15, Direction::Forward)?;
    assert_eq!(a, b);
    Ok(())
}
