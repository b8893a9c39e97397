//! The dense convolutions' GEMM on x86-64 with AVX2 and FMA, its weights packed once.
//!
//! `dst[m, n] = act(lhs[m, k] * W[k, n] + bias[n] + residual[m, n])`, row-major, where `lhs`
//! is the map's pixels (a 1x1 convolution) or their im2col patches. The weights are packed
//! when the engine is built into panels of [`NR`] output channels (`[k][NR]` each, the last
//! zero-padded), so a pass packs nothing. A register tile of [`MR`] pixels by [`NR`] channels
//! (12 vector accumulators) runs over a block of `k`; bias, residual and activation are
//! applied in registers after the last block (the epilogue), so the output is written once.
//!
//! The `gemm` crate, which the portable build uses, packs its right-hand side on every call
//! and shapes its tiles for large square products: on the encoder's late layers (49 pixels,
//! 192 to 1152 channels) it ran at half of this CPU's FMA rate. In wasm the same panels feed
//! `simd128::gemm` (tiles of 4 pixels by 8 channels, a multiply and an add: SIMD128 has no
//! fused one).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::Act;

/// Output channels per panel: two AVX2 vectors.
pub const NR: usize = 16;
/// Pixels per register tile.
#[cfg(target_arch = "x86_64")]
const MR: usize = 6;
/// The depth of a block of `k`: a panel's block (`KC * NR` floats, 16 KiB) stays in L1.
pub(super) const KC: usize = 256;
/// Pixels per block: the block's rows of `lhs` (`MC * KC` floats) stay in L2.
pub(super) const MC: usize = 120;

/// A dense convolution's weights (`[k, n]`, row-major) in panels of [`NR`] channels, and its
/// bias padded to whole panels.
#[derive(Debug, Clone)]
pub struct Packed {
    pub k: usize,
    pub n: usize,
    pub(super) panels: Vec<f32>,
    pub(super) bias: Vec<f32>,
}

impl Packed {
    pub fn new(k: usize, n: usize, weight: &[f32], bias: &[f32]) -> Packed {
        assert_eq!((weight.len(), bias.len()), (k * n, n), "a [{k}, {n}] weight and its bias");
        let count = n.div_ceil(NR);
        let mut panels = vec![0.0; count * k * NR];
        for p in 0..count {
            let cols = (p * NR)..((p + 1) * NR).min(n);
            for kk in 0..k {
                let dst = &mut panels[(p * k + kk) * NR..][..cols.len()];
                dst.copy_from_slice(&weight[kk * n + cols.start..kk * n + cols.end]);
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(count * NR, 0.0);
        Packed { k, n, panels, bias: padded }
    }
}

/// `dst[m, n] = act(lhs[m, k] W + bias + residual)` (`residual` `[m, n]` or empty), all
/// row-major and contiguous, on one core.
///
/// # Safety
/// The machine has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(m: usize, lhs: &[f32], w: &Packed, residual: &[f32], act: Act, dst: &mut [f32]) {
    let (k, n) = (w.k, w.n);
    assert!(lhs.len() >= m * k && dst.len() >= m * n);
    assert!(residual.is_empty() || residual.len() >= m * n);
    let panels = n.div_ceil(NR);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let (first, last) = (k0 == 0, k0 + kc == k);
        for m0 in (0..m).step_by(MC) {
            let mc = MC.min(m - m0);
            for p in 0..panels {
                let nr = NR.min(n - p * NR);
                let tile = Tile {
                    b: &w.panels[(p * k + k0) * NR..(p * k + k0 + kc) * NR],
                    bias: &w.bias[p * NR..(p + 1) * NR],
                    kc,
                    nr,
                    first,
                    last,
                    act,
                };
                // A last panel of at most 8 channels (24 = 16 + 8, 40 = 16 + 16 + 8) takes
                // tiles of up to 12 pixels by 8 channels, not half-empty ones of 16.
                let half = nr <= NR / 2;
                for (r, rows) in row_tiles(m0, mc, if half { 12 } else { MR }) {
                    let (a, c, res) = tile_operands(lhs, dst, residual, r, (k, k0), (n, p * NR));
                    // SAFETY: the caller's machine has AVX2 and FMA (this function's contract).
                    unsafe {
                        match half {
                            true => tile.half(rows, a, k, c, n, res),
                            false => tile.run(rows, a, k, c, n, res),
                        }
                    }
                }
            }
        }
    }
}

