//! The frozen stages, run once. When a recipe freezes the image encoder's first `k` stages,
//! those stages are a fixed function of the image: they get no gradients and their batch norms
//! use the running statistics they were pretrained with (inference mode, as PyTorch's
//! `module.eval()` on frozen layers). So training computes their output maps once for each
//! training image and augmented view and each epoch trains only the stages after them
//! ([`crate::train::StepConfig::start_stage`]).
//!
//! The recipe fixes a number of augmented views per image ([`TrainConfig::views`]); epoch `e`
//! trains on view `(e - 1) mod views` of every image ([`TrainConfig::epoch_view`]), drawn from a
//! seed of its own ([`TrainConfig::view_seed`]), so the first `views` epochs compute the maps
//! and the rest reuse them. A cache held within a memory budget keeps as many whole views as
//! fit; views beyond it are recomputed when an epoch needs them, to the same values, so the
//! budget changes the time a run takes and never what it learns.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::augment::AugmentConfig;
use crate::data::preprocess::{ModelInput, TrainingExample};
use crate::rng::Rng;
use crate::train::recipe::TrainConfig;
use crate::{AccessModel, CoreError};

/// Runs the first `k` stages of `model`'s encoder on `inputs` (one batch of `[3, size, size]`
/// images): the maps `[n, c, h, w]`. `model` should be in inference mode (`valid()`), so that
/// the frozen batch norms use their running statistics.
pub fn frozen_maps(
    model: &AccessModel,
    k: usize,
    inputs: &[ModelInput],
    size: usize,
    device: &Device,
) -> Result<Tensor<4>, CoreError> {
    let x = crate::train::finetune::image_batch(inputs, size, device)?;
    Ok(model.encoder.stages(x, 0..k))
}

impl TrainConfig {
    /// The view of every training image that epoch `epoch` (1-based) trains on when stages
    /// are frozen.
    pub fn epoch_view(&self, epoch: usize) -> usize {
        epoch.saturating_sub(1) % self.views.max(1)
    }

