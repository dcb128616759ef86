//! The CPU reference NTT: iterative, in place, radix-2 decimation in time after a
//! bit-reversal permutation; precomputed twiddles cached per size; batches (and
//! large single polynomials) spread over threads with rayon.
//!
//! It is the reference the CUDA backend is tested against, and the fallback
//! executor where no GPU is present.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use crate::error::NttError;
use crate::field;
use crate::job::{self, Direction};

/// Stages whose butterflies span at most this many elements (log2) run block by
/// block, each block while it sits in L1/L2 cache.
const BLOCK_LOG: u32 = 12;

/// Single polynomials from this size (log2) up are split across threads too.
const PAR_POLY_LOG: u32 = 15;

/// Butterflies per task when one stage is split across threads.
const GRAIN: usize = 1 << 12;

/// The twiddle table of one size and direction.
///
/// `table()[m + j] = ω_{2m}^j` for every stage half-size m = 1, 2, 4, …, n/2 and
/// j < m, where ω_{2m} is the primitive 2m-th root of unity (its inverse for
/// [`Direction::Inverse`]); entry 0 is unused. Each stage thus reads one
/// contiguous run. The CUDA backend uploads the same table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twiddles {
    log_n: u32,
    direction: Direction,
    table: Vec<u64>,
    scale: Option<u64>,
}

impl Twiddles {
    /// Computes the table for size 2^`log_n` (O(n) multiplications).
    pub fn new(log_n: u32, direction: Direction) -> Result<Self, NttError> {
        let too_large = NttError::TooLarge {
            log_n,
            max: field::TWO_ADICITY,
        };
        let root = field::root_of_unity(log_n).ok_or(too_large.clone())?;
        let n = 1usize.checked_shl(log_n).ok_or(too_large)?;
        let mut table = vec![0u64; n];
        if n >= 2 {
            let w = match direction {
                Direction::Forward => root,
                Direction::Inverse => field::inverse(root).unwrap_or(1),
            };
            // Top stage (m = n/2): powers of ω_n. Lower stages take every other
            // entry of the stage above: ω_{2m}^j = ω_{4m}^{2j}.
            let half = n / 2;
            let mut acc = 1;
            for slot in &mut table[half..] {
                *slot = acc;
                acc = field::mul(acc, w);
            }
            let mut m = half / 2;
            while m >= 1 {
                for j in 0..m {
                    table[m + j] = table[2 * m + 2 * j];
                }
                m /= 2;
            }
        }
        let scale = match direction {
            Direction::Forward => None,
            Direction::Inverse => field::inverse_of_power_of_two(log_n),
        };
        Ok(Self {
            log_n,
            direction,
            table,
            scale,
        })
    }

    /// log2 of the size.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The n-entry table (see the type's docs).
    pub fn table(&self) -> &[u64] {
        &self.table
    }

    /// The final scaling factor: n⁻¹ for the inverse transform.
    pub fn scale(&self) -> Option<u64> {
        self.scale
    }
}

/// The CPU NTT with its twiddle cache and thread pool.
///
/// ```
/// use pjp_gpu::CpuNtt;
///
/// let ntt = CpuNtt::new();
/// let mut poly = vec![1, 0, 0, 0, 0, 0, 0, 0]; // δ
/// ntt.forward(&mut poly)?;
/// assert_eq!(poly, vec![1; 8]); // the transform of δ is all ones
/// ntt.inverse(&mut poly)?;
/// assert_eq!(poly, vec![1, 0, 0, 0, 0, 0, 0, 0]);
/// # Ok::<(), pjp_gpu::NttError>(())
/// ```
pub struct CpuNtt {
    twiddles: Mutex<HashMap<(u32, Direction), Arc<Twiddles>>>,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for CpuNtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuNtt")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

impl Default for CpuNtt {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuNtt {
    /// An NTT on rayon's global thread pool.
    pub fn new() -> Self {
        Self {
            twiddles: Mutex::new(HashMap::new()),
            pool: None,
        }
    }

    /// An NTT on its own pool of `threads` threads.
    pub fn with_threads(threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pjp-ntt-{i}"))
            .build()?;
        Ok(Self {
            twiddles: Mutex::new(HashMap::new()),
            pool: Some(pool),
        })
    }

