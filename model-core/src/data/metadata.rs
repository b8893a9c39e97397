//! Metadata features: the lat/lon scaler, the regions a model was trained on, and the position
//! the model reads.
//!
//! Position must not break a model outside the place it learned. A scaler fitted on one
//! district has a standard deviation of a few hundred metres, so a place on another continent
//! would arrive as a z-score in the thousands and saturate the network (it did: the model
//! answered "no feature here, 100 %" everywhere outside central Helsinki). So the encoding is
//! bounded: the scaler records each region its training points come from ([`TrainedArea`]:
//! the box around them, their mean and std). A point within a region's margin is read at the
//! nearest point of that region, standardised by the region's own mean and std (so position
//! says where in its region a place is, never which region); a point beyond every region reads
//! zero, which tells the model nothing about where it is: the model then answers from the tile
//! and the source alone, and the answer says so ([`Scaler::covers`], carried to every
//! prediction as `outside_trained_area`).

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::data::tile::{BBox, distance_m};

/// The position a model reads outside every area it was trained on: zero, an area's mean,
/// which says nothing of where the place is. Training that hides positions
/// ([`crate::train::recipe::TrainConfig::position_dropout`]) hides them as this.
pub const OUTSIDE: [f32; 2] = [0.0, 0.0];

/// How far beyond its trained area a model still reads position, as a share of the area's
/// extent on each axis ...
pub const AREA_MARGIN_SHARE: f64 = 0.25;
/// ... and at least this many metres.
pub const AREA_MARGIN_MIN_M: f64 = 300.0;

/// One region a model was trained on: the box around its training points (WGS84 degrees),
/// and the mean and population std of those points, by which position inside it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedArea {
    /// The region's name (the extract's, for `collect`); empty when unnamed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    pub min_lat: f64,
    pub min_lon: f64,
    pub max_lat: f64,
    pub max_lon: f64,
    pub mean: [f64; 2],
    pub std: [f64; 2],
}

/// Of `areas`, the one whose margin holds `lat`/`lon` (one that holds it inside its box
/// first).
pub fn area_of(areas: &[TrainedArea], lat: f64, lon: f64) -> Option<&TrainedArea> {
    areas
        .iter()
        .find(|a| a.bbox().contains(lat, lon))
        .or_else(|| areas.iter().find(|a| a.covers(lat, lon)))
}

/// Mean and population std of `points` (a zero std becomes 1, as scikit-learn does).
fn mean_std(points: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let n = points.len().max(1) as f64;
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
    (mean, std)
}

impl TrainedArea {
    /// The region `region` around `points` (`[lat, lon]`); `None` for no points.
    pub fn around(region: &str, points: &[[f64; 2]]) -> Option<Self> {
        let first = points.first()?;
        let (mean, std) = mean_std(points);
        let mut a = Self {
            region: region.to_string(),
            min_lat: first[0],
            min_lon: first[1],
            max_lat: first[0],
            max_lon: first[1],
            mean,
            std,
        };
        for p in points {
            a.min_lat = a.min_lat.min(p[0]);
            a.max_lat = a.max_lat.max(p[0]);
            a.min_lon = a.min_lon.min(p[1]);
            a.max_lon = a.max_lon.max(p[1]);
        }
        Some(a)
    }

    /// The margin in degrees on each axis (`[lat, lon]`): [`AREA_MARGIN_SHARE`] of the extent,
    /// at least [`AREA_MARGIN_MIN_M`].
    pub fn margin_deg(&self) -> [f64; 2] {
        let mid = (self.min_lat + self.max_lat) / 2.0;
        let m_per_deg_lat = distance_m(mid - 0.5, 0.0, mid + 0.5, 0.0);
        let m_per_deg_lon = distance_m(mid, 0.0, mid, 1.0).max(1.0);
        [
            ((self.max_lat - self.min_lat) * AREA_MARGIN_SHARE)
                .max(AREA_MARGIN_MIN_M / m_per_deg_lat),
            ((self.max_lon - self.min_lon) * AREA_MARGIN_SHARE)
                .max(AREA_MARGIN_MIN_M / m_per_deg_lon),
        ]
    }

