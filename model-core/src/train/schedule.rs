//! Learning-rate schedules, stepped once per epoch, with their whole state serialisable so a
//! resumed run continues exactly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Cosine annealing from the base rate to `min_lr` over `epochs`.
    Cosine {
        epochs: usize,
        min_lr: f64,
    },
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        step_size: usize,
        gamma: f64,
    },
    /// Multiply by `factor` when the monitored metric (higher is better) has not improved for
    /// `patience` epochs.
    ReduceOnPlateau {
        factor: f64,
        patience: usize,
        min_lr: f64,
    },
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduler {
    pub schedule: Schedule,
    pub base_lr: f64,
    /// Epochs completed.
    pub epoch: usize,
    /// Current rate (what the next epoch uses).
    pub lr: f64,
    best: Option<f64>,
    bad_epochs: usize,
}

impl Scheduler {
    pub fn new(schedule: Schedule, base_lr: f64) -> Self {
        Self { schedule, base_lr, epoch: 0, lr: base_lr, best: None, bad_epochs: 0 }
    }

    /// Call after each epoch with the validation metric (higher is better).
    pub fn step(&mut self, metric: f64) {
        self.epoch += 1;
        self.lr = match &self.schedule {
            Schedule::Cosine { epochs, min_lr } => {
                let t = (self.epoch as f64 / (*epochs).max(1) as f64).min(1.0);
                min_lr + 0.5 * (self.base_lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step { step_size, gamma } => {
                self.base_lr * gamma.powi((self.epoch / (*step_size).max(1)) as i32)
            }
            Schedule::ReduceOnPlateau { factor, patience, min_lr } => {
                if self.best.is_none_or(|b| metric > b) {
                    self.best = Some(metric);
                    self.bad_epochs = 0;
                    self.lr
                } else {
                    self.bad_epochs += 1;
                    if self.bad_epochs > *patience {
                        self.bad_epochs = 0;
                        (self.lr * factor).max(*min_lr)
                    } else {
                        self.lr
                    }
                }
            }
            Schedule::Constant => self.base_lr,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_goes_from_base_to_min() {
        let mut s = Scheduler::new(Schedule::Cosine { epochs: 4, min_lr: 0.0 }, 1.0);
        let mut lrs = vec![s.lr];
        for _ in 0..4 {
            s.step(0.0);
            lrs.push(s.lr);
        }
        assert!((lrs[2] - 0.5).abs() < 1e-12 && lrs[4].abs() < 1e-12, "{lrs:?}");
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn step_and_plateau() {
        let mut s = Scheduler::new(Schedule::Step { step_size: 2, gamma: 0.1 }, 1.0);
        s.step(0.0);
        assert_eq!(s.lr, 1.0);
        s.step(0.0);
        assert!((s.lr - 0.1).abs() < 1e-12);
        let mut p = Scheduler::new(
            Schedule::ReduceOnPlateau { factor: 0.5, patience: 1, min_lr: 0.1 },
            1.0,
        );
        for m in [0.5, 0.6, 0.6, 0.6] {
            p.step(m);
        }
        assert_eq!(p.lr, 0.5);
        let json = serde_json::to_string(&p).unwrap();
        let back: Scheduler = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
