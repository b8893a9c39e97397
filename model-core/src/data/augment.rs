//! Training augmentation, exactly the seed's: horizontal flip (p = 0.5), rotation within
//! ±15°, random crop of 80-100 % of the area (aspect 3/4..4/3, as torchvision's
//! `RandomResizedCrop`) resized back to the input size, brightness and contrast ±0.2.
//! ImageNet normalisation follows in [`crate::data::preprocess::normalize_chw`]. Seeded.

use image::{Rgb, RgbImage, imageops::FilterType};

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    pub flip_p: f64,
    pub max_rotation_deg: f64,
    pub crop_scale: (f64, f64),
    pub brightness: f64,
    pub contrast: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_p: 0.5,
            max_rotation_deg: 15.0,
            crop_scale: (0.8, 1.0),
            brightness: 0.2,
            contrast: 0.2,
        }
    }
}

/// Bilinear sample with a constant fill outside the image.
fn sample(img: &RgbImage, x: f64, y: f64, fill: [u8; 3]) -> [f64; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let px = |xi: i64, yi: i64| -> [f64; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            fill.map(f64::from)
        } else {
            img.get_pixel(xi as u32, yi as u32).0.map(f64::from)
        }
    };
    let (a, b, c, d) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
    let mut out = [0.0; 3];
    for i in 0..3 {
        out[i] = a[i] * (1.0 - fx) * (1.0 - fy)
            + b[i] * fx * (1.0 - fy)
            + c[i] * (1.0 - fx) * fy
            + d[i] * fx * fy;
    }
    out
}

/// Rotates about the centre by `deg` degrees (counter-clockwise), same size, black fill
/// (torchvision's default).
pub fn rotate(img: &RgbImage, deg: f64) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (s, c) = deg.to_radians().sin_cos();
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        // inverse rotation: where does this output pixel come from
        let sx = c * dx - s * dy + cx;
        let sy = s * dx + c * dy + cy;
        let v = sample(img, sx, sy, [0, 0, 0]);
        Rgb(v.map(|p| p.round().clamp(0.0, 255.0) as u8))
    })
}

/// Applies the augmentation pipeline; the output has the input's size.
pub fn augment(img: &RgbImage, cfg: &AugmentConfig, rng: &mut Rng) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let mut out = if rng.next_f64() < cfg.flip_p {
        image::imageops::flip_horizontal(img)
    } else {
        img.clone()
    };
    if cfg.max_rotation_deg > 0.0 {
        out = rotate(&out, rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg));
    }
    // Random resized crop.
    let area = (w * h) as f64 * rng.uniform(cfg.crop_scale.0, cfg.crop_scale.1);
    let ratio = rng.uniform((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln()).exp();
    let cw = ((area * ratio).sqrt().round() as u32).clamp(1, w);
    let ch = ((area / ratio).sqrt().round() as u32).clamp(1, h);
    let x = rng.below((w - cw + 1) as usize) as u32;
    let y = rng.below((h - ch + 1) as usize) as u32;
    let crop = image::imageops::crop_imm(&out, x, y, cw, ch).to_image();
    out = image::imageops::resize(&crop, w, h, FilterType::Triangle);
    // Colour jitter: brightness, then contrast around the mean grey level.
    let b = rng.uniform(1.0 - cfg.brightness, 1.0 + cfg.brightness);
    let c = rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast);
    let mut grey = 0.0;
    for p in out.pixels_mut() {
        for v in p.0.iter_mut() {
            *v = (f64::from(*v) * b).round().clamp(0.0, 255.0) as u8;
        }
        grey += 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
    }
    let mean = grey / f64::from(w * h);
    for p in out.pixels_mut() {
        for v in p.0.iter_mut() {
            *v = (c * f64::from(*v) + (1.0 - c) * mean).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> RgbImage {
        RgbImage::from_fn(224, 224, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8])
        })
    }

    #[test]
    fn keeps_the_shape_and_is_deterministic_for_a_seed() {
        let img = pattern();
        let cfg = AugmentConfig::default();
        let a = augment(&img, &cfg, &mut Rng::new(5));
        let b = augment(&img, &cfg, &mut Rng::new(5));
        let c = augment(&img, &cfg, &mut Rng::new(6));
        assert_eq!(a.dimensions(), (224, 224));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, img);
    }

    #[test]
    fn identity_config_changes_nothing_but_the_crop_resample() {
        let img = pattern();
        let cfg = AugmentConfig {
            flip_p: 0.0,
            max_rotation_deg: 0.0,
            crop_scale: (1.0, 1.0),
            brightness: 0.0,
            contrast: 0.0,
        };
        // Full-area crop with aspect != 1 can still crop; with scale 1 and ratio 1 it is exact.
        let out = augment(&img, &cfg, &mut Rng::new(1));
        assert_eq!(out.dimensions(), img.dimensions());
    }

    #[test]
    fn rotation_by_zero_is_identity_and_by_90_moves_corners() {
        let img = pattern();
        assert_eq!(rotate(&img, 0.0), img);
        let small = RgbImage::from_fn(3, 3, |x, y| {
            if (x, y) == (2, 1) { Rgb([255, 0, 0]) } else { Rgb([0, 0, 0]) }
        });
        let r = rotate(&small, 90.0);
        // counter-clockwise: the pixel right of centre goes above it
        assert_eq!(r.get_pixel(1, 0).0, [255, 0, 0]);
    }
}
