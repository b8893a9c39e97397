//! The depthwise convolution and the convolutions' epilogue in explicit wasm SIMD128.
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

use core::arch::wasm32::*;
use std::ops::Range;

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
    for ky in ys {
        let iy = (iy0 + ky as isize) as usize;
        for kx in xs.clone() {
            let ix = (ix0 + kx as isize) as usize;
            let at = (iy * x.w + ix) * c + first;
            let xp = &xd[at..at + n];
            let wt = (ky * k + kx) * c + first;
            let wp = &conv.weight[wt..wt + n];
            for (v, a) in acc.iter_mut().enumerate() {
                *a = f32x4_add(*a, f32x4_mul(load(&xp[4 * v..]), load(&wp[4 * v..])));
            }
        }
    }
    let o = &mut o[first..first + n];
    for (v, a) in acc.into_iter().enumerate() {
        store(&mut o[4 * v..], activate(act, a));
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
