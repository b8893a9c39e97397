//! The epoch driver: which epoch runs next, the learning rate it uses, the best epoch by
//! validation macro-F1, and early stopping. A front runs each epoch its own way (the CLI on
//! threads with progress bars, the page between `await`s) and reports it here; all that
//! decides when training ends lives in this one place, and its state is serialisable so a
//! resumed run takes the same decisions.

use serde::{Deserialize, Serialize};

use crate::train::schedule::Scheduler;

/// One epoch's figures: a line of `training_history.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Mixed precision: the loss scale at the end of the epoch (None in f32).
    #[serde(default)]
    pub loss_scale: Option<f64>,
    /// Mixed precision: batches the optimiser skipped this epoch (overflowed gradients).
    #[serde(default)]
    pub skipped_steps: u64,
}

/// What the driver remembers between epochs (and across `--resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverState {
    pub epochs_done: usize,
    pub best_macro_f1: f64,
    pub epochs_without_improvement: usize,
    pub scheduler: Scheduler,
    pub history: Vec<EpochLog>,
    /// A run that starts from a trained model (`train --init`): that model's validation
    /// macro-F1 before any epoch. It is the best so far, so an epoch is kept only when it beats
    /// the start, and adapting never leaves a model that does worse on its own validation
    /// cells than the one it started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_macro_f1: Option<f64>,
    /// Which epoch's weights the run keeps.
    #[serde(default)]
    pub keep: Keep,
}

/// Which epoch's weights a run keeps as its model (`train --keep`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The epoch with the best validation macro-F1 (or the starting model, when no epoch beats
    /// it), stopping after `patience` epochs without a better one.
    #[default]
    Best,
    /// The last epoch's, after every epoch has run: the learning rate has decayed by then, and
    /// nothing is chosen on a validation split too small to choose on (a few dozen rows of a
    /// mapper's own area).
    Last,
}

impl Keep {
    pub const ALL: [Keep; 2] = [Keep::Best, Keep::Last];

    /// The name `train --keep` and `train_config.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Keep::Best => "best",
            Keep::Last => "last",
        }
    }
}

impl DriverState {
    /// Whether the run started from a trained model and no epoch beat it: the starting weights
    /// are the run's best.
    pub fn kept_start(&self) -> bool {
        self.keep == Keep::Best
            && self.start_macro_f1.is_some_and(|s| self.history.iter().all(|h| h.val_macro_f1 <= s))
    }
}

/// The verdict on a finished epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The best validation macro-F1 so far: keep these weights.
    pub best: bool,
    /// `patience` epochs in a row without improvement: no epoch follows.
    pub early_stop: bool,
}

/// Runs epochs `1..=epochs`, stopping early after `patience` epochs in a row without a better
/// validation macro-F1 (PyTorch Lightning's rule: patience 2 stops after the second epoch
/// without improvement).
#[derive(Debug, Clone)]
pub struct EpochDriver {
    pub epochs: usize,
    pub patience: usize,
    pub state: DriverState,
}

impl EpochDriver {
    pub fn new(epochs: usize, patience: usize, scheduler: Scheduler) -> Self {
        let state = DriverState {
            epochs_done: 0,
            best_macro_f1: f64::NEG_INFINITY,
            epochs_without_improvement: 0,
            scheduler,
            history: Vec::new(),
            start_macro_f1: None,
            keep: Keep::Best,
        };
        Self { epochs, patience, state }
    }

    /// The driver keeping `keep`'s epoch (a new run's; a resumed run keeps what it started with).
    pub fn keeping(mut self, keep: Keep) -> Self {
        self.state.keep = keep;
        self
    }

    /// Counts the starting weights, scored `val_macro_f1` on the validation split, as the best
    /// so far (a run from a trained model): an epoch must beat them to be kept.
    pub fn start_from(&mut self, val_macro_f1: f64) {
        self.state.start_macro_f1 = Some(val_macro_f1);
        self.state.best_macro_f1 = val_macro_f1;
    }

    /// Continues from a saved state (`epochs` may have been raised on resume).
    pub fn resume(epochs: usize, patience: usize, state: DriverState) -> Self {
        Self { epochs, patience, state }
    }

    /// Whether early stopping has ended the run.
    pub fn stopped_early(&self) -> bool {
        self.state.epochs_without_improvement > 0
            && self.state.epochs_without_improvement >= self.patience
    }

    /// The epoch to run next (1-based), or `None` when training is over.
    pub fn next_epoch(&self) -> Option<usize> {
        (!self.stopped_early() && self.state.epochs_done < self.epochs)
            .then_some(self.state.epochs_done + 1)
    }

    /// The learning rate of the next epoch.
    pub fn lr(&self) -> f64 {
        self.state.scheduler.lr
    }