    /// The seed of view `view` of training example `example`: a function of the run's seed
    /// and those two alone, so a view is the same whichever epoch, batch or order draws it.
    pub fn view_seed(&self, example: usize, view: usize) -> u64 {
        let x = (example as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (view as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        self.seed ^ x.rotate_left(29)
    }

    /// View `view` of `example` (index `i` of its split): augmented from its own seed when the
    /// recipe augments, the tile as is otherwise.
    pub fn training_view(&self, example: &TrainingExample, i: usize, view: usize) -> ModelInput {
        if self.augment {
            let mut rng = Rng::new(self.view_seed(i, view));
            example.view(Some((&AugmentConfig::default(), &mut rng)))
        } else {
            example.view(None)
        }
    }
}

/// Frozen-stage maps of one split, by example and view, within a memory budget.
#[derive(Debug)]
pub struct TrunkCache {
    examples: usize,
    /// Views kept (those that fit the budget), and the map shape once known.
    kept: Option<(usize, [usize; 3])>,
    views: usize,
    budget: usize,
    /// `slots[view * examples + example]`.
    slots: Vec<Option<Vec<f32>>>,
}

impl TrunkCache {
    /// A cache for `examples` examples with `views` views each, holding at most
    /// `budget_bytes` of maps.
    pub fn new(examples: usize, views: usize, budget_bytes: usize) -> Self {
        Self { examples, kept: None, views: views.max(1), budget: budget_bytes, slots: Vec::new() }
    }

    /// The maps of `idx` in view `view`, when all are held.
    pub fn get(&self, idx: &[usize], view: usize) -> Option<Vec<&[f32]>> {
        let (kept, _) = self.kept?;
        if view >= kept {
            return None;
        }
        idx.iter().map(|&i| self.slots.get(view * self.examples + i)?.as_deref()).collect()
    }

    /// The shape `[c, h, w]` of one map, once one was stored.
    pub fn map_shape(&self) -> Option<[usize; 3]> {
        self.kept.map(|(_, s)| s)
    }

    /// Views the budget holds (known after the first [`Self::store`]).
    pub fn views_kept(&self) -> Option<usize> {
        self.kept.map(|(k, _)| k)
    }

    /// Keeps the maps `[n, c, h, w]` of examples `idx` in view `view` if that view fits the
    /// budget; returns whether it was kept.
    pub fn store(&mut self, idx: &[usize], view: usize, maps: Vec<f32>, shape: [usize; 4]) -> bool {
        let [n, c, h, w] = shape;
        if n != idx.len() || maps.len() != n * c * h * w {
            return false;
        }
        let (kept, s) = *self.kept.get_or_insert_with(|| {
            let per_view = self.examples * c * h * w * std::mem::size_of::<f32>();
            let fit = self.budget.checked_div(per_view).unwrap_or(self.views);
            (fit.min(self.views), [c, h, w])
        });
        if view >= kept || s != [c, h, w] {
            return false;
        }
        if self.slots.is_empty() {
            self.slots = vec![None; kept * self.examples];
        }
        for (&i, map) in idx.iter().zip(maps.chunks_exact(c * h * w)) {
            if let Some(slot) = self.slots.get_mut(view * self.examples + i) {
                *slot = Some(map.to_vec());
            }
        }
        true
    }

    /// Stacks held maps into a batch `[n, c, h, w]` on `device`.
    pub fn batch(&self, maps: &[&[f32]], device: &Device) -> Option<Tensor<4>> {
        let [c, h, w] = self.map_shape()?;
        let data: Vec<f32> = maps.iter().flat_map(|m| m.iter().copied()).collect();
        Some(Tensor::from_data(TensorData::new(data, [maps.len(), c, h, w]), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderKind, ModelConfig};

    #[test]
    fn views_cycle_and_have_their_own_seeds() {
        let c = TrainConfig { views: 3, ..TrainConfig::default() };
        let v: Vec<usize> = (1..=7).map(|e| c.epoch_view(e)).collect();
        assert_eq!(v, [0, 1, 2, 0, 1, 2, 0]);
        assert_ne!(c.view_seed(0, 0), c.view_seed(0, 1));
        assert_ne!(c.view_seed(0, 1), c.view_seed(1, 0));
        assert_eq!(c.view_seed(5, 2), c.view_seed(5, 2));
    }

    #[test]
    fn the_cache_keeps_whole_views_within_its_budget() {
        let map = 2 * 2 * 2;
        // Budget for two views of three examples.
        let mut cache = TrunkCache::new(3, 4, 2 * 3 * map * 4);
        let maps = |n: usize, v: f32| vec![v; n * map];
        assert!(cache.get(&[0], 0).is_none());
        assert!(cache.store(&[2, 0], 0, maps(2, 1.0), [2, 2, 2, 2]));
        assert_eq!(cache.views_kept(), Some(2));
        assert!(cache.get(&[0, 1], 0).is_none(), "example 1 not stored yet");
        assert!(cache.store(&[1], 0, maps(1, 2.0), [1, 2, 2, 2]));
        let got = cache.get(&[1, 0], 0).unwrap();
        assert_eq!((got[0][0], got[1][0]), (2.0, 1.0));
        assert!(cache.store(&[0, 1, 2], 1, maps(3, 3.0), [3, 2, 2, 2]));
        assert!(!cache.store(&[0, 1, 2], 2, maps(3, 4.0), [3, 2, 2, 2]), "over the budget");
        assert!(cache.get(&[0], 2).is_none());
        assert!(!cache.store(&[0], 1, maps(2, 3.0), [2, 2, 2, 2]), "wrong count");
        let t = cache.batch(&cache.get(&[2, 1], 1).unwrap(), &Device::flex()).unwrap();
        assert_eq!(t.dims(), [2, 2, 2, 2]);
    }

    #[test]
    fn features_from_frozen_maps_equal_the_whole_encoder() {
        let device = Device::flex();
        for kind in EncoderKind::ALL {
            let cfg = ModelConfig::new(kind);
            let model = cfg.init(&device).unwrap();
            let batch = crate::train::Batch::synthetic(&cfg, 1, 32, 7, &device);
            let input = ModelInput {
                image: batch.images.clone().into_data().try_to_vec::<f32>().unwrap(),
                coords: [0.0, 0.0],
                source: vec![0.0; cfg.sources.one_hot_len()],
                outside_trained_area: false,
            };
            let whole = model.encoder.features(batch.images.clone()).into_data();
            for k in 0..=kind.num_stages() {
                let maps = frozen_maps(&model, k, std::slice::from_ref(&input), 32, &device);
                let from = model.encoder.features_from(maps.unwrap(), k).into_data();
                let tol = burn::tensor::Tolerance::absolute(1e-5);
                from.assert_approx_eq::<f32>(&whole, tol);
            }
        }
    }
}
