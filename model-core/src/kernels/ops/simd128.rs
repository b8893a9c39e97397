//! The depthwise convolution, the dense convolutions' GEMM (on the packed weights of
//! `packed`) and the convolutions' epilogue in explicit wasm SIMD128.
//!
//! LLVM vectorises none of the kernels' plain loops for wasm32: model-core's wasm build held
//! no `f32x4` arithmetic at all (its `v128` instructions were copies), so in the page these
//! ran one lane at a time (the depthwise convolutions took 43 % of the forward pass, against
//! about a tenth of its multiply-adds). `Act::apply`'s `max` and `clamp` cannot become
//! `f32x4.max`, whose NaN rule differs; `pmax`/`pmin` here give what `apply` gives for every
//! number (a NaN becomes 0 here, as ReLU's `max` makes it 0 there; ReLU6's `clamp` would
//! keep it). Each lane computes what the portable loop computes, in the same order (a
//! product rounded, then a sum), so a depthwise output is the portable one to the bit; the
//! wasm tests hold the page's forward pass to the native one.
//!
//! V8 compiles each bounds check of a slice into the loop that holds it, and adds a
//! computed offset to every address, so the inner loops here read through raw pointers
//! whose last offset is checked once before the loop. Where a row's windows lie wholly
//! inside the map, a 3x3 or 5x5 depthwise convolution runs four output pixels at a time
//! (`depthwise_four`): a row's weights and each input pixel are loaded once for all four.

use core::arch::wasm32::*;
use std::ops::Range;

use super::packed::{KC, MC, NR, Packed, row_tiles, tile_operands};
use super::{Act, Conv, Map};

#[inline(always)]
fn load(s: &[f32]) -> v128 {
    assert!(s.len() >= 4);
    // SAFETY: `s` holds at least 4 floats (checked above); wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr().cast()) }
}

#[inline(always)]
fn store(s: &mut [f32], v: v128) {
    assert!(s.len() >= 4);
    // SAFETY: `s` holds at least 4 floats (checked above); wasm stores need no alignment.
    unsafe { v128_store(s.as_mut_ptr().cast(), v) }
}

/// `act` on four lanes.
#[inline(always)]
fn activate(act: Act, v: v128) -> v128 {
    match act {
        Act::None => v,
        Act::Relu => f32x4_pmax(f32x4_splat(0.0), v),
        Act::Relu6 => f32x4_pmin(f32x4_splat(6.0), f32x4_pmax(f32x4_splat(0.0), v)),
        Act::HardSwish => {
            let mut lanes = [0f32; 4];
            store(&mut lanes, v);
            load(&lanes.map(|x| act.apply(x)))
        }
    }
}

/// One output pixel's channels `first..first + 4 * V` of a depthwise convolution (as
/// `ops::depthwise_block`): `V` vectors of accumulators over all the taps inside the map.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise_block<const V: usize>(
    x: &Map,
    conv: &Conv,
    act: Act,
    (iy0, ix0): (isize, isize),
    (ys, xs): (Range<usize>, Range<usize>),
    first: usize,
    o: &mut [f32],
) {
    let (k, c, n, xd) = (conv.k, x.c, 4 * V, x.data());
    let bias = &conv.bias[first..first + n];
    let mut acc = [f32x4_splat(0.0); V];
    for (v, a) in acc.iter_mut().enumerate() {
        *a = load(&bias[4 * v..]);
    }
    if !ys.is_empty() && !xs.is_empty() {
        // The last tap's values: every tap reads at or before them (checked once, here, so
        // the loads below need no checks of their own).
        let (ly, lx) = ((iy0 + ys.end as isize - 1) as usize, (ix0 + xs.end as isize - 1) as usize);
        assert!(ly < x.h && lx < x.w && (ly * x.w + lx) * c + first + n <= xd.len());
        assert!(((ys.end - 1) * k + xs.end - 1) * c + first + n <= conv.weight.len());
        let (xp, wp) = (xd.as_ptr(), conv.weight.as_ptr());
        for ky in ys {
            let iy = (iy0 + ky as isize) as usize;
            for kx in xs.clone() {
                let ix = (ix0 + kx as isize) as usize;
                // SAFETY: `iy`, `ix`, `ky` and `kx` are at most the last tap's (asserted in
                // bounds above); wasm loads need no alignment.
                unsafe {
                    let xr = xp.add((iy * x.w + ix) * c + first);
                    let wr = wp.add((ky * k + kx) * c + first);
                    for (v, a) in acc.iter_mut().enumerate() {
                        let (xv, wv) =
                            (v128_load(xr.add(4 * v).cast()), v128_load(wr.add(4 * v).cast()));
                        *a = f32x4_add(*a, f32x4_mul(xv, wv));
                    }
                }
            }
        }
    }
    let o = &mut o[first..first + n];
    for (v, a) in acc.into_iter().enumerate() {
        store(&mut o[4 * v..], activate(act, a));
    }
}

