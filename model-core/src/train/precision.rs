//! Mixed-precision training: the forward and backward passes in f16 or bf16, the weights the
//! optimiser updates (the "master" copy), its moments and the loss in f32.
//!
//! Each step [`Trainer`](crate::train::Trainer) makes a half-precision copy of the master
//! model ([`half_copy`]: same parameter ids, fresh batch-norm running states), runs the batch
//! through it with the loss scaled by a [`LossScaler`], turns the half gradients into
//! unscaled f32 gradients of the master ([`unscale_gradients`]: a step whose gradients
//! overflowed is skipped and the scale halved, as PyTorch's `GradScaler` does) and writes the
//! copy's updated batch-norm statistics back into the master ([`copy_running_stats`]).
//! Validation, checkpoints and exported bundles stay f32.
//!
//! Whether a backend can compute in a dtype is its own answer
//! ([`Device::supports_dtype`](burn::tensor::Device::supports_dtype)); the callers refuse a
//! precision the device lacks instead of falling back silently.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::AccessModel;

/// The dtype of the training forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (no mixed precision).
    #[default]
    F32,
    /// f16 compute with dynamic loss scaling (f16's range is narrow: small gradients
    /// underflow without it).
    F16,
    /// bf16 compute (f32's range, so no loss scaling; fewer mantissa bits than f16).
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// The compute dtype, `None` for plain f32 training.
    pub fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(FloatDType::F16),
            Precision::Bf16 => Some(FloatDType::BF16),
        }
    }

    /// Whether `device` computes in this precision (f32 always).
    pub fn supported_on(self, device: &Device) -> bool {
        self.compute_dtype().is_none_or(|d| device.supports_dtype(d))
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision `{other}` (f32, f16, bf16)")),
        }
    }
}

/// Dynamic loss scaling: start high, halve on overflow, double after `growth_interval`
/// finite steps in a row (PyTorch `GradScaler`'s defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f32,
    /// Whether the scale moves (f16) or stays at 1 (bf16, f32).
    pub dynamic: bool,
    pub growth_interval: u32,
    /// Finite steps since the last change of scale.
    pub good_steps: u32,
    /// Steps skipped so far because their gradients overflowed.
    pub skipped_steps: u64,
}

impl LossScaler {
    pub const INITIAL_SCALE: f32 = 65536.0;
    const MIN_SCALE: f32 = 1.0 / 65536.0;
    const MAX_SCALE: f32 = 16_777_216.0;

    /// The scaler for `precision`: dynamic for f16; a fixed scale of 1 for bf16 and f32 (their
    /// range needs none), which still skips a step whose gradients are not finite.
    pub fn for_precision(precision: Precision) -> Self {
        let scale = if precision == Precision::F16 { Self::INITIAL_SCALE } else { 1.0 };
        Self {
            scale,
            dynamic: precision == Precision::F16,
            growth_interval: 2000,
            good_steps: 0,
            skipped_steps: 0,
        }
    }

    /// Records a step's outcome; returns whether the optimiser may apply it.
    pub fn update(&mut self, finite: bool) -> bool {
        let dynamic = self.dynamic;
        if finite {
            self.good_steps += 1;
            if dynamic && self.good_steps >= self.growth_interval {
                self.scale = (self.scale * 2.0).min(Self::MAX_SCALE);
                self.good_steps = 0;
            }
        } else {
            self.skipped_steps += 1;
            self.good_steps = 0;
            if dynamic {
                self.scale = (self.scale * 0.5).max(Self::MIN_SCALE);
            }
        }
        finite
    }
}

/// A training-mode copy of `master` in `dtype`: every float tensor (weights and batch-norm
/// statistics) cast, the parameter ids and trainability kept, the running statistics in
/// fresh cells (updating the copy's leaves the master's untouched until
/// [`copy_running_stats`]). The copy's trainable weights are leaves of their own, so its
/// gradients are in `dtype`.
pub fn half_copy(master: &AccessModel, dtype: FloatDType) -> AccessModel {
    struct Cast(FloatDType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|t| t.cast(dtype))
        }
    }
    master.valid().map(&mut Cast(dtype)).train()
}

/// Whether a module path names a batch-norm running statistic.
fn is_running_stat(path: &[String]) -> bool {
    matches!(path.last().map(String::as_str), Some("running_mean" | "running_var"))
}