    /// Whether `lat`/`lon` lies in the area grown by its margin.
    pub fn covers(&self, lat: f64, lon: f64) -> bool {
        let [mlat, mlon] = self.margin_deg();
        (self.min_lat - mlat..=self.max_lat + mlat).contains(&lat)
            && (self.min_lon - mlon..=self.max_lon + mlon).contains(&lon)
    }

    /// The standardised position of the nearest point of the area to `lat`/`lon`.
    pub fn z(&self, lat: f64, lon: f64) -> [f32; 2] {
        let (lat, lon) =
            (lat.clamp(self.min_lat, self.max_lat), lon.clamp(self.min_lon, self.max_lon));
        [((lat - self.mean[0]) / self.std[0]) as f32, ((lon - self.mean[1]) / self.std[1]) as f32]
    }

    /// The area as a bbox.
    pub fn bbox(&self) -> BBox {
        BBox {
            min_lon: self.min_lon,
            min_lat: self.min_lat,
            max_lon: self.max_lon,
            max_lat: self.max_lat,
        }
    }

    /// `region min_lon,min_lat,max_lon,max_lat` (4 decimals), for people.
    pub fn describe(&self) -> String {
        let b = format!(
            "{:.4},{:.4},{:.4},{:.4}",
            self.min_lon, self.min_lat, self.max_lon, self.max_lat
        );
        if self.region.is_empty() { b } else { format!("{} {b}", self.region) }
    }
}

/// Standard scaler for `[lat, lon]` (population standard deviation, as scikit-learn's
/// `StandardScaler`), with the regions its points cover. Fitted on the training split only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Over all training points (what models before regions read position by).
    pub mean: [f64; 2],
    pub std: [f64; 2],
    /// The regions of the training points, each read by its own mean and std. Empty (scalers
    /// written before regions were recorded, and the identity): position is read unbounded by
    /// `mean` and `std`; a bundle fills one in when it loads ([`Self::with_area_or_derived`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<TrainedArea>,
}

impl Default for Scaler {
    /// The identity scaler (mean 0, std 1), with no area.
    fn default() -> Self {
        Self { mean: [0.0; 2], std: [1.0; 2], areas: Vec::new() }
    }
}

impl Scaler {
    /// Fits mean and population std on `points` (`[lat, lon]`), one unnamed region around
    /// them. A zero std (all points on one line) becomes 1 so the transform stays finite, as
    /// scikit-learn does.
    pub fn fit(points: &[[f64; 2]]) -> Result<Self, CoreError> {
        let regions: Vec<(&str, [f64; 2])> = points.iter().map(|p| ("", *p)).collect();
        Self::fit_regions(&regions)
    }

    /// As [`Self::fit`] over points of named regions (`(region, [lat, lon])`): one area per
    /// region, in order of first appearance, each with its own mean and std.
    pub fn fit_regions(points: &[(&str, [f64; 2])]) -> Result<Self, CoreError> {
        if points.is_empty() {
            return Err(CoreError::InvalidConfig("cannot fit a scaler on no points".into()));
        }
        let all: Vec<[f64; 2]> = points.iter().map(|(_, p)| *p).collect();
        let (mean, std) = mean_std(&all);
        let mut names: Vec<&str> = Vec::new();
        for (r, _) in points {
            if !names.contains(r) {
                names.push(r);
            }
        }
        let areas = names
            .iter()
            .filter_map(|name| {
                let pts: Vec<[f64; 2]> =
                    points.iter().filter(|(r, _)| r == name).map(|(_, p)| *p).collect();
                TrainedArea::around(name, &pts)
            })
            .collect();
        Ok(Self { mean, std, areas })
    }

