//! The training recipe: everything a run is trained with (`train_config.json` in a run
//! folder, `--config` TOML, the CLI's flags), its checks, and what it implies for the model,
//! the schedule and the step. Both fronts read a recipe here rather than spelling it out.

use serde::{Deserialize, Serialize};

use crate::data::metadata::OUTSIDE;
use crate::rng::Rng;
use crate::train::StepConfig;
use crate::train::driver::Keep;
use crate::train::precision::Precision;
use crate::train::schedule::Schedule;
use crate::{CoreError, EncoderKind, LabelVocab, ModelConfig, SourceVocab};

/// The learning-rate schedule of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    Cosine,
    Step,
    Plateau,
    Constant,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 4] = [
        SchedulerKind::Cosine,
        SchedulerKind::Step,
        SchedulerKind::Plateau,
        SchedulerKind::Constant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Cosine => "cosine",
            SchedulerKind::Step => "step",
            SchedulerKind::Plateau => "plateau",
            SchedulerKind::Constant => "constant",
        }
    }
}

/// The share of the recipe's learning rate a run from a trained model (`train --init`) learns
/// at, unless a rate is given: it refines what the model knows rather than relearning it, so a
/// few hundred rows of a new area do not pull it far from where it started.
pub const ADAPT_LR_SHARE: f64 = 0.1;

/// Rows of the regions a bundle was trained on that an adapting run with rehearsal
/// (`train --init --rehearse`) adds to its training split: three times the 200 rows of a new
/// area this project adapts with, so three of four training examples are of places the model
/// knows, which holds it near what it knew while it learns at the recipe's full rate
/// (docs/regions.md measures it).
pub const REHEARSE_ROWS: usize = 600;

/// Everything a run was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub encoder: EncoderKind,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub scheduler: SchedulerKind,
    pub step_size: usize,
    pub gamma: f64,
    pub clip_norm: Option<f32>,
    pub accumulate: usize,
    pub patience: usize,
    /// Stages of the image encoder to freeze (default: 6 of EfficientNet-Lite0's 9 when
    /// pretrained, i.e. stem and the first five MBConv stages; 0 otherwise).
    pub freeze_stages: Option<usize>,
    pub pretrained: bool,
    pub image_size: u32,
    pub dropout: f64,
    pub seed: u64,
    pub augment: bool,
    /// Compute dtype of the training passes: f32, or mixed f16 / bf16 (f32 master weights).
    pub precision: Precision,
    /// With frozen stages: the augmented views of each training image. Their frozen-stage
    /// maps are computed once and epoch `e` trains on view `(e - 1) mod views`
    /// ([`crate::train::trunk_cache`]). Without frozen stages every epoch draws afresh.
    pub views: usize,
    /// The share of training examples whose position (lat/lon) is hidden each epoch: read
    /// as zero, what a model reads outside every area it was trained on
    /// ([`crate::data::metadata`]), so it learns to answer from the tile and the source alone
    /// as well as with position. 0 hides none.
    pub position_dropout: f64,
    /// Rows of the regions the starting bundle knows that joined the training split
    /// (`train --init --rehearse`, at most [`REHEARSE_ROWS`] unless asked otherwise); 0: none.
    pub rehearse_rows: usize,
    /// Which epoch's weights are the run's model: the best on the validation split (early
    /// stopping after `patience` epochs without a better one), or the last.
    pub keep: Keep,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderKind::EfficientNetLite0,
            epochs: 8,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            scheduler: SchedulerKind::Cosine,
            step_size: 5,
            gamma: 0.1,
            clip_norm: Some(1.0),
            accumulate: 1,
            patience: 4,
            freeze_stages: None,
            pretrained: true,
            image_size: 224,
            dropout: 0.3,
            seed: 42,
            augment: true,
            precision: Precision::F32,
            views: 2,
            position_dropout: 0.0,
            rehearse_rows: 0,
            keep: Keep::Best,
        }
    }
}

