//! The operations of a folded encoder on one image, channels last (NHWC: a map is `h * w`
//! pixels of `c` contiguous channels), each writing a new map from a borrowed one.
//!
//! - Dense convolutions are a GEMM over blocks of output pixels (1x1 stride-1 ones read the
//!   map itself, others an im2col copy of the block's patches); bias, the residual add and
//!   the activation are applied in the GEMM's registers (the epilogue) on x86-64 with AVX2
//!   ([`packed`], the weights packed once) and in wasm (`simd128::gemm`, the same panels);
//!   the portable build's `gemm` crate GEMM has them applied to each block while it is still
//!   in cache.
//! - Depthwise convolutions are direct: each output pixel accumulates its `k * k` taps over
//!   contiguous channels, which the compiler vectorises natively ([`super::isa`]); with
//!   AVX2 a 3x3 or 5x5 one runs `depthwise_avx2` (intrinsics, a block of channels across a
//!   row, the same sums); in wasm it and the epilogue are written in SIMD128 (`simd128`),
//!   which LLVM does not vectorise, four output pixels at a time inside the map.
//! - Blocks of output rows are shared among the cores natively when the [`Ctx`] says so.

use std::cell::Cell;

use super::isa::{Isa, multiversion};

#[cfg(target_arch = "x86_64")]
mod depthwise_avx2;
#[cfg(any(target_arch = "x86_64", target_arch = "wasm32"))]
pub mod packed;
#[cfg(target_arch = "wasm32")]
mod simd128;

/// A feature map of one image, channels last: `h * w * c` values at the start of a buffer
/// that may be longer (a reused one, see [`Scratch`]).
#[derive(Debug, Default)]
pub struct Map {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    buf: Vec<f32>,
}

impl Map {
    /// A map of `data` (`h * w * c` values, channels last).
    pub fn new(h: usize, w: usize, c: usize, data: Vec<f32>) -> Map {
        assert_eq!(data.len(), h * w * c, "a {h}x{w}x{c} map");
        Map { h, w, c, buf: data }
    }

    /// The map's values.
    #[inline]
    pub fn data(&self) -> &[f32] {
        &self.buf[..self.h * self.w * self.c]
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [f32] {
        let n = self.h * self.w * self.c;
        &mut self.buf[..n]
    }
}

/// Reused buffers: after the first image of a run, no layer allocates or clears memory.
#[derive(Debug, Default)]
pub struct Scratch {
    free: Vec<Vec<f32>>,
}

impl Scratch {
    /// A map of the given size; its contents are to be overwritten.
    pub fn map(&mut self, h: usize, w: usize, c: usize) -> Map {
        let n = h * w * c;
        // The longest free buffer: buffers grow to the biggest map once and are then reused
        // whole (never shortened, so a later, bigger map needs no clearing).
        let mut buf = match self.free.iter().enumerate().max_by_key(|(_, v)| v.len()) {
            Some((i, _)) => self.free.swap_remove(i),
            None => Vec::new(),
        };
        if buf.len() < n {
            buf.resize(n, 0.0);
        }
        Map { h, w, c, buf }
    }

    pub fn give(&mut self, m: Map) {
        self.free.push(m.buf);
    }
}

/// How a run executes: which instruction set, and whether one image's layers share the cores.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub isa: Isa,
    pub parallel: bool,
}

/// The activation after a convolution (or after a residual add).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
    HardSwish,
}

impl Act {
    #[inline(always)]
    pub(super) fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Relu6 => v.clamp(0.0, 6.0),
            Act::HardSwish => v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
        }
    }
}

/// Padding of a convolution or pool: fixed, or TensorFlow's "SAME" (computed from the input
/// size, the extra row and column at the bottom and right), as Burn's `PaddingConfig2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Same,
    Fixed { top: usize, left: usize, bottom: usize, right: usize },
}