/// Output pixels `ox..ox + 4` of a depthwise convolution whose `K x K` windows (stride `S`)
/// lie wholly inside the map, their top row `iy` and the first one's first column `ix`;
/// channels `0..c / 4 * 4` (`o` from pixel `ox`'s first channel). For each vector of channels
/// a row's `K` weights are loaded once and each input pixel once for all four outputs (per
/// pixel they were loaded for each tap of each output). Each output sums its taps in the
/// order `depthwise_block` does (rows, then columns), so the result is the same to the bit.
#[inline(always)]
pub(super) fn depthwise_four<const K: usize, const S: usize>(
    x: &Map,
    conv: &Conv,
    act: Act,
    (iy, ix): (usize, usize),
    o: &mut [f32],
) {
    let (c, xd, wd) = (x.c, x.data(), &conv.weight);
    let (inputs, vc) = (3 * S + K, c / 4 * 4);
    // The last values read and written: every offset below is at most these.
    assert!(iy + K <= x.h && ix + inputs <= x.w);
    assert!(((iy + K - 1) * x.w + ix + inputs - 1) * c + vc <= xd.len());
    assert!(K * K * c <= wd.len() && vc <= conv.bias.len() && 3 * c + vc <= o.len());
    let (xp, wp, bp, op) = (xd.as_ptr(), wd.as_ptr(), conv.bias.as_ptr(), o.as_mut_ptr());
    for f in (0..vc).step_by(4) {
        // SAFETY: every offset is within the bounds asserted above; wasm loads and stores
        // need no alignment.
        unsafe {
            let mut acc = [v128_load(bp.add(f).cast()); 4];
            for ky in 0..K {
                let mut w = [f32x4_splat(0.0); K];
                for (kx, w) in w.iter_mut().enumerate() {
                    *w = v128_load(wp.add((ky * K + kx) * c + f).cast());
                }
                let row = xp.add(((iy + ky) * x.w + ix) * c + f);
                for i in 0..inputs {
                    let xv = v128_load(row.add(i * c).cast());
                    // Output `j` reads input `i` at tap `i - j * S`, when that is a tap.
                    for (j, a) in acc.iter_mut().enumerate() {
                        let kx = i.wrapping_sub(j * S);
                        if kx < K {
                            *a = f32x4_add(*a, f32x4_mul(xv, w[kx]));
                        }
                    }
                }
            }
            for (j, a) in acc.into_iter().enumerate() {
                v128_store(op.add(j * c + f).cast(), activate(act, a));
            }
        }
    }
}

/// `out = act(out + bias + residual)` over pixels of `bias.len()` channels (`residual`
/// empty: none), as `ops::epilogue`; channels past the last four in scalar code.
pub(super) fn epilogue(out: &mut [f32], bias: &[f32], residual: &[f32], act: Act) {
    let c = bias.len();
    let vc = c - c % 4;
    let tail =
        |o: &mut f32, b: f32, r: Option<f32>| *o = act.apply(r.map_or(*o + b, |r| *o + b + r));
    if residual.is_empty() {
        for px in out.chunks_exact_mut(c) {
            for j in (0..vc).step_by(4) {
                let v = f32x4_add(load(&px[j..]), load(&bias[j..]));
                store(&mut px[j..], activate(act, v));
            }
            for j in vc..c {
                tail(&mut px[j], bias[j], None);
            }
        }
    } else {
        for (px, r) in out.chunks_exact_mut(c).zip(residual.chunks_exact(c)) {
            for j in (0..vc).step_by(4) {
                let v = f32x4_add(f32x4_add(load(&px[j..]), load(&bias[j..])), load(&r[j..]));
                store(&mut px[j..], activate(act, v));
            }
            for j in vc..c {
                tail(&mut px[j], bias[j], Some(r[j]));
            }
        }
    }
}