    /// This scaler with its areas, or, for one fitted before areas were recorded, the box its
    /// mean and std imply: mean +- 2 std on each axis (all of an even spread, 95 % of a normal
    /// one; the bundled Helsinki scaler gives back its extract's box within about 350 m).
    pub fn with_area_or_derived(self) -> Self {
        if !self.areas.is_empty() {
            return self;
        }
        let half = self.std.map(|s| s * 2.0);
        let area = TrainedArea {
            region: String::new(),
            min_lat: (self.mean[0] - half[0]).max(-90.0),
            min_lon: (self.mean[1] - half[1]).max(-180.0),
            max_lat: (self.mean[0] + half[0]).min(90.0),
            max_lon: (self.mean[1] + half[1]).min(180.0),
            mean: self.mean,
            std: self.std,
        };
        Self { areas: vec![area], ..self }
    }

    /// The area whose margin holds `lat`/`lon` (one that holds it inside its box first).
    pub fn area_of(&self, lat: f64, lon: f64) -> Option<&TrainedArea> {
        area_of(&self.areas, lat, lon)
    }

    /// Whether the model reads position at `lat`/`lon`: inside one of its trained areas'
    /// margins, or anywhere for a scaler without areas.
    pub fn covers(&self, lat: f64, lon: f64) -> bool {
        self.areas.is_empty() || self.area_of(lat, lon).is_some()
    }

    /// This scaler with one more area, `region`, around those of `points` (`[lat, lon]`) that
    /// lie outside every area it has: what a model fine-tuned on them reads their positions
    /// by (its own mean and std), so after adapting to a new place it no longer says the
    /// place is outside its trained area. Unchanged when it covers them all (or has no
    /// areas, reading everywhere).
    pub fn adapted_to(&self, region: &str, points: &[[f64; 2]]) -> Self {
        let outside: Vec<[f64; 2]> =
            points.iter().copied().filter(|p| !self.covers(p[0], p[1])).collect();
        let mut out = self.clone();
        if let Some(area) = TrainedArea::around(region, &outside) {
            out.areas.push(area);
        }
        out
    }

    /// This scaler with the areas of `earlier` (the scaler of a model that training started
    /// from, `train --init`) that none of its own overlaps, margins included: the adapted model
    /// still reads positions in the places it was first trained on, where its weights learned
    /// them, and does not call them outside. Where an area overlaps one of its own, its own
    /// wins. Unchanged for a scaler without areas (it reads everywhere).
    pub fn keeping(&self, earlier: &Scaler) -> Self {
        let mut out = self.clone();
        if out.areas.is_empty() {
            return out;
        }
        let overlap = |a: &TrainedArea, b: &TrainedArea| {
            let (ma, mb) = (a.margin_deg(), b.margin_deg());
            a.min_lat - ma[0] <= b.max_lat + mb[0]
                && b.min_lat - mb[0] <= a.max_lat + ma[0]
                && a.min_lon - ma[1] <= b.max_lon + mb[1]
                && b.min_lon - mb[1] <= a.max_lon + ma[1]
        };
        for a in earlier.clone().with_area_or_derived().areas {
            if !out.areas.iter().any(|b| overlap(&a, b)) {
                out.areas.push(a);
            }
        }
        out
    }

    /// The trained areas, for people (`; `-separated).
    pub fn describe_areas(&self) -> String {
        self.areas.iter().map(TrainedArea::describe).collect::<Vec<_>>().join("; ")
    }