impl Pad {
    /// `(before, after)` along one axis of `size` for a window `k` with `stride`.
    fn pair(self, size: usize, k: usize, stride: usize, vertical: bool) -> (usize, usize) {
        match self {
            Pad::Same => {
                let out = size.div_ceil(stride);
                let total = ((out.max(1) - 1) * stride + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
            Pad::Fixed { top, left, bottom, right } => {
                if vertical {
                    (top, bottom)
                } else {
                    (left, right)
                }
            }
        }
    }

    /// Output side and the padding before, for an input side.
    fn out(self, size: usize, k: usize, stride: usize, vertical: bool) -> (usize, usize) {
        let (a, b) = self.pair(size, k, stride, vertical);
        ((size + a + b).saturating_sub(k) / stride + 1, a)
    }
}

/// A convolution with its norm folded in. Weights: dense `[k, k, cin, cout]` (the GEMM's
/// `K x N` right-hand side), depthwise `[k, k, c]`.
#[derive(Debug, Clone)]
pub struct Conv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: Pad,
    pub depthwise: bool,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// A dense convolution's weights packed for our GEMM ([`Conv::packed`]).
    #[cfg(any(target_arch = "x86_64", target_arch = "wasm32"))]
    pub packed: Option<packed::Packed>,
}

impl Conv {
    /// A convolution from its parts; a dense one's weights are also packed for our GEMM
    /// (x86-64 with AVX2 and FMA, wasm's SIMD128).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
        pad: Pad,
        depthwise: bool,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> Conv {
        #[cfg(any(target_arch = "x86_64", target_arch = "wasm32"))]
        let packed = (!depthwise).then(|| packed::Packed::new(k * k * cin, cout, &weight, &bias));
        Conv {
            cin,
            cout,
            k,
            stride,
            pad,
            depthwise,
            weight,
            bias,
            #[cfg(any(target_arch = "x86_64", target_arch = "wasm32"))]
            packed,
        }
    }
}

/// Output pixels per GEMM block: the block's output (and patches) stay in L2, and a batch of
/// one still gives each core a block.
fn block_rows(pixels: usize, width: usize, parallel: bool) -> usize {
    let mut rows = (32 * 1024 / width.max(1)).clamp(16, 4096);
    if parallel {
        rows = rows.min(pixels.div_ceil(threads()).max(16));
    }
    rows
}

fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

/// Runs `f(i, chunk)` on each `len`-long chunk of `out`, on every core when `parallel`.
fn for_chunks(out: &mut [f32], len: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    if parallel {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let _ = parallel;
    out.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
}

thread_local! {
    /// Each thread's im2col buffer (taken out while in use, so a nested task gets its own).
    static PATCHES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

#[inline(always)]
fn epilogue_impl(out: &mut [f32], bias: &[f32], residual: &[f32], act: Act) {
    // In wasm, explicit SIMD128 (the plain loops are not vectorised there).
    #[cfg(target_arch = "wasm32")]
    simd128::epilogue(out, bias, residual, act);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let c = bias.len();
        if residual.is_empty() {
            for px in out.chunks_exact_mut(c) {
                for (o, b) in px.iter_mut().zip(bias) {
                    *o = act.apply(*o + b);
                }
            }
        } else {
            for (px, r) in out.chunks_exact_mut(c).zip(residual.chunks_exact(c)) {
                for ((o, b), r) in px.iter_mut().zip(bias).zip(r) {
                    *o = act.apply(*o + b + r);
                }
            }
        }
    }
}

multiversion! {
    /// `out = act(out + bias + residual)` over pixels of `bias.len()` channels (`residual`
    /// empty: none).
    fn epilogue(out: &mut [f32], bias: &[f32], residual: &[f32], act: Act) = epilogue_impl;
}

/// `dst[m, n] = lhs[m, k] * rhs[k, n]`, all row-major and contiguous, on one core.
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: the slices hold at least the `m x n`, `m x k` and `k x n` elements the strides
    // address, and `dst` does not alias the inputs (it is a `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Copies the `k x k` patches of output pixels `first..first + rows` into `patches`
/// (`[rows, k * k * c]`, zeros where the window leaves the map).
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &Map,
    conv: &Conv,
    ow: usize,
    pt: usize,
    pl: usize,
    first: usize,
    rows: usize,
    patches: &mut [f32],
) {
    let (k, c, s) = (conv.k, x.c, conv.stride);
    let kk = k * k * c;
    for r in 0..rows {
        let (oy, ox) = ((first + r) / ow, (first + r) % ow);
        let row = &mut patches[r * kk..(r + 1) * kk];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - pt as isize;
            let ix0 = (ox * s) as isize - pl as isize;
            // A tap row inside the map is `k * c` contiguous values (the stem's 3x3 window
            // over 3 channels: 3 copies of 9 values, not 9 of 3).
            if iy >= 0 && iy < x.h as isize && ix0 >= 0 && ix0 as usize + k <= x.w {
                let at = (iy as usize * x.w + ix0 as usize) * c;
                row[ky * k * c..(ky + 1) * k * c].copy_from_slice(&x.data()[at..at + k * c]);
                continue;
            }
            for kx in 0..k {
                let ix = (ox * s + kx) as isize - pl as isize;
                let dst = &mut row[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                    dst.fill(0.0);
                } else {
                    let at = (iy as usize * x.w + ix as usize) * c;
                    dst.copy_from_slice(&x.data()[at..at + c]);
                }
            }
        }
    }
}