    /// Threads the transforms spread over.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// The (cached) twiddles of size 2^`log_n` and `direction`.
    pub fn twiddles(&self, log_n: u32, direction: Direction) -> Result<Arc<Twiddles>, NttError> {
        let key = (log_n, direction);
        if let Some(t) = self.lock().get(&key) {
            return Ok(Arc::clone(t));
        }
        // Built outside the lock: a large table takes a while, and two threads
        // racing merely build it twice.
        let built = Arc::new(Twiddles::new(log_n, direction)?);
        Ok(Arc::clone(self.lock().entry(key).or_insert(built)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, Direction), Arc<Twiddles>>> {
        self.twiddles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forward NTT of one polynomial in place (natural order in and out).
    pub fn forward(&self, poly: &mut [u64]) -> Result<(), NttError> {
        self.transform_poly(poly, Direction::Forward)
    }

    /// Inverse NTT of one polynomial in place.
    pub fn inverse(&self, poly: &mut [u64]) -> Result<(), NttError> {
        self.transform_poly(poly, Direction::Inverse)
    }

    fn transform_poly(&self, poly: &mut [u64], direction: Direction) -> Result<(), NttError> {
        let len = poly.len();
        if !len.is_power_of_two() {
            return Err(NttError::NotPowerOfTwo { len });
        }
        self.transform(poly, len.trailing_zeros(), direction)
    }

    /// Transforms every polynomial of size 2^`log_n` in `data` (a batch, one after
    /// another) in place.
    ///
    /// Elements must be canonical; for others the result is unspecified (but
    /// nothing panics). Fails if `data` is not a whole number of polynomials.
    pub fn transform(
        &self,
        data: &mut [u64],
        log_n: u32,
        direction: Direction,
    ) -> Result<(), NttError> {
        let (n, batch) = job::batch_shape(data.len(), log_n)?;
        if batch == 0 {
            return Ok(());
        }
        let twiddles = self.twiddles(log_n, direction)?;
        let threads = self.threads();
        let split_polys = log_n >= PAR_POLY_LOG && batch < 2 * threads && threads > 1;
        let mut run = || {
            if batch == 1 {
                transform_one(data, &twiddles, split_polys);
            } else {
                data.par_chunks_mut(n)
                    .for_each(|poly| transform_one(poly, &twiddles, split_polys));
            }
        };
        match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
        Ok(())
    }
}

/// One polynomial, in place. `parallel`: split its work across threads.
///
/// Stages run two at a time where they can (the radix-2 butterflies of stages
/// m and 2m over each group of 4 elements, kept in registers): half the passes
/// over memory.
fn transform_one(poly: &mut [u64], twiddles: &Twiddles, parallel: bool) {
    let n = poly.len();
    let table = twiddles.table();
    bit_reverse(poly, twiddles.log_n);
    // Small stages, block by block while the block is in cache.
    let block = n.min(1 << BLOCK_LOG);
    let small_stages = |chunk: &mut [u64]| {
        let mut m = 1;
        while m < block {
            if 4 * m <= block {
                stage_pair(chunk, m, table);
                m *= 4;
            } else {
                stage(chunk, m, &table[m..2 * m]);
                m *= 2;
            }
        }
    };
    if parallel {
        poly.par_chunks_mut(block).for_each(small_stages);
    } else {
        poly.chunks_mut(block).for_each(small_stages);
    }
    // Large stages over the whole polynomial.
    let mut m = block;
    while m < n {
        let fused = 4 * m <= n;
        match (fused, parallel) {
            (true, true) => stage_pair_parallel(poly, m, table),
            (true, false) => stage_pair(poly, m, table),
            (false, true) => stage_parallel(poly, m, &table[m..2 * m]),
            (false, false) => stage(poly, m, &table[m..2 * m]),
        }
        m *= if fused { 4 } else { 2 };
    }
    if let Some(factor) = twiddles.scale {
        let scale = |chunk: &mut [u64]| chunk.iter_mut().for_each(|x| *x = field::mul(*x, factor));
        if parallel {
            poly.par_chunks_mut(GRAIN).for_each(scale);
        } else {
            scale(poly);
        }
    }
}

/// One radix-2 stage of half-size `m` over `data`.
#[inline]
fn stage(data: &mut [u64], m: usize, tw: &[u64]) {
    for chunk in data.chunks_exact_mut(2 * m) {
        let (a, b) = chunk.split_at_mut(m);
        butterflies(a, b, tw);
    }
}

/// [`stage`], with each group's butterflies split across threads.
fn stage_parallel(data: &mut [u64], m: usize, tw: &[u64]) {
    data.par_chunks_exact_mut(2 * m).for_each(|chunk| {
        let (a, b) = chunk.split_at_mut(m);
        a.par_chunks_mut(GRAIN)
            .zip(b.par_chunks_mut(GRAIN))
            .zip(tw.par_chunks(GRAIN))
            .for_each(|((a, b), w)| butterflies(a, b, w));
    });
}

/// (a, b) ← (a + w·b, a − w·b), element-wise.
#[inline]
fn butterflies(a: &mut [u64], b: &mut [u64], w: &[u64]) {
    for ((x, y), &w) in a.iter_mut().zip(b.iter_mut()).zip(w) {
        let u = *x;
        let v = field::mul(*y, w);
        *x = field::add(u, v);
        *y = field::sub(u, v);
    }
}

/// Stages of half-size `m` and `2m` in one pass over `data`.
#[inline]
fn stage_pair(data: &mut [u64], m: usize, table: &[u64]) {
    if m == 1 {
        // ω₂ = −1 and ω₄ = table[3]: no loop overhead per 4 elements.
        let w4 = table[3];
        for x in data.chunks_exact_mut(4) {
            let (b0, b1) = (field::add(x[0], x[1]), field::sub(x[0], x[1]));
            let (b2, b3) = (field::add(x[2], x[3]), field::sub(x[2], x[3]));
            let t = field::mul(b3, w4);
            x[0] = field::add(b0, b2);
            x[2] = field::sub(b0, b2);
            x[1] = field::add(b1, t);
            x[3] = field::sub(b1, t);
        }
        return;
    }
    let (w1, w2) = (&table[m..2 * m], &table[2 * m..4 * m]);
    for chunk in data.chunks_exact_mut(4 * m) {
        let (lo, hi) = chunk.split_at_mut(2 * m);
        let (x0, x1) = lo.split_at_mut(m);
        let (x2, x3) = hi.split_at_mut(m);
        radix4(x0, x1, x2, x3, w1, &w2[..m], &w2[m..]);
    }
}

/// [`stage_pair`], with each group's butterflies split across threads.
fn stage_pair_parallel(data: &mut [u64], m: usize, table: &[u64]) {
    let (w1, w2) = (&table[m..2 * m], &table[2 * m..4 * m]);
    let (w2a, w2b) = w2.split_at(m);
    data.par_chunks_exact_mut(4 * m).for_each(|chunk| {
        let (lo, hi) = chunk.split_at_mut(2 * m);
        let (x0, x1) = lo.split_at_mut(m);
        let (x2, x3) = hi.split_at_mut(m);
        (
            x0.par_chunks_mut(GRAIN),
            x1.par_chunks_mut(GRAIN),
            x2.par_chunks_mut(GRAIN),
            x3.par_chunks_mut(GRAIN),
            w1.par_chunks(GRAIN),
            w2a.par_chunks(GRAIN),
            w2b.par_chunks(GRAIN),
        )
            .into_par_iter()
            .for_each(|(x0, x1, x2, x3, w1, w2a, w2b)| radix4(x0, x1, x2, x3, w1, w2a, w2b));
    });
}

/// The butterflies of stages m and 2m over quarters `x0..x3` (each m long) of
/// a 4m group: stage m pairs (x0, x1) and (x2, x3) with `w1`; stage 2m pairs
/// (x0, x2) with `w2a` and (x1, x3) with `w2b`.
#[inline]
fn radix4(
    x0: &mut [u64],
    x1: &mut [u64],
    x2: &mut [u64],
    x3: &mut [u64],
    w1: &[u64],
    w2a: &[u64],
    w2b: &[u64],
) {
    let quarters = x0
        .iter_mut()
        .zip(x1.iter_mut())
        .zip(x2.iter_mut().zip(x3.iter_mut()));
    let twiddles = w1.iter().zip(w2a.iter().zip(w2b));
    for (((a0, a1), (a2, a3)), (&w1, (&w2a, &w2b))) in quarters.zip(twiddles) {
        let t = field::mul(*a1, w1);
        let (b0, b1) = (field::add(*a0, t), field::sub(*a0, t));
        let t = field::mul(*a3, w1);
        let (b2, b3) = (field::add(*a2, t), field::sub(*a2, t));
        let t = field::mul(b2, w2a);
        *a0 = field::add(b0, t);
        *a2 = field::sub(b0, t);
        let t = field::mul(b3, w2b);
        *a1 = field::add(b1, t);
        *a3 = field::sub(b1, t);
    }
}

#[inline]
fn reverse_index(i: usize, log_n: u32) -> usize {
    if log_n == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - log_n)
    }
}

/// Index bits per side of a bit-reversal tile: tiles of 2^TILE_LOG × 2^TILE_LOG
/// elements, read and written while they sit in L1.
const TILE_LOG: u32 = 5;

/// The bit-reversal permutation, in place. Small sizes swap directly, larger
/// ones tile by tile ([`bit_reverse_tiled`]).
fn bit_reverse(data: &mut [u64], log_n: u32) {
    if log_n < 2 * TILE_LOG + 2 {
        for i in 0..data.len() {
            let j = reverse_index(i, log_n);
            if i < j {
                data.swap(i, j);
            }
        }
    } else {
        bit_reverse_tiled(data, log_n);
    }
}

/// The bit-reversal permutation in place, cache-friendly. Write an index as
/// i = (a, b, c): [`TILE_LOG`] high bits, the middle, [`TILE_LOG`] low bits.
/// Then rev(i) = (rev c, rev b, rev a): the tile of middle b (2^TILE_LOG rows of
/// 2^TILE_LOG contiguous elements) goes, transposed, to the tile of rev b and
/// vice versa. Each pair of tiles is read into two small buffers and written
/// back swapped, so every access runs along rows that stay in L1.
fn bit_reverse_tiled(data: &mut [u64], log_n: u32) {
    let side = 1usize << TILE_LOG;
    let mid_log = log_n - 2 * TILE_LOG;
    let row_shift = log_n - TILE_LOG;
    let rev_tile: Vec<usize> = (0..side).map(|x| reverse_index(x, TILE_LOG)).collect();
    let mut here = vec![0u64; side * side];
    let mut there = vec![0u64; side * side];
    let load = |data: &[u64], b: usize, buf: &mut [u64]| {
        for (a, row) in buf.chunks_exact_mut(side).enumerate() {
            let start = (a << row_shift) | (b << TILE_LOG);
            row.copy_from_slice(&data[start..start + side]);
        }
    };
    // Writes `buf` (the tile of b) transposed into the tile of `rb` = rev b:
    // element (a, c) lands at row rev c, column rev a.
    let store = |data: &mut [u64], rb: usize, buf: &[u64]| {
        for c in 0..side {
            let start = (rev_tile[c] << row_shift) | (rb << TILE_LOG);
            let row = &mut data[start..start + side];
            for (a, &ra) in rev_tile.iter().enumerate() {
                row[ra] = buf[a * side + c];
            }
        }
    };
    for b in 0..1usize << mid_log {
        let rb = reverse_index(b, mid_log);
        if rb < b {
            continue; // swapped with its partner already
        }
        load(data, b, &mut here);
        if rb == b {
            store(data, b, &here);
        } else {
            load(data, rb, &mut there);
            store(data, rb, &here);
            store(data, b, &there);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn twiddle_table_layout() {
        let t = Twiddles::new(4, Direction::Forward).unwrap();
        let w16 = field::root_of_unity(4).unwrap();
        for m in [1usize, 2, 4, 8] {
            let w = field::pow(w16, 8 / m as u64); // ω_{2m}
            for j in 0..m {
                assert_eq!(t.table()[m + j], field::pow(w, j as u64));
            }
        }
        let inv = Twiddles::new(4, Direction::Inverse).unwrap();
        for i in 1..16 {
            assert_eq!(field::mul(t.table()[i], inv.table()[i]), 1);
        }
    }

    #[test]
    fn parallel_and_serial_paths_agree() {
        // 2^13: one unfused large stage; 2^16: two fused pairs; 2^17: both.
        for log_n in [13, 16, 17] {
            let data: Vec<u64> = (0..1u64 << log_n)
                .map(|i| i * 0x9e37_79b9 % field::P)
                .collect();
            for direction in [Direction::Forward, Direction::Inverse] {
                let tw = Twiddles::new(log_n, direction).unwrap();
                let mut serial = data.clone();
                transform_one(&mut serial, &tw, false);
                let mut parallel = data.clone();
                transform_one(&mut parallel, &tw, true);
                assert_eq!(serial, parallel, "2^{log_n} {direction}");
            }
        }
    }

    #[test]
    fn tiled_bit_reversal_is_the_permutation() {
        for log_n in [12, 13, 16, 17] {
            let n = 1usize << log_n;
            let data: Vec<u64> = (0..n as u64).collect();
            let mut permuted = data.clone();
            bit_reverse(&mut permuted, log_n);
            for (i, &x) in permuted.iter().enumerate() {
                assert_eq!(x as usize, reverse_index(i, log_n), "2^{log_n} at {i}");
            }
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let ntt = CpuNtt::new();
        assert_eq!(
            ntt.forward(&mut [1, 2, 3]),
            Err(NttError::NotPowerOfTwo { len: 3 })
        );
        assert!(matches!(
            ntt.transform(&mut [1, 2, 3], 1, Direction::Forward),
            Err(NttError::BatchLength { .. })
        ));
        assert!(matches!(
            ntt.transform(&mut [], 33, Direction::Forward),
            Err(NttError::TooLarge { .. })
        ));
    }
}