/// The tiles of the `mc` rows from `m0`, at most `height` rows each: each tile's first row and
/// its rows. The rows spread evenly over the tiles: 49 pixels as four tiles of 6 and five of
/// 5, not eight of 6 and one of 1 (a tile of one row has two chains of FMAs, too few to hide
/// their latency).
pub(super) fn row_tiles(
    m0: usize,
    mc: usize,
    height: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let tiles = mc.div_ceil(height);
    (0..tiles).scan(m0, move |r, t| {
        let rows = mc / tiles + usize::from(t < mc % tiles);
        let first = *r;
        *r += rows;
        Some((first, rows))
    })
}

/// A tile's operands from its first row `r`: `lhs` from the block's first column `k0` (rows
/// of `k`), `dst` and `residual` (empty: none) from output column `col` (rows of `n`).
pub(super) fn tile_operands<'a>(
    lhs: &'a [f32],
    dst: &'a mut [f32],
    residual: &'a [f32],
    r: usize,
    (k, k0): (usize, usize),
    (n, col): (usize, usize),
) -> (&'a [f32], &'a mut [f32], &'a [f32]) {
    let res = if residual.is_empty() { residual } else { &residual[r * n + col..] };
    (&lhs[r * k + k0..], &mut dst[r * n + col..], res)
}

/// One panel's block of `k` (`b`, `[kc][NR]`) and what its tiles apply.
#[cfg(target_arch = "x86_64")]
struct Tile<'a> {
    b: &'a [f32],
    bias: &'a [f32],
    kc: usize,
    nr: usize,
    first: bool,
    last: bool,
    act: Act,
}

/// Defines `Tile::$name`, the tile of as many pixels as `$r` lists: its rows are written out
/// (not a loop over an array), so the compiler keeps the accumulators in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! tile {
    ($name:ident, $($r:literal)+) => {
        /// Pixels (rows of `a`, `lda` apart) by the panel's channels into `c` (rows `ldc`
        /// apart): started from the bias on the first block of `k`, from `c` after, and
        /// finished with the residual (rows `ldc` apart, or empty) and the activation on the
        /// last.
        ///
        /// # Safety
        /// AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $name(&self, a: &[f32], lda: usize, c: &mut [f32], ldc: usize, res: &[f32]) {
            let (nr, rows) = (self.nr, [$($r),+].len());
            assert!(a.len() >= (rows - 1) * lda + self.kc && self.b.len() >= self.kc * NR);
            assert!(c.len() >= (rows - 1) * ldc + nr);
            assert!(res.is_empty() || res.len() >= (rows - 1) * ldc + nr);
            // SAFETY: every pointer below stays inside the slices just checked: `a`'s rows
            // `r * lda + kk` for `kk < kc`, `b`'s `kk * NR + 16`, and `c`'s (and `res`'s)
            // rows `r * ldc` up to `nr` channels (a partial panel goes through `buf`).
            unsafe {
                let mut buf = [0f32; NR];
                let mut acc = [_mm256_setzero_ps(); 2 * MR];
                if self.first {
                    let b0 = _mm256_loadu_ps(self.bias.as_ptr());
                    let b1 = _mm256_loadu_ps(self.bias.as_ptr().add(8));
                    $( acc[2 * $r] = b0; acc[2 * $r + 1] = b1; )+
                } else {
                    $(
                        let [x0, x1] = load16(c.as_ptr().add($r * ldc), nr, &mut buf);
                        acc[2 * $r] = x0;
                        acc[2 * $r + 1] = x1;
                    )+
                }
                let (ap, bp) = (a.as_ptr(), self.b.as_ptr());
                for kk in 0..self.kc {
                    let b0 = _mm256_loadu_ps(bp.add(kk * NR));
                    let b1 = _mm256_loadu_ps(bp.add(kk * NR + 8));
                    $(
                        let x = _mm256_broadcast_ss(&*ap.add($r * lda + kk));
                        acc[2 * $r] = _mm256_fmadd_ps(x, b0, acc[2 * $r]);
                        acc[2 * $r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * $r + 1]);
                    )+
                }
                if self.last {
                    $(
                        if !res.is_empty() {
                            let [x0, x1] = load16(res.as_ptr().add($r * ldc), nr, &mut buf);
                            acc[2 * $r] = _mm256_add_ps(acc[2 * $r], x0);
                            acc[2 * $r + 1] = _mm256_add_ps(acc[2 * $r + 1], x1);
                        }
                        acc[2 * $r] = activate(acc[2 * $r], self.act);
                        acc[2 * $r + 1] = activate(acc[2 * $r + 1], self.act);
                    )+
                }
                $(
                    let p = c.as_mut_ptr().add($r * ldc);
                    if nr == NR {
                        _mm256_storeu_ps(p, acc[2 * $r]);
                        _mm256_storeu_ps(p.add(8), acc[2 * $r + 1]);
                    } else {
                        _mm256_storeu_ps(buf.as_mut_ptr(), acc[2 * $r]);
                        _mm256_storeu_ps(buf.as_mut_ptr().add(8), acc[2 * $r + 1]);
                        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, nr);
                    }
                )+
            }
        }
    };
}