impl TrainConfig {
    /// Settles what follows from the rest (only EfficientNet-Lite0 has pretrained weights; the
    /// frozen stages default to 6 when pretrained) and checks the values.
    pub fn settle(mut self) -> Result<Self, CoreError> {
        if self.encoder != EncoderKind::EfficientNetLite0 {
            self.pretrained = false;
        }
        let bad = |m: String| Err(CoreError::InvalidConfig(m));
        if self.epochs == 0 || self.batch_size == 0 || self.accumulate == 0 || self.views == 0 {
            return bad("epochs, batch size, accumulate and views must be > 0".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate must be positive, not {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.position_dropout) {
            return bad(format!(
                "position dropout must be at least 0 and below 1, not {}",
                self.position_dropout
            ));
        }
        let k = self.freeze_stages.unwrap_or(if self.pretrained { 6 } else { 0 });
        if k > self.encoder.num_stages() {
            return bad(format!(
                "{} has {} stages; cannot freeze {k}",
                self.encoder,
                self.encoder.num_stages()
            ));
        }
        self.freeze_stages = Some(k);
        Ok(self)
    }

    /// The model this recipe trains, for the data's vocabularies.
    pub fn model_config(
        &self,
        labels: LabelVocab,
        sources: SourceVocab,
    ) -> Result<ModelConfig, CoreError> {
        let mut m = ModelConfig::new(self.encoder);
        m.labels = labels;
        m.sources = sources;
        m.image_size = self.image_size;
        m.dropout = self.dropout;
        m.validate()?;
        Ok(m)
    }

    /// The learning-rate schedule, from the base rate.
    pub fn schedule(&self) -> Schedule {
        match self.scheduler {
            SchedulerKind::Cosine => {
                Schedule::Cosine { epochs: self.epochs, min_lr: self.lr * 0.01 }
            }
            SchedulerKind::Step => Schedule::Step { step_size: self.step_size, gamma: self.gamma },
            SchedulerKind::Plateau => {
                Schedule::ReduceOnPlateau { factor: 0.5, patience: 1, min_lr: self.lr * 0.01 }
            }
            SchedulerKind::Constant => Schedule::Constant,
        }
    }

    /// The step's configuration, with the preprocessing's class weights.
    pub fn step_config(&self, class_weights: Vec<f32>) -> StepConfig {
        StepConfig {
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
            class_weights: Some(class_weights),
            accumulate: self.accumulate,
            precision: self.precision,
            start_stage: self.freeze_stages.unwrap_or(0),
        }
    }

    /// This (saved) recipe continued with what a resume may ask: more or fewer `epochs`. A
    /// different encoder or precision is refused with the reason.
    pub fn resumed_with(
        mut self,
        encoder: Option<EncoderKind>,
        precision: Option<Precision>,
        epochs: Option<usize>,
    ) -> Result<Self, CoreError> {
        if let Some(e) = encoder.filter(|&e| e != self.encoder) {
            return Err(CoreError::InvalidConfig(format!(
                "was trained with {}, not {e}",
                self.encoder
            )));
        }
        if let Some(p) = precision.filter(|&p| p != self.precision) {
            return Err(CoreError::InvalidConfig(format!(
                "trains in {} (its saved config), not {p}; resume it without --precision or \
                 start a new run",
                self.precision
            )));
        }
        self.epochs = epochs.unwrap_or(self.epochs);
        Ok(self)
    }

    /// The seed of epoch `epoch`'s random draws (order, augmentation, dropout): a function of
    /// the run's seed and the epoch alone, so a resumed run draws what an uninterrupted one
    /// would.
    pub fn epoch_seed(&self, epoch: usize) -> u64 {
        self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)
    }

    /// The draws of epoch `epoch`'s position dropout: a stream of its own, so a recipe without
    /// it draws everything else as before.
    pub fn position_rng(&self, epoch: usize) -> Rng {
        Rng::new(self.epoch_seed(epoch) ^ 0x706F_7369_7469_6F6E)
    }

    /// The positions (standardised lat/lon pairs) a training batch reads, flattened: each
    /// hidden (read as outside every trained area, [`OUTSIDE`]) with probability
    /// [`TrainConfig::position_dropout`], one draw from `rng` per example, none when it is 0.
    pub fn positions_read(
        &self,
        coords: impl Iterator<Item = [f32; 2]>,
        rng: &mut Rng,
    ) -> Vec<f32> {
        let share = self.position_dropout;
        coords
            .flat_map(|c| if share > 0.0 && rng.next_f64() < share { OUTSIDE } else { c })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_checks_and_fills_in() {
        let c = TrainConfig::default().settle().unwrap();
        assert_eq!(c.freeze_stages, Some(6));
        let c = TrainConfig { encoder: EncoderKind::ResNet18, ..Default::default() };
        let c = c.settle().unwrap();
        assert_eq!((c.pretrained, c.freeze_stages), (false, Some(0)));
        let e = TrainConfig { lr: 0.0, ..Default::default() }.settle().unwrap_err();
        assert!(e.to_string().contains("learning rate"), "{e}");
        let e = TrainConfig { freeze_stages: Some(99), ..Default::default() }.settle();
        assert!(e.unwrap_err().to_string().contains("cannot freeze 99"));
        let e = TrainConfig { position_dropout: 1.0, ..Default::default() }.settle();
        assert!(e.unwrap_err().to_string().contains("position dropout"));
        assert_ne!(TrainConfig::default().epoch_seed(1), TrainConfig::default().epoch_seed(2));
        let saved = TrainConfig { precision: Precision::F16, ..Default::default() };
        let e = saved.clone().resumed_with(None, Some(Precision::Bf16), None).unwrap_err();
        assert!(e.to_string().contains("trains in f16"), "{e}");
        let e = saved.clone().resumed_with(Some(EncoderKind::ResNet18), None, None).unwrap_err();
        assert!(e.to_string().contains("not resnet18"), "{e}");
        assert_eq!(saved.resumed_with(None, Some(Precision::F16), Some(3)).unwrap().epochs, 3);
    }

    /// Position dropout hides about its share of the positions, the same ones for the same
    /// epoch, and none (drawing nothing) at 0.
    #[test]
    fn position_dropout_hides_its_share() {
        let coords = || (1..=2000).map(|i| [i as f32, -(i as f32)]);
        let c = TrainConfig { position_dropout: 0.3, ..Default::default() };
        let read = c.positions_read(coords(), &mut c.position_rng(1));
        let hidden = read.chunks(2).filter(|p| *p == OUTSIDE).count();
        assert!((500..700).contains(&hidden), "{hidden} of 2000 hidden at 0.3");
        let shown = read.chunks(2).zip(coords()).filter(|(p, c)| p == c).count();
        assert_eq!(hidden + shown, 2000);
        assert_eq!(read, c.positions_read(coords(), &mut c.position_rng(1)));
        assert_ne!(read, c.positions_read(coords(), &mut c.position_rng(2)));
        let none = TrainConfig::default();
        let mut rng = none.position_rng(1);
        let flat: Vec<f32> = coords().flatten().collect();
        assert_eq!(none.positions_read(coords(), &mut rng), flat);
        assert_eq!(rng.next_u64(), none.position_rng(1).next_u64(), "no draw at 0");
    }
}