/// A dense (groups 1) convolution; `residual` (same shape as the output) is added before
/// `act`.
pub fn conv_dense(
    x: &Map,
    conv: &Conv,
    act: Act,
    residual: Option<&Map>,
    ctx: Ctx,
    scratch: &mut Scratch,
) -> Map {
    let (oh, pt) = conv.pad.out(x.h, conv.k, conv.stride, true);
    let (ow, pl) = conv.pad.out(x.w, conv.k, conv.stride, false);
    let mut out = scratch.map(oh, ow, conv.cout);
    let (n, kk) = (conv.cout, conv.k * conv.k * conv.cin);
    let pixels = oh * ow;
    let direct = conv.k == 1 && conv.stride == 1 && pt == 0 && pl == 0;
    #[cfg(target_arch = "x86_64")]
    let packed = conv.packed.as_ref().filter(|_| ctx.isa != Isa::Portable && ctx.isa.available());
    #[cfg(target_arch = "wasm32")]
    let packed = conv.packed.as_ref();
    #[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
    let packed: Option<&()> = None;
    // The packed kernel blocks a 1x1 convolution's pixels itself: one block per core.
    let rows = match (direct, packed) {
        (true, Some(_)) if !ctx.parallel => pixels,
        _ => block_rows(pixels, n.max(if direct { 0 } else { kk }), ctx.parallel),
    };
    for_chunks(out.data_mut(), rows * n, ctx.parallel, |i, block| {
        let first = i * rows;
        let m = block.len() / n;
        let res = residual.map_or(&[][..], |r| &r.data()[first * n..(first + m) * n]);
        let mut patches = Vec::new();
        let lhs = if direct {
            &x.data()[first * kk..(first + m) * kk]
        } else {
            patches = PATCHES.with(Cell::take);
            patches.resize(m * kk, 0.0);
            im2col(x, conv, ow, pt, pl, first, m, &mut patches);
            &patches[..m * kk]
        };
        match packed {
            // SAFETY: the packed kernel needs AVX2 and FMA, which every ISA but the portable
            // one has, and `available()` says this machine runs it.
            #[cfg(target_arch = "x86_64")]
            Some(w) => unsafe { packed::gemm(m, lhs, w, res, act, block) },
            #[cfg(target_arch = "wasm32")]
            Some(w) => simd128::gemm(m, lhs, w, res, act, block),
            _ => {
                matmul(m, n, kk, block, lhs, &conv.weight);
                epilogue(ctx.isa, block, &conv.bias, res, act);
            }
        }
        if !direct {
            PATCHES.with(|p| p.set(patches));
        }
    });
    out
}