/// Writes the batch-norm running statistics of `half` (a [`half_copy`] of `master` after a
/// training forward pass) back into `master`, in f32. Returns false, and writes nothing, when
/// any of them is not finite (an overflowed forward pass).
pub fn copy_running_stats(half: &AccessModel, master: AccessModel) -> (AccessModel, bool) {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        stats: HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if is_running_stat(&self.path) {
                let t = param.val();
                let n = t.shape().num_elements();
                self.stats.insert(param.id, t.reshape([n]).cast(FloatDType::F32));
            }
        }
    }
    struct Write {
        path: Vec<String>,
        stats: HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleMapper for Write {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if !is_running_stat(&self.path) {
                return param;
            }
            let Some(new) = self.stats.remove(&param.id) else { return param };
            param.map(|old| {
                let new = new.reshape(old.shape());
                if old.is_autodiff() { Tensor::from_inner(new) } else { new }
            })
        }
    }
    let mut c = Collect::default();
    // `valid` folds the per-thread updates of the forward pass into each statistic.
    half.valid().visit(&mut c);
    let mut check = FiniteCheck::default();
    c.stats.values().for_each(|t| check.add(t.clone()));
    if !check.all_finite() {
        return (master, false);
    }
    (master.map(&mut Write { path: Vec::new(), stats: c.stats }), true)
}

/// The gradients of a [`half_copy`] (scaled by `scale`) as f32 gradients of `master`'s
/// trainable parameters, divided by `scale`; and whether every one of them is finite.
pub fn unscale_gradients(
    half_grads: GradientsParams,
    master: &AccessModel,
    scale: f32,
) -> (GradientsParams, bool) {
    struct Unscale {
        half: GradientsParams,
        out: GradientsParams,
        inv: f32,
        check: FiniteCheck,
    }
    impl ModuleVisitor for Unscale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(g) = self.half.remove::<D>(param.id) else { return };
            let g = g.cast(FloatDType::F32).mul_scalar(self.inv);
            self.check.add(g.clone());
            self.out.register(param.id, g);
        }
    }
    let mut u = Unscale {
        half: half_grads,
        out: GradientsParams::new(),
        inv: 1.0 / scale,
        check: FiniteCheck::default(),
    };
    master.visit(&mut u);
    debug_assert!(u.half.is_empty(), "every half gradient belongs to a master parameter");
    (u.out, u.check.all_finite())
}

/// Whether every element of the tensors added is finite, read back once: a sum of absolute
/// values is finite iff every term is.
#[derive(Default)]
struct FiniteCheck {
    total: Option<Tensor<1>>,
}

impl FiniteCheck {
    fn add<const D: usize>(&mut self, t: Tensor<D>) {
        let s = t.abs().sum();
        self.total = Some(match self.total.take() {
            Some(a) => a + s,
            None => s,
        });
    }

    fn all_finite(self) -> bool {
        self.total.is_none_or(|t| t.into_scalar::<f32>().is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_parses_and_names() {
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!("FP16".parse::<Precision>().unwrap(), Precision::F16);
        assert!("f8".parse::<Precision>().unwrap_err().contains("f32, f16, bf16"));
        assert_eq!(Precision::F16.to_string(), "f16");
        assert_eq!(Precision::F32.compute_dtype(), None);
    }

    #[test]
    fn loss_scaler_halves_on_overflow_and_grows_after_a_run_of_good_steps() {
        let mut s = LossScaler::for_precision(Precision::F16);
        s.growth_interval = 3;
        assert!(!s.update(false));
        assert_eq!(s.scale, LossScaler::INITIAL_SCALE / 2.0);
        assert_eq!(s.skipped_steps, 1);
        for _ in 0..2 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale, LossScaler::INITIAL_SCALE / 2.0);
        assert!(s.update(true));
        assert_eq!(s.scale, LossScaler::INITIAL_SCALE);
        // bf16: no scaling, but a non-finite step is still skipped.
        let mut b = LossScaler::for_precision(Precision::Bf16);
        assert!(!b.update(false));
        assert_eq!(b.scale, 1.0);
        for _ in 0..5000 {
            b.update(true);
        }
        assert_eq!(b.scale, 1.0);
    }
}