    /// The standardised position the model reads, as f32: within a trained area's margin, the
    /// nearest point of that area by the area's own mean and std; beyond every area, zero
    /// (an area's mean: nothing about where it is); for a scaler without areas,
    /// `(x - mean) / std` of the point itself.
    pub fn transform(&self, lat: f64, lon: f64) -> [f32; 2] {
        if self.areas.is_empty() {
            return [
                ((lat - self.mean[0]) / self.std[0]) as f32,
                ((lon - self.mean[1]) / self.std[1]) as f32,
            ];
        }
        match self.area_of(lat, lon) {
            Some(a) => a.z(lat, lon),
            None => OUTSIDE,
        }
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

    /// The bug this encoding fixes: a place on another continent read with a scaler fitted
    /// on one district. Without an area it arrives in the thousands; with one it reads the
    /// area's centre, flagged, and a point near the area reads the area's nearest edge.
    #[test]
    fn position_is_bounded_outside_the_trained_area() {
        let pts = [[60.164, 24.935], [60.179, 24.953], [60.17, 24.94]];
        let fitted = Scaler::fit(&pts).unwrap();
        let area = &fitted.areas[0];
        assert_eq!((area.min_lat, area.max_lon), (60.164, 24.953));
        assert_eq!((area.mean, area.std), (fitted.mean, fitted.std));
        let unbounded = Scaler { areas: Vec::new(), ..fitted.clone() };
        let quito = (-0.18, -78.47);
        assert!(unbounded.transform(quito.0, quito.1)[0].abs() > 1000.0, "the old encoding");
        assert!(!fitted.covers(quito.0, quito.1));
        assert_eq!(fitted.transform(quito.0, quito.1), [0.0, 0.0], "the area's centre");
        // Inside: as before. Just outside (100 m north): the nearest edge, covered.
        assert_eq!(fitted.transform(60.17, 24.94), unbounded.transform(60.17, 24.94));
        assert!(fitted.covers(60.1799, 24.94));
        assert_eq!(fitted.transform(60.1799, 24.94), unbounded.transform(60.179, 24.94));
        // Every position read is within the area's z-range.
        for (lat, lon) in [(89.0, 179.0), (-85.0, -179.9), (60.2, 24.9), (0.0, 0.0)] {
            let z = fitted.transform(lat, lon);
            assert!(z.iter().all(|v| v.abs() < 3.0), "{lat},{lon}: {z:?}");
        }
        // The identity scaler (no area) covers everything and reads position unbounded.
        assert!(Scaler::default().covers(quito.0, quito.1));
        assert_eq!(Scaler::default().transform(1.5, -2.0), [1.5, -2.0]);
    }

    /// An older scaler (no area recorded) gets the box an even spread with its mean and std
    /// covers: for the bundled Helsinki scaler, close to the extract's own bbox.
    #[test]
    fn an_older_scaler_gets_the_area_its_mean_and_std_imply() {
        let helsinki = Scaler {
            mean: [60.16932099873607, 24.945460689131867],
            std: [0.0032833088023681394, 0.004869165958295278],
            areas: Vec::new(),
        }
        .with_area_or_derived();
        let a = &helsinki.areas[0];
        // The extract: 24.935,60.164 to 24.953,60.179.
        for (got, want) in
            [(a.min_lat, 60.164), (a.max_lat, 60.179), (a.min_lon, 24.935), (a.max_lon, 24.953)]
        {
            assert!((got - want).abs() < 0.0035, "{a:?}");
        }
        assert!(helsinki.covers(60.17, 24.945) && !helsinki.covers(42.5, 1.52));
        let recorded = Scaler::fit(&[[1.0, 2.0], [1.5, 2.5]]).unwrap();
        assert_eq!(recorded.clone().with_area_or_derived(), recorded);
    }

    /// Two regions far apart: each reads position by its own mean and std (so a place's
    /// position says where in its region it is, not which region), the space between them is
    /// outside both, and the names travel.
    #[test]
    fn each_region_reads_position_by_its_own_scale() {
        let pts = [
            ("helsinki", [60.164, 24.935]),
            ("helsinki", [60.179, 24.953]),
            ("andorra", [42.43, 1.41]),
            ("andorra", [42.65, 1.78]),
        ];
        let s = Scaler::fit_regions(&pts).unwrap();
        assert_eq!(s.areas.len(), 2);
        assert_eq!(
            (s.areas[0].region.as_str(), s.areas[1].region.as_str()),
            ("helsinki", "andorra")
        );
        // The centre of each region reads zero; corners read +-1 (two points: the std is half
        // the extent).
        assert_eq!(s.transform(60.1715, 24.944), [0.0, 0.0]);
        let corner = s.transform(42.65, 1.78);
        assert!((corner[0] - 1.0).abs() < 1e-5 && (corner[1] - 1.0).abs() < 1e-5, "{corner:?}");
        // Paris lies between them, inside neither.
        assert!(!s.covers(48.85, 2.35));
        assert_eq!(s.transform(48.85, 2.35), [0.0, 0.0]);
        assert!(
            s.describe_areas().starts_with("helsinki 24.9350,60.1640"),
            "{}",
            s.describe_areas()
        );
    }

    /// Fine-tuning on places outside every area adds one around them; places already covered
    /// change nothing.
    #[test]
    fn adapting_adds_an_area_around_new_places_only() {
        let helsinki = Scaler::fit(&[[60.164, 24.935], [60.179, 24.953]]).unwrap();
        assert_eq!(helsinki.adapted_to("fine-tune", &[[60.17, 24.94]]), helsinki);
        let quito = [[-0.18, -78.47], [-0.17, -78.48], [60.17, 24.94]];
        let adapted = helsinki.adapted_to("fine-tune", &quito);
        assert_eq!(adapted.areas.len(), 2);
        let added = &adapted.areas[1];
        assert_eq!(
            (added.region.as_str(), added.min_lat, added.max_lat),
            ("fine-tune", -0.18, -0.17)
        );
        assert!(adapted.covers(-0.175, -78.475) && !helsinki.covers(-0.175, -78.475));
        assert_eq!(adapted.transform(60.17, 24.94), helsinki.transform(60.17, 24.94));
        assert_eq!(Scaler::default().adapted_to("x", &quito), Scaler::default());
    }

    /// An adapted model keeps the areas it was first trained on that the new data does not
    /// overlap: Helsinki's, when adapted in Andorra; not an older Andorran one, whose place
    /// the new Andorran area takes.
    #[test]
    fn adapting_keeps_the_first_areas_the_new_data_does_not_overlap() {
        let helsinki =
            Scaler::fit_regions(&[("helsinki", [60.16, 24.93]), ("helsinki", [60.18, 24.96])])
                .unwrap();
        let old_andorra =
            Scaler::fit_regions(&[("andorra", [42.50, 1.52]), ("andorra", [42.52, 1.55])]).unwrap();
        let earlier = Scaler {
            areas: [helsinki.areas.clone(), old_andorra.areas.clone()].concat(),
            ..helsinki.clone()
        };
        let new =
            Scaler::fit_regions(&[("andorra", [42.45, 1.45]), ("andorra", [42.60, 1.70])]).unwrap();
        let kept = new.keeping(&earlier);
        assert_eq!(kept.areas.len(), 2, "{:?}", kept.areas);
        assert_eq!(kept.areas[0], new.areas[0], "the new data's own area first");
        assert_eq!(kept.areas[1], helsinki.areas[0]);
        assert!(kept.covers(60.17, 24.94) && kept.covers(42.55, 1.6) && !kept.covers(48.85, 2.35));
        // In Helsinki it reads position as the first model did.
        assert_eq!(kept.transform(60.17, 24.94), helsinki.transform(60.17, 24.94));
        // A bundle from before areas were recorded: the area its scaler implies is kept.
        let older = Scaler { mean: [60.17, 24.94], std: [0.003, 0.005], areas: Vec::new() };
        assert!(new.keeping(&older).covers(60.17, 24.94));
        // A scaler without areas reads everywhere: unchanged.
        assert_eq!(Scaler::default().keeping(&earlier), Scaler::default());
    }

    #[test]
    fn lat_lon_validation() {
        assert!(crate::data::tile::validate_lat_lon(60.17, 24.94).is_ok());
        assert!(crate::data::tile::validate_lat_lon(f64::NAN, 24.94).is_err());
        assert!(crate::data::tile::validate_lat_lon(89.0, 24.94).is_err());
        assert!(crate::data::tile::validate_lat_lon(60.0, 181.0).is_err());
    }
}