/// One output pixel's channels `first..first + CB` of a depthwise convolution: the
/// accumulators stay in registers over all the taps inside the map (`ys` x `xs`, relative to
/// the window's corner `iy0`, `ix0`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_block<const CB: usize>(
    x: &Map,
    conv: &Conv,
    act: Act,
    (iy0, ix0): (isize, isize),
    (ys, xs): (std::ops::Range<usize>, std::ops::Range<usize>),
    first: usize,
    o: &mut [f32],
) {
    let (k, c, xd) = (conv.k, x.c, x.data());
    let mut acc = [0f32; CB];
    acc.copy_from_slice(&conv.bias[first..first + CB]);
    for ky in ys {
        let iy = (iy0 + ky as isize) as usize;
        for kx in xs.clone() {
            let ix = (ix0 + kx as isize) as usize;
            let at = (iy * x.w + ix) * c + first;
            let xp: &[f32; CB] = xd[at..at + CB].try_into().expect("CB channels");
            let wt = (ky * k + kx) * c + first;
            let wp: &[f32; CB] = conv.weight[wt..wt + CB].try_into().expect("CB weights");
            for j in 0..CB {
                acc[j] += xp[j] * wp[j];
            }
        }
    }
    for (o, a) in o[first..first + CB].iter_mut().zip(acc) {
        *o = act.apply(a);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise_rows_impl(
    x: &Map,
    conv: &Conv,
    act: Act,
    ow: usize,
    pt: usize,
    pl: usize,
    first_row: usize,
    simd: bool,
    out: &mut [f32],
) {
    let (k, c, s) = (conv.k, x.c, conv.stride);
    // The taps of a window starting at `start` (may be negative) that fall inside `0..size`.
    let inside = |start: isize, size: usize| {
        (-start).max(0) as usize..(size as isize - start).clamp(0, k as isize) as usize
    };
    for (r, orow) in out.chunks_exact_mut(ow * c).enumerate() {
        let iy0 = ((first_row + r) * s) as isize - pt as isize;
        let ys = inside(iy0, x.h);
        // With AVX2, every pixel goes through `depthwise_avx2` for all its channels but the
        // last `c % 8` (a 3x3 or 5x5 window).
        let done = if simd && matches!(k, 3 | 5) { c / 8 * 8 } else { 0 };
        // The output pixels whose windows lie wholly inside the map (none in a row whose
        // windows leave it at the top or bottom), which the SIMD loops below run apart.
        #[cfg(any(target_arch = "x86_64", target_arch = "wasm32"))]
        let whole = if ys.len() == k && x.w + pl >= k {
            let start = pl.div_ceil(s);
            start..((x.w + pl - k) / s + 1).min(ow).max(start)
        } else {
            0..0
        };
        #[cfg(target_arch = "x86_64")]
        if done > 0 {
            let row = depthwise_avx2::Row {
                x: x.data(),
                h: x.h,
                w: x.w,
                c,
                k,
                weight: &conv.weight,
                bias: &conv.bias,
                act,
                iy0,
                stride: s,
                pl,
            };
            // SAFETY: `simd` says the machine has AVX2 and FMA.
            unsafe {
                match k {
                    3 => depthwise_avx2::row::<3>(&row, whole, orow),
                    _ => depthwise_avx2::row::<5>(&row, whole, orow),
                }
            }
        }
        let _ = simd;
        // In wasm, a 3x3 or 5x5 window at stride 1 or 2 runs four of those pixels at a time
        // (`simd128::depthwise_four`), all channels but the last `c % 4`.
        #[cfg(target_arch = "wasm32")]
        let fours = match (k, s) {
            (3 | 5, 1 | 2) => whole.start..whole.start + whole.len() / 4 * 4,
            _ => 0..0,
        };
        #[cfg(target_arch = "wasm32")]
        for ox in fours.clone().step_by(4) {
            let at = (iy0 as usize, ox * s - pl);
            let o = &mut orow[ox * c..];
            match (k, s) {
                (3, 1) => simd128::depthwise_four::<3, 1>(x, conv, act, at, o),
                (3, 2) => simd128::depthwise_four::<3, 2>(x, conv, act, at, o),
                (5, 1) => simd128::depthwise_four::<5, 1>(x, conv, act, at, o),
                _ => simd128::depthwise_four::<5, 2>(x, conv, act, at, o),
            }
        }
        for ox in 0..ow {
            let ix0 = (ox * s) as isize - pl as isize;
            let xs = inside(ix0, x.w);
            let o = &mut orow[ox * c..(ox + 1) * c];
            let corner = (iy0, ix0);
            let taps = (ys.clone(), xs.clone());
            let mut first = done;
            #[cfg(target_arch = "wasm32")]
            if fours.contains(&ox) {
                first = c / 4 * 4;
            }
            // In wasm, explicit SIMD128 (the plain loops are not vectorised there).
            #[cfg(target_arch = "wasm32")]
            {
                use simd128::depthwise_block as simd;
                while first + 32 <= c {
                    simd::<8>(x, conv, act, corner, taps.clone(), first, o);
                    first += 32;
                }
                while first + 4 <= c {
                    simd::<1>(x, conv, act, corner, taps.clone(), first, o);
                    first += 4;
                }
            }
            while first + 32 <= c {
                depthwise_block::<32>(x, conv, act, corner, taps.clone(), first, o);
                first += 32;
            }
            while first + 8 <= c {
                depthwise_block::<8>(x, conv, act, corner, taps.clone(), first, o);
                first += 8;
            }
            while first < c {
                depthwise_block::<1>(x, conv, act, corner, taps.clone(), first, o);
                first += 1;
            }
        }
    }
}

multiversion! {
    fn depthwise_rows(
        x: &Map,
        conv: &Conv,
        act: Act,
        ow: usize,
        pt: usize,
        pl: usize,
        first_row: usize,
        simd: bool,
        out: &mut [f32],
    ) = depthwise_rows_impl;
}

/// A depthwise convolution (groups = channels) with its activation.
pub fn conv_depthwise(x: &Map, conv: &Conv, act: Act, ctx: Ctx, scratch: &mut Scratch) -> Map {
    let (oh, pt) = conv.pad.out(x.h, conv.k, conv.stride, true);
    let (ow, pl) = conv.pad.out(x.w, conv.k, conv.stride, false);
    let mut out = scratch.map(oh, ow, conv.cout);
    let row = ow * conv.cout;
    let rows = if ctx.parallel { oh.div_ceil(threads() * 2).max(1) } else { oh };
    // Whether the AVX2 loop (`depthwise_avx2`) may run.
    let simd = cfg!(target_arch = "x86_64") && ctx.isa != Isa::Portable && ctx.isa.available();
    for_chunks(out.data_mut(), rows * row, ctx.parallel, |i, chunk| {
        depthwise_rows(ctx.isa, x, conv, act, ow, pt, pl, i * rows, simd, chunk);
    });
    out
}

/// The input pixel (`iy * w + ix`) that output pixel `(oy, ox)`'s window tap `(ky, kx)` reads,
/// at `stride` with `(pt, pl)` pixels of padding before a map of `h` by `w`; `None` in the
/// padding.
#[inline]
fn tap(
    (oy, ox): (usize, usize),
    (ky, kx): (usize, usize),
    stride: usize,
    (pt, pl): (usize, usize),
    (h, w): (usize, usize),
) -> Option<usize> {
    let iy = (oy * stride + ky).checked_sub(pt)?;
    let ix = (ox * stride + kx).checked_sub(pl)?;
    (iy < h && ix < w).then_some(iy * w + ix)
}

/// Max pooling (padding never wins: only pixels inside the map are compared).
pub fn max_pool(x: &Map, k: usize, stride: usize, pad: Pad, scratch: &mut Scratch) -> Map {
    let (oh, pt) = pad.out(x.h, k, stride, true);
    let (ow, pl) = pad.out(x.w, k, stride, false);
    let c = x.c;
    let mut out = scratch.map(oh, ow, c);
    let (od, xd) = (out.data_mut(), x.data());
    for oy in 0..oh {
        for ox in 0..ow {
            let o = &mut od[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            o.fill(f32::NEG_INFINITY);
            for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                let Some(px) = tap((oy, ox), (ky, kx), stride, (pt, pl), (x.h, x.w)) else {
                    continue;
                };
                for (o, v) in o.iter_mut().zip(&xd[px * c..(px + 1) * c]) {
                    *o = o.max(*v);
                }
            }
        }
    }
    out
}

/// The mean of every channel over the map's pixels.
pub fn global_avg_pool(x: &Map, out: &mut [f32]) {
    out.fill(0.0);
    for px in x.data().chunks_exact(x.c) {
        for (o, v) in out.iter_mut().zip(px) {
            *o += v;
        }
    }
    let n = (x.h * x.w) as f32;
    for o in out.iter_mut() {
        *o /= n;
    }
}

/// A fully connected layer: `weight` is `[input, output]` (Burn's layout), `y = x W + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub input: usize,
    pub output: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Dense {
    /// `out = act(x W + b)` for one row.
    pub fn forward(&self, x: &[f32], act: Act, out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(self.output)) {
            for (o, w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
        for o in out.iter_mut() {
            *o = act.apply(*o);
        }
    }
}

/// Squeeze-excite: each channel scaled by `hard_sigmoid(fc2(relu(fc1(mean))))`.
pub fn squeeze_excite(x: &Map, fc1: &Dense, fc2: &Dense, scratch: &mut Scratch) -> Map {
    let mut pooled = vec![0.0; x.c];
    global_avg_pool(x, &mut pooled);
    let mut hidden = vec![0.0; fc1.output];
    fc1.forward(&pooled, Act::Relu, &mut hidden);
    let mut scale = vec![0.0; fc2.output];
    fc2.forward(&hidden, Act::None, &mut scale);
    for s in scale.iter_mut() {
        *s = (*s * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0);
    }
    let mut out = scratch.map(x.h, x.w, x.c);
    for (o, px) in out.data_mut().chunks_exact_mut(x.c).zip(x.data().chunks_exact(x.c)) {
        for ((o, v), s) in o.iter_mut().zip(px).zip(&scale) {
            *o = v * s;
        }
    }
    out
}

/// Holds the depthwise convolution and the convolutions' epilogue to their definitions, bit
/// for bit (the same sums in the same order): every window size, stride and padding, windows
/// inside the map and over its edges, channel counts that use each block width and a tail (1,
/// 8, 41, 72), each activation, with and without a residual; and the dense convolutions (our
/// GEMM) to theirs, to rounding. Run by the native tests on each instruction set the machine
/// has and, in wasm, where these run in explicit SIMD128, by the app's wasm tests.
#[doc(hidden)]
pub fn check_against_definitions() -> Result<(), String> {
    let mut rng = crate::rng::Rng::new(7);
    let mut random = |n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|_| (rng.next_f64() as f32 * 2.0 - 1.0) * scale).collect()
    };
    let ctx = Ctx { isa: Isa::Portable, parallel: false };
    // Every instruction set the machine runs (natively AVX2 has a loop of its own), each
    // activation, and channel counts that use each block width and a tail.
    let cases = Isa::supported()
        .into_iter()
        .flat_map(|isa| [Act::Relu6, Act::HardSwish, Act::None].map(|act| (isa, act)));
    for ((isa, act), (k, stride, pad)) in cases.flat_map(|c| {
        [
            (3, 1, Pad::Same),
            (3, 2, Pad::Same),
            (5, 1, Pad::Same),
            (5, 2, Pad::Same),
            (7, 1, Pad::Fixed { top: 3, left: 2, bottom: 1, right: 3 }),
            (3, 2, Pad::Fixed { top: 0, left: 0, bottom: 0, right: 0 }),
        ]
        .map(|shape| (c, shape))
    }) {
        let ctx = Ctx { isa, ..ctx };
        // A map bigger than the window, a wide one (several runs of whole windows per row at
        // stride 2, see `simd128::depthwise_four`), and one smaller than a 5x5 window.
        let maps = [(11, 9), (7, 23), (4, 3)];
        for (c, (h, w)) in [1, 8, 41, 72].into_iter().flat_map(|c| maps.map(|m| (c, m))) {
            let x = Map::new(h, w, c, random(h * w * c, 1.0));
            let conv =
                Conv::new((c, c, k), stride, pad, true, random(k * k * c, 0.5), random(c, 0.5));
            let got = conv_depthwise(&x, &conv, act, ctx, &mut Scratch::default());
            let (oh, pt) = pad.out(h, k, stride, true);
            let (ow, pl) = pad.out(w, k, stride, false);
            if (got.h, got.w, got.c) != (oh, ow, c) {
                return Err(format!("depthwise k {k} s {stride}: shape {:?}", (got.h, got.w)));
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut want = conv.bias[ch];
                        for ky in 0..k {
                            for kx in 0..k {
                                let at = tap((oy, ox), (ky, kx), stride, (pt, pl), (h, w));
                                let Some(px) = at else { continue };
                                want += x.data()[px * c + ch] * conv.weight[(ky * k + kx) * c + ch];
                            }
                        }
                        let (v, want) = (got.data()[(oy * ow + ox) * c + ch], act.apply(want));
                        if v.to_bits() != want.to_bits() && !(v == 0.0 && want == 0.0) {
                            return Err(format!(
                                "depthwise {} {act:?} k {k} s {stride} c {c} at {oy},{ox},{ch}: {v} against {want}",
                                isa.name()
                            ));
                        }
                    }
                }
            }
        }
    }
    for c in [1, 8, 41] {
        let pixels = 5;
        let out = random(pixels * c, 8.0);
        let (bias, residual) = (random(c, 1.0), random(pixels * c, 1.0));
        for act in [Act::None, Act::Relu, Act::Relu6, Act::HardSwish] {
            for res in [&[][..], &residual[..]] {
                let mut got = out.clone();
                epilogue(Isa::Portable, &mut got, &bias, res, act);
                for (i, (g, o)) in got.iter().zip(&out).enumerate() {
                    let mut v = o + bias[i % c];
                    if !res.is_empty() {
                        v += res[i];
                    }
                    let want = act.apply(v);
                    // ReLU's max may give either zero for -0.0 (IEEE leaves it open).
                    if g.to_bits() != want.to_bits() && !(*g == 0.0 && want == 0.0) {
                        return Err(format!(
                            "epilogue {act:?} c {c} residual {} at {i}: {g} against {want}",
                            !res.is_empty()
                        ));
                    }
                }
            }
        }
    }
    // Dense convolutions (the GEMM: the packed one natively with AVX2 and in wasm, the
    // `gemm` crate's on the portable path), which sum in another order than the definition:
    // to rounding. 1x1 and 3x3 windows, output channels of whole, partial and half panels,
    // `k` over several blocks, pixels over several tiles and blocks, a residual, at batch 1's
    // split between threads and not.
    for isa in Isa::supported() {
        for (h, w, cin, cout, k, stride) in [
            (5, 4, 3, 24, 1, 1),
            (7, 6, 20, 40, 3, 2),
            (13, 11, 300, 17, 1, 1),
            (3, 3, 8, 96, 3, 1),
        ] {
            let x = Map::new(h, w, cin, random(h * w * cin, 1.0));
            let pad = Pad::Same;
            let weight = random(k * k * cin * cout, 0.5);
            let conv =
                Conv::new((cin, cout, k), stride, pad, false, weight.clone(), random(cout, 0.5));
            let (oh, pt) = pad.out(h, k, stride, true);
            let (ow, pl) = pad.out(w, k, stride, false);
            let residual = Map::new(oh, ow, cout, random(oh * ow * cout, 1.0));
            for (act, parallel) in [(Act::Relu6, false), (Act::None, true)] {
                let ctx = Ctx { isa, parallel };
                let got = conv_dense(&x, &conv, act, Some(&residual), ctx, &mut Scratch::default());
                for oy in 0..oh {
                    for ox in 0..ow {
                        for co in 0..cout {
                            let mut want = f64::from(conv.bias[co]);
                            for ky in 0..k {
                                for kx in 0..k {
                                    let at = tap((oy, ox), (ky, kx), stride, (pt, pl), (h, w));
                                    let Some(at) = at.map(|px| px * cin) else { continue };
                                    for ci in 0..cin {
                                        let wt = ((ky * k + kx) * cin + ci) * cout + co;
                                        want +=
                                            f64::from(x.data()[at + ci]) * f64::from(weight[wt]);
                                    }
                                }
                            }
                            let o = (oy * ow + ox) * cout + co;
                            want += f64::from(residual.data()[o]);
                            let want = act.apply(want as f32);
                            let v = got.data()[o];
                            if (v - want).abs() > 1e-4 * (1.0 + want.abs()) {
                                return Err(format!(
                                    "dense {} {h}x{w}x{cin}->{cout} k {k} s {stride} at \
                                     {oy},{ox},{co}: {v} against {want}",
                                    isa.name()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TensorFlow's "SAME" puts the odd row after; fixed padding is what it says.
    #[test]
    fn padding_gives_the_output_side_and_the_padding_before() {
        // 224 by a 3x3 stride-2 window: 112 out, padding 0 before and 1 after.
        assert_eq!(Pad::Same.out(224, 3, 2, true), (112, 0));
        // 14 by 5x5 stride 1: 14 out, 2 before.
        assert_eq!(Pad::Same.out(14, 5, 1, false), (14, 2));
        let p = Pad::Fixed { top: 3, left: 3, bottom: 3, right: 3 };
        assert_eq!(p.out(224, 7, 2, true), (112, 3));
        let none = Pad::Fixed { top: 0, left: 0, bottom: 0, right: 0 };
        assert_eq!(none.out(7, 2, 2, true), (3, 0));
    }

    /// The depthwise kernel and the epilogue give what their definitions do, bit for bit
    /// (`check_against_definitions`; the app's wasm tests run it on the SIMD128 paths).
    #[test]
    fn depthwise_and_epilogue_give_their_definitions() {
        check_against_definitions().unwrap();
    }

    /// A buffer given back is the one taken next: no new allocation after the first image.
    #[test]
    fn scratch_reuses_its_buffers() {
        let mut s = Scratch::default();
        let mut a = s.map(4, 4, 8);
        a.data_mut().fill(5.0);
        let ptr = a.data().as_ptr();
        s.give(a);
        let b = s.map(2, 2, 8);
        assert_eq!(b.data().as_ptr(), ptr);
        assert_eq!(b.data().len(), 32);
        s.give(b);
        // Taken again at the bigger size, the buffer is the same and was not cleared.
        let c = s.map(4, 4, 8);
        assert_eq!((c.data().as_ptr(), c.data().len()), (ptr, 128));
        assert_eq!(c.data()[127], 5.0);
    }
}
