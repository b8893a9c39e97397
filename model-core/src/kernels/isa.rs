//! Which SIMD instruction set the kernels' inner loops run with, chosen at run time.
//!
//! The inner loops are written once, as plain Rust over slices that the compiler vectorises
//! ([`multiversion!`]); each is compiled again for AVX2+FMA and for AVX-512 on x86-64, and
//! the widest one the machine has is called. In wasm the one build uses SIMD128 (the
//! workspace enables `+simd128` for wasm32). These loops compute the same products and sums
//! in the same order on every path, so they agree to the bit; a test forces each path the
//! machine has.
//! The dense convolutions' GEMMs run our own AVX2+FMA kernel (`ops::packed`) on every path
//! but the portable one, which goes through the `gemm` crate (it picks its own SIMD); the
//! two sum in different orders, so those paths agree to rounding, not to the bit.

/// An instruction set the kernels can be run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Whatever the target was compiled for (SSE2 on x86-64, SIMD128 in wasm, NEON on arm64).
    Portable,
    /// AVX2 and FMA (x86-64).
    Avx2,
    /// AVX-512 F/BW/DQ/VL (x86-64).
    Avx512,
}

impl Isa {
    /// The widest instruction set this machine runs.
    pub fn detect() -> Isa {
        *Self::supported().last().unwrap_or(&Isa::Portable)
    }

    /// Every instruction set this machine runs, narrowest first (always `Portable`).
    pub fn supported() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()).collect()
    }

    /// Whether this machine runs `self` (the features are detected once, then cached).
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.available()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Defines `pub fn $name(isa: Isa, args...)` that runs the `#[inline(always)]` function
/// `$body` compiled for `isa`; an `isa` the machine lacks runs the portable build.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $body:path;) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::kernels::isa::Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                // SAFETY: `isa.available()` says the machine has the features the function was
                // compiled for; a path it lacks falls through to the portable build.
                match isa {
                    $crate::kernels::isa::Isa::Avx2 if isa.available() => {
                        return unsafe { avx2($($arg),*) };
                    }
                    $crate::kernels::isa::Isa::Avx512 if isa.available() => {
                        return unsafe { avx512($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;
