//! Metadata features: the lat/lon standard scaler and the metadata vector the model reads.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Standard scaler for `[lat, lon]` (population standard deviation, as scikit-learn's
/// `StandardScaler`). Fitted on the training split only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: [f64; 2],
    pub std: [f64; 2],
}

impl Default for Scaler {
    /// The identity scaler (mean 0, std 1).
    fn default() -> Self {
        Self { mean: [0.0; 2], std: [1.0; 2] }
    }
}

impl Scaler {
    /// Fits mean and population std on `points` (`[lat, lon]`). A zero std (all points on one
    /// line) becomes 1 so the transform stays finite, as scikit-learn does.
    pub fn fit(points: &[[f64; 2]]) -> Result<Self, CoreError> {
        if points.is_empty() {
            return Err(CoreError::InvalidConfig("cannot fit a scaler on no points".into()));
        }
        let n = points.len() as f64;
        let mut mean = [0.0; 2];
        for p in points {
            mean[0] += p[0];
            mean[1] += p[1];
        }
        mean = [mean[0] / n, mean[1] / n];
        let mut var = [0.0; 2];
        for p in points {
            var[0] += (p[0] - mean[0]).powi(2);
            var[1] += (p[1] - mean[1]).powi(2);
        }
        let std = var.map(|v| {
            let s = (v / n).sqrt();
            if s > 0.0 { s } else { 1.0 }
        });
        Ok(Self { mean, std })
    }

    /// `(x - mean) / std` for `[lat, lon]`, as f32 for the model.
    pub fn transform(&self, lat: f64, lon: f64) -> [f32; 2] {
        [((lat - self.mean[0]) / self.std[0]) as f32, ((lon - self.mean[1]) / self.std[1]) as f32]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaler_matches_the_population_formula() {
        let pts = [[60.0, 24.0], [61.0, 25.0], [62.0, 27.0]];
        let s = Scaler::fit(&pts).unwrap();
        assert!((s.mean[0] - 61.0).abs() < 1e-12);
        assert!((s.mean[1] - 76.0 / 3.0).abs() < 1e-12);
        // population variance of 60,61,62 is 2/3
        assert!((s.std[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let z = s.transform(61.0, 76.0 / 3.0);
        assert!(z[0].abs() < 1e-6 && z[1].abs() < 1e-6);
    }

    #[test]
    fn constant_column_does_not_divide_by_zero() {
        let s = Scaler::fit(&[[60.0, 24.0], [60.0, 24.0]]).unwrap();
        assert_eq!(s.std, [1.0, 1.0]);
        assert!(Scaler::fit(&[]).is_err());
    }

    #[test]
    fn lat_lon_validation() {
        assert!(crate::data::tile::validate_lat_lon(60.17, 24.94).is_ok());
        assert!(crate::data::tile::validate_lat_lon(f64::NAN, 24.94).is_err());
        assert!(crate::data::tile::validate_lat_lon(89.0, 24.94).is_err());
        assert!(crate::data::tile::validate_lat_lon(60.0, 181.0).is_err());
    }
}