/// Defines `Tile::$name`, as [`tile!`] but for a panel of at most 8 channels: one vector a
/// pixel, so up to 12 pixels a tile.
#[cfg(target_arch = "x86_64")]
macro_rules! half_tile {
    ($name:ident, $($r:literal)+) => {
        /// Pixels by the panel's first (at most 8) channels, as the full tiles.
        ///
        /// # Safety
        /// AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $name(&self, a: &[f32], lda: usize, c: &mut [f32], ldc: usize, res: &[f32]) {
            let (nr, rows) = (self.nr, [$($r),+].len());
            assert!(nr <= 8 && a.len() >= (rows - 1) * lda + self.kc);
            assert!(self.b.len() >= self.kc * NR && c.len() >= (rows - 1) * ldc + nr);
            assert!(res.is_empty() || res.len() >= (rows - 1) * ldc + nr);
            // SAFETY: every pointer below stays inside the slices just checked: `a`'s rows
            // `r * lda + kk` for `kk < kc`, `b`'s `kk * NR + 8`, and `c`'s (and `res`'s)
            // rows `r * ldc` up to `nr` channels (through `buf`).
            unsafe {
                let mut buf = [0f32; 8];
                let mut acc = [_mm256_setzero_ps(); 12];
                if self.first {
                    let b = _mm256_loadu_ps(self.bias.as_ptr());
                    $( acc[$r] = b; )+
                } else {
                    $( acc[$r] = load8(c.as_ptr().add($r * ldc), nr, &mut buf); )+
                }
                let (ap, bp) = (a.as_ptr(), self.b.as_ptr());
                for kk in 0..self.kc {
                    let b = _mm256_loadu_ps(bp.add(kk * NR));
                    $(
                        let x = _mm256_broadcast_ss(&*ap.add($r * lda + kk));
                        acc[$r] = _mm256_fmadd_ps(x, b, acc[$r]);
                    )+
                }
                if self.last {
                    $(
                        if !res.is_empty() {
                            let x = load8(res.as_ptr().add($r * ldc), nr, &mut buf);
                            acc[$r] = _mm256_add_ps(acc[$r], x);
                        }
                        acc[$r] = activate(acc[$r], self.act);
                    )+
                }
                $(
                    _mm256_storeu_ps(buf.as_mut_ptr(), acc[$r]);
                    std::ptr::copy_nonoverlapping(buf.as_ptr(), c.as_mut_ptr().add($r * ldc), nr);
                )+
            }
        }
    };
}