/// `dst[m, n] = act(lhs[m, k] W + bias + residual)` (`residual` `[m, n]` or empty) from
/// packed weights, as `packed::gemm` computes it natively: blocks of `k` and of pixels, each
/// panel of 16 channels in two halves of 8, tiles of up to 4 pixels by 8 channels (8 vector
/// accumulators), bias, residual and activation applied before the one store.
pub(super) fn gemm(m: usize, lhs: &[f32], w: &Packed, residual: &[f32], act: Act, dst: &mut [f32]) {
    let (k, n) = (w.k, w.n);
    assert!(lhs.len() >= m * k && dst.len() >= m * n);
    assert!(residual.is_empty() || residual.len() >= m * n);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let (first, last) = (k0 == 0, k0 + kc == k);
        for m0 in (0..m).step_by(MC) {
            let mc = MC.min(m - m0);
            for col in (0..n).step_by(8) {
                let (p, half) = (col / NR, col % NR);
                let tile = Tile {
                    b: &w.panels[(p * k + k0) * NR + half..(p * k + k0 + kc) * NR],
                    bias: &w.bias[col..col + 8],
                    kc,
                    nr: 8.min(n - col),
                    first,
                    last,
                    act,
                };
                // Rows spread evenly over the tiles, as natively.
                for (r, rows) in row_tiles(m0, mc, 4) {
                    let (a, c, res) = tile_operands(lhs, dst, residual, r, (k, k0), (n, col));
                    match rows {
                        4 => tile.run4(a, k, c, n, res),
                        3 => tile.run3(a, k, c, n, res),
                        2 => tile.run2(a, k, c, n, res),
                        _ => tile.run1(a, k, c, n, res),
                    }
                }
            }
        }
    }
}

/// Eight channels of a panel's block of `k` (`b`: rows of [`NR`] from the half's first
/// channel) and what its tiles apply.
struct Tile<'a> {
    b: &'a [f32],
    bias: &'a [f32],
    kc: usize,
    nr: usize,
    first: bool,
    last: bool,
    act: Act,
}

/// Eight values from `p`'s first `nr` (the rest zero).
#[inline(always)]
fn load8(p: &[f32], nr: usize) -> [v128; 2] {
    let mut buf = [0f32; 8];
    buf[..nr].copy_from_slice(&p[..nr]);
    [load(&buf), load(&buf[4..])]
}

/// Defines `Tile::$name`, a tile of as many pixels as `$r` lists, its rows written out so the
/// accumulators stay in locals.
macro_rules! tile {
    ($name:ident, $($r:literal)+) => {
        #[inline(always)]
        fn $name(&self, a: &[f32], lda: usize, c: &mut [f32], ldc: usize, res: &[f32]) {
            let (nr, rows) = (self.nr, [$($r),+].len());
            assert!(a.len() >= (rows - 1) * lda + self.kc);
            assert!(self.b.len() >= (self.kc - 1) * NR + 8 && c.len() >= (rows - 1) * ldc + nr);
            assert!(res.is_empty() || res.len() >= (rows - 1) * ldc + nr);
            let mut acc = [f32x4_splat(0.0); 8];
            if self.first {
                let (b0, b1) = (load(self.bias), load(&self.bias[4..]));
                $( acc[2 * $r] = b0; acc[2 * $r + 1] = b1; )+
            } else {
                $(
                    let [x0, x1] = load8(&c[$r * ldc..], nr);
                    acc[2 * $r] = x0;
                    acc[2 * $r + 1] = x1;
                )+
            }
            let (ap, bp) = (a.as_ptr(), self.b.as_ptr());
            for kk in 0..self.kc {
                // SAFETY: `kk * NR + 8 <= b.len()` and `$r * lda + kk < a.len()` (the
                // assertions above); wasm loads need no alignment.
                let (b0, b1, xs) = unsafe {
                    let b = bp.add(kk * NR);
                    (v128_load(b.cast()), v128_load(b.add(4).cast()), [$(*ap.add($r * lda + kk)),+])
                };
                $(
                    let x = f32x4_splat(xs[$r]);
                    acc[2 * $r] = f32x4_add(acc[2 * $r], f32x4_mul(x, b0));
                    acc[2 * $r + 1] = f32x4_add(acc[2 * $r + 1], f32x4_mul(x, b1));
                )+
            }
            if self.last {
                $(
                    if !res.is_empty() {
                        let [x0, x1] = load8(&res[$r * ldc..], nr);
                        acc[2 * $r] = f32x4_add(acc[2 * $r], x0);
                        acc[2 * $r + 1] = f32x4_add(acc[2 * $r + 1], x1);
                    }
                    acc[2 * $r] = activate(self.act, acc[2 * $r]);
                    acc[2 * $r + 1] = activate(self.act, acc[2 * $r + 1]);
                )+
            }
            $(
                let o = &mut c[$r * ldc..];
                if nr == 8 {
                    store(o, acc[2 * $r]);
                    store(&mut o[4..], acc[2 * $r + 1]);
                } else {
                    let mut buf = [0f32; 8];
                    store(&mut buf, acc[2 * $r]);
                    store(&mut buf[4..], acc[2 * $r + 1]);
                    o[..nr].copy_from_slice(&buf[..nr]);
                }
            )+
        }
    };
}

impl Tile<'_> {
    tile!(run1, 0);
    tile!(run2, 0 1);
    tile!(run3, 0 1 2);
    tile!(run4, 0 1 2 3);
}
