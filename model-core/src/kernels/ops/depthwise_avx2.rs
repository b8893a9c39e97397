//! The depthwise convolutions' inner loop on x86-64 with AVX2, for the pixels whose whole
//! `K x K` window lies inside the map (all but a border of a pixel or two).
//!
//! The same products and sums in the same order as `ops::depthwise_block` (the bias, then
//! each tap's `x * w` added row by row, a multiply and an add, not a fused one), so the same
//! bits; written in intrinsics because the compiler, given the taps unrolled, stopped
//! vectorising the plain loop. A row is taken a block of channels at a time across its
//! pixels, so the block's `K * K` weights stay in L1 (taking every channel of one pixel at a
//! time, a wide layer's weights came from L2 at every tap).

use std::arch::x86_64::*;

use super::Act;
use super::packed::activate;

/// What one output row reads: the map (`x`, `h` rows of `w` pixels of `c` channels), the
/// weights (`[k, k, c]`) and bias, and where the row's windows start.
pub struct Row<'a> {
    pub x: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub act: Act,
    /// The input row of the windows' first tap row (negative above the map).
    pub iy0: isize,
    pub stride: usize,
    /// The padding before the first column.
    pub pl: usize,
}

impl Row<'_> {
    /// The taps of a window starting at `start` that fall inside `0..size`.
    fn inside(&self, start: isize, size: usize) -> std::ops::Range<usize> {
        (-start).max(0) as usize..(size as isize - start).clamp(0, self.k as isize) as usize
    }
}

/// Channels `0..c / 8 * 8` of every output pixel of one output row `out` (`c` channels a
/// pixel), the taps unrolled for the pixels `whole` whose `K x K` window lies inside the map
/// (`K` is the row's `k`); the rest of the channels are left to the caller.
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn row<const K: usize>(r: &Row, whole: std::ops::Range<usize>, out: &mut [f32]) {
    let c = r.c;
    let ow = out.len() / c;
    assert!(r.k == K && r.x.len() >= r.h * r.w * c && r.weight.len() >= K * K * c);
    assert!(r.bias.len() >= c && whole.end <= ow);
    if let Some(last) = whole.clone().last() {
        // The interior windows lie inside the map.
        assert!(r.iy0 >= 0 && r.iy0 as usize + K <= r.h);
        assert!(whole.start * r.stride >= r.pl && last * r.stride + K <= r.w + r.pl);
    }
    let mut first = 0;
    // SAFETY: every pointer below stays inside the slices the assertions cover: a tap
    // `(iy * w + ix) * c + first + j` with `iy < h`, `ix < w` (a border window's taps are
    // clipped to the map, an interior one's lie inside it) and `first + j < c`, the weights'
    // `(ky * K + kx) * c + first + j`, the output's `ox * c + first + j` with `ox < ow`.
    unsafe {
        while first + 32 <= c {
            block::<K, 4>(r, &whole, first, out);
            first += 32;
        }
        while first + 8 <= c {
            block::<K, 1>(r, &whole, first, out);
            first += 8;
        }
    }
}

/// Channels `first..first + 8 * V` of every pixel of the row.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const K: usize, const V: usize>(
    r: &Row,
    whole: &std::ops::Range<usize>,
    first: usize,
    out: &mut [f32],
) {
    let (c, xp, wp, op) = (r.c, r.x.as_ptr(), r.weight.as_ptr(), out.as_mut_ptr());
    let ys = r.inside(r.iy0, r.h);
    // SAFETY: the caller's bounds (`row`'s assertions).
    unsafe {
        let bias: [__m256; V] =
            std::array::from_fn(|v| _mm256_loadu_ps(r.bias.as_ptr().add(first + 8 * v)));
        let tap = |acc: &mut [__m256; V], iy: usize, ix: usize, ky: usize, kx: usize| {
            let at = xp.add((iy * r.w + ix) * c + first);
            let wt = wp.add((ky * K + kx) * c + first);
            for (v, a) in acc.iter_mut().enumerate() {
                let p =
                    _mm256_mul_ps(_mm256_loadu_ps(at.add(8 * v)), _mm256_loadu_ps(wt.add(8 * v)));
                *a = _mm256_add_ps(*a, p);
            }
        };
        for ox in 0..out.len() / c {
            let ix0 = (ox * r.stride) as isize - r.pl as isize;
            let mut acc = bias;
            if whole.contains(&ox) {
                let (iy0, ix0) = (r.iy0 as usize, ix0 as usize);
                for ky in 0..K {
                    for kx in 0..K {
                        tap(&mut acc, iy0 + ky, ix0 + kx, ky, kx);
                    }
                }
            } else {
                let xs = r.inside(ix0, r.w);
                for ky in ys.clone() {
                    for kx in xs.clone() {
                        let (iy, ix) =
                            ((r.iy0 + ky as isize) as usize, (ix0 + kx as isize) as usize);
                        tap(&mut acc, iy, ix, ky, kx);
                    }
                }
            }
            for (v, a) in acc.into_iter().enumerate() {
                _mm256_storeu_ps(op.add(ox * c + first + 8 * v), activate(a, r.act));
            }
        }
    }
}