/// Defines `Tile::$name`, which runs the tile of `rows` pixels: the one its height names, the
/// last for any other.
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($name:ident, $doc:literal, $($rows:literal => $tile:ident),+; $last:ident) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn $name(
            &self,
            rows: usize,
            a: &[f32],
            lda: usize,
            c: &mut [f32],
            ldc: usize,
            res: &[f32],
        ) {
            // SAFETY: the caller's contract.
            unsafe {
                match rows {
                    $($rows => self.$tile(a, lda, c, ldc, res),)+
                    _ => self.$last(a, lda, c, ldc, res),
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    half_tile!(half1, 0);
    half_tile!(half2, 0 1);
    half_tile!(half3, 0 1 2);
    half_tile!(half4, 0 1 2 3);
    half_tile!(half5, 0 1 2 3 4);
    half_tile!(half6, 0 1 2 3 4 5);
    half_tile!(half7, 0 1 2 3 4 5 6);
    half_tile!(half8, 0 1 2 3 4 5 6 7);
    half_tile!(half9, 0 1 2 3 4 5 6 7 8);
    half_tile!(half10, 0 1 2 3 4 5 6 7 8 9);
    half_tile!(half11, 0 1 2 3 4 5 6 7 8 9 10);
    half_tile!(half12, 0 1 2 3 4 5 6 7 8 9 10 11);

    tile!(run1, 0);
    tile!(run2, 0 1);
    tile!(run3, 0 1 2);
    tile!(run4, 0 1 2 3);
    tile!(run5, 0 1 2 3 4);
    tile!(run6, 0 1 2 3 4 5);

    by_rows!(half, "The half-panel tile of `rows` (1 to 12) pixels.",
        12 => half12, 11 => half11, 10 => half10, 9 => half9, 8 => half8, 7 => half7,
        6 => half6, 5 => half5, 4 => half4, 3 => half3, 2 => half2; half1);
    by_rows!(run, "The whole-panel tile of `rows` (1 to [`MR`]) pixels.",
        6 => run6, 5 => run5, 4 => run4, 3 => run3, 2 => run2; run1);
}

/// Sixteen values from `p`, of which the first `nr` are read (the rest zero, through `buf`).
///
/// # Safety
/// AVX2; `p` points at `nr` readable values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load16(p: *const f32, nr: usize, buf: &mut [f32; NR]) -> [__m256; 2] {
    // SAFETY: the caller's contract.
    unsafe {
        if nr == NR {
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
        } else {
            buf[..nr].copy_from_slice(std::slice::from_raw_parts(p, nr));
            buf[nr..].fill(0.0);
            [_mm256_loadu_ps(buf.as_ptr()), _mm256_loadu_ps(buf.as_ptr().add(8))]
        }
    }
}

/// Eight values from `p`, of which the first `nr` are read (the rest zero, through `buf`).
///
/// # Safety
/// AVX2; `p` points at `nr` readable values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load8(p: *const f32, nr: usize, buf: &mut [f32; 8]) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        buf[..nr].copy_from_slice(std::slice::from_raw_parts(p, nr));
        buf[nr..].fill(0.0);
        _mm256_loadu_ps(buf.as_ptr())
    }
}

/// [`Act::apply`] on eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn activate(v: __m256, act: Act) -> __m256 {
    let zero = _mm256_setzero_ps();
    match act {
        Act::None => v,
        Act::Relu => _mm256_max_ps(v, zero),
        Act::Relu6 => _mm256_min_ps(_mm256_max_ps(v, zero), _mm256_set1_ps(6.0)),
        Act::HardSwish => {
            let g = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.0 / 6.0)), _mm256_set1_ps(0.5));
            _mm256_mul_ps(v, _mm256_min_ps(_mm256_max_ps(g, zero), _mm256_set1_ps(1.0)))
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Every shape of tile and panel (rows 1 to 12 and more than a block, channels short of a
    /// panel, half a panel or less at the end (5, 17, 24, 40) and several panels, `k` over
    /// several blocks), with and without a residual, each activation: what the plain sums
    /// give, to rounding.
    #[test]
    fn the_packed_gemm_computes_the_product_bias_residual_and_activation() {
        if !crate::kernels::isa::Isa::Avx2.available() {
            return;
        }
        let mut rng = crate::rng::Rng::new(3);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect() };
        for (m, k, n) in [
            (1, 3, 5),
            (6, 16, 16),
            (7, 27, 32),
            (49, 300, 40),
            (131, 520, 17),
            (250, 8, 96),
            (30, 20, 24),
        ] {
            let (lhs, weight, bias, residual) =
                (random(m * k), random(k * n), random(n), random(m * n));
            let w = Packed::new(k, n, &weight, &bias);
            for act in [Act::None, Act::Relu, Act::Relu6, Act::HardSwish] {
                for res in [&[][..], &residual[..]] {
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: AVX2 and FMA are there (checked above).
                    unsafe { gemm(m, &lhs, &w, res, act, &mut got) };
                    for i in 0..m {
                        for j in 0..n {
                            let mut want = 0.0f64;
                            for kk in 0..k {
                                want += f64::from(lhs[i * k + kk]) * f64::from(weight[kk * n + j]);
                            }
                            want += f64::from(bias[j]);
                            if !res.is_empty() {
                                want += f64::from(res[i * n + j]);
                            }
                            let want = act.apply(want as f32);
                            let g = got[i * n + j];
                            assert!(
                                (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{m}x{k}x{n} {act:?} residual {}: [{i}, {j}] {g} against {want}",
                                !res.is_empty()
                            );
                        }
                    }
                }
            }
        }
    }
}