    /// Records a finished epoch: best-so-far, early stopping, the schedule's step. Keeping the
    /// last epoch, every epoch is the one kept so far and none stops the run early.
    pub fn finish_epoch(&mut self, log: EpochLog) -> Verdict {
        let best = self.state.keep == Keep::Last || log.val_macro_f1 > self.state.best_macro_f1;
        if best {
            self.state.best_macro_f1 = log.val_macro_f1;
            self.state.epochs_without_improvement = 0;
        } else {
            self.state.epochs_without_improvement += 1;
        }
        self.state.scheduler.step(log.val_macro_f1);
        self.state.epochs_done = log.epoch;
        self.state.history.push(log);
        Verdict { best, early_stop: self.stopped_early() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::schedule::Schedule;

    fn log(epoch: usize, f1: f64) -> EpochLog {
        EpochLog {
            epoch,
            train_loss: 1.0,
            train_accuracy: 0.5,
            val_loss: 1.0,
            val_accuracy: 0.5,
            val_macro_f1: f1,
            lr: 0.1,
            seconds: 1.0,
            loss_scale: None,
            skipped_steps: 0,
        }
    }

    #[test]
    fn a_run_from_a_trained_model_keeps_only_epochs_that_beat_the_start() {
        let mut d = EpochDriver::new(5, 2, Scheduler::new(Schedule::Constant, 0.1));
        d.start_from(0.6);
        let mut kept = Vec::new();
        while let Some(e) = d.next_epoch() {
            if d.finish_epoch(log(e, [0.5, 0.6][e - 1])).best {
                kept.push(e);
            }
        }
        // Neither beat the start (a tie does not): two epochs without improvement stop it.
        assert!(kept.is_empty() && d.state.kept_start() && d.state.epochs_done == 2);
        let mut d = EpochDriver::new(3, 2, Scheduler::new(Schedule::Constant, 0.1));
        d.start_from(0.6);
        assert!(d.finish_epoch(log(1, 0.61)).best && !d.state.kept_start());
        // A run from scratch never "keeps the start".
        let mut d = EpochDriver::new(3, 2, Scheduler::new(Schedule::Constant, 0.1));
        d.finish_epoch(log(1, 0.0));
        assert!(!d.state.kept_start());
    }

    /// Runs the driver over scripted validation scores; returns the epochs that ran.
    fn run(epochs: usize, patience: usize, f1: &[f64]) -> (Vec<usize>, Vec<usize>) {
        let mut d = EpochDriver::new(epochs, patience, Scheduler::new(Schedule::Constant, 0.1));
        let (mut ran, mut best) = (Vec::new(), Vec::new());
        while let Some(e) = d.next_epoch() {
            ran.push(e);
            if d.finish_epoch(log(e, f1[e - 1])).best {
                best.push(e);
            }
        }
        (ran, best)
    }

    /// Keeping the last epoch, every epoch runs (none stops the run early), each is kept in turn,
    /// and the start is never the run's model, however the epochs score on validation.
    #[test]
    fn keeping_the_last_epoch_runs_every_epoch_and_never_keeps_the_start() {
        let mut d =
            EpochDriver::new(5, 2, Scheduler::new(Schedule::Constant, 1e-3)).keeping(Keep::Last);
        d.start_from(0.9);
        let mut kept = Vec::new();
        while let Some(e) = d.next_epoch() {
            let v = d.finish_epoch(log(e, [0.5, 0.4, 0.3, 0.2, 0.1][e - 1]));
            assert!(!v.early_stop);
            kept.extend(v.best.then_some(e));
        }
        assert_eq!(kept, [1, 2, 3, 4, 5]);
        assert!(!d.state.kept_start());
        // A saved state keeps its choice across --resume.
        let json = serde_json::to_string(&d.state).unwrap();
        assert_eq!(serde_json::from_str::<DriverState>(&json).unwrap().keep, Keep::Last);
    }

    #[test]
    fn stops_after_exactly_patience_epochs_without_improvement() {
        // Best at 2; epochs 3 and 4 do not improve: patience 2 ends after epoch 4.
        let f1 = [0.3, 0.5, 0.5, 0.4, 0.9, 0.9];
        assert_eq!(run(6, 2, &f1), (vec![1, 2, 3, 4], vec![1, 2]));
        assert_eq!(run(6, 3, &f1), (vec![1, 2, 3, 4, 5, 6], vec![1, 2, 5]));
        // Patience 1: the first epoch without improvement is the last.
        assert_eq!(run(6, 1, &f1).0, vec![1, 2, 3]);
        // An improvement resets the count.
        assert_eq!(run(6, 2, &[0.1, 0.1, 0.2, 0.2, 0.2, 0.9]).0, vec![1, 2, 3, 4, 5]);
        // The epoch budget ends it otherwise.
        assert_eq!(run(3, 5, &f1).0, vec![1, 2, 3]);
    }

    #[test]
    fn a_resumed_driver_takes_the_same_decisions() {
        let f1 = [0.3, 0.5, 0.5, 0.4, 0.9, 0.9];
        let mut d = EpochDriver::new(6, 2, Scheduler::new(Schedule::Constant, 0.1));
        for e in 1..=3 {
            d.finish_epoch(log(e, f1[e - 1]));
        }
        let saved = serde_json::to_string(&d.state).unwrap();
        let mut r = EpochDriver::resume(6, 2, serde_json::from_str(&saved).unwrap());
        assert_eq!(r.next_epoch(), Some(4));
        assert!(r.finish_epoch(log(4, f1[3])).early_stop);
        assert_eq!(r.next_epoch(), None);
    }
}
