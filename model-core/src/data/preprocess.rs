//! Image and metadata preprocessing: the exact steps that turn a tile and a tag into model
//! input, used by training, evaluation, the CLI's `predict` and the browser alike.

use image::{RgbImage, imageops::FilterType};

use crate::data::augment::{AugmentConfig, augment};
use crate::rng::Rng;
use crate::{CoreError, SourceVocab, data::metadata::Scaler};

/// Side of the square model input in pixels.
pub const INPUT_SIZE: u32 = 224;
/// ImageNet channel means (RGB), applied after scaling pixels to `[0, 1]`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Largest image [`decode_rgb`] decodes, in pixels (4096x4096). Map tiles are 256-768 px a
/// side; the limit refuses decompression bombs (a few KB of PNG declaring 50 megapixels) before
/// any pixel memory is allocated.
pub const MAX_IMAGE_PIXELS: u64 = 4096 * 4096;

/// Decodes PNG or JPEG bytes to RGB (alpha is dropped, grey is expanded), refusing images over
/// [`MAX_IMAGE_PIXELS`].
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, CoreError> {
    decode_rgb_limited(bytes, MAX_IMAGE_PIXELS)
}

/// [`decode_rgb`] with an explicit pixel limit. Errors tell apart bytes that are no image
/// ([`CoreError::UnknownImageFormat`]), an image too large ([`CoreError::ImageTooLarge`],
/// checked from the header alone) and a damaged one ([`CoreError::ImageDecode`]).
pub fn decode_rgb_limited(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, CoreError> {
    let format = image::guess_format(bytes).map_err(|_| CoreError::UnknownImageFormat)?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(CoreError::UnsupportedImageFormat(format!("{format:?}")));
    }
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (width, height) =
        reader().into_dimensions().map_err(|e| CoreError::ImageDecode(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(CoreError::EmptyImage { width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(CoreError::ImageTooLarge { width, height, max_pixels });
    }
    let img = reader().decode().map_err(|e| CoreError::ImageDecode(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// Resizes to `size`x`size` with a bilinear filter; an image already that size is returned as is.
pub fn resize_square(img: RgbImage, size: u32) -> RgbImage {
    if img.width() == size && img.height() == size {
        img
    } else {
        image::imageops::resize(&img, size, size, FilterType::Triangle)
    }
}

/// Pixels to the model's planar layout: `[3, H, W]`, scaled to `[0, 1]`, ImageNet-normalised.
pub fn normalize_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = w * h;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

/// One example ready for the model (image planar and normalised, metadata encoded).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// `[3, INPUT_SIZE, INPUT_SIZE]`, row-major.
    pub image: Vec<f32>,
    /// Standardised `[lat, lon]`.
    pub coords: [f32; 2],
    /// One-hot source, length [`SourceVocab::one_hot_len`].
    pub source: Vec<f32>,
    /// The place lies outside the area the model was trained on ([`Scaler::covers`]): its
    /// position was read as the area's centre, and the prediction says so.
    pub outside_trained_area: bool,
}

impl ModelInput {
    /// The full inference preprocessing: decode, resize to 224x224, normalise; scale lat/lon;
    /// one-hot the source (unknown sources fall into the `unknown` bucket).
    pub fn from_image_bytes(
        bytes: &[u8],
        lat: f64,
        lon: f64,
        source: &str,
        scaler: &Scaler,
        sources: &SourceVocab,
    ) -> Result<Self, CoreError> {
        let img = resize_square(decode_rgb(bytes)?, INPUT_SIZE);
        Self::from_rgb(&img, lat, lon, source, scaler, sources)
    }

    /// As [`Self::from_image_bytes`] for an already decoded image of any size.
    pub fn from_rgb(
        img: &RgbImage,
        lat: f64,
        lon: f64,
        source: &str,
        scaler: &Scaler,
        sources: &SourceVocab,
    ) -> Result<Self, CoreError> {
        Self::from_rgb_sized(img, INPUT_SIZE, lat, lon, source, scaler, sources)
    }

    /// As [`Self::from_rgb`] for a model whose input side is `size` (its config's
    /// `image_size`).
    pub fn from_rgb_sized(
        img: &RgbImage,
        size: u32,
        lat: f64,
        lon: f64,
        source: &str,
        scaler: &Scaler,
        sources: &SourceVocab,
    ) -> Result<Self, CoreError> {
        // One assembly for inference and training: the example, seen without augmentation.
        let example = TrainingExample::new(img.clone(), size, lat, lon, source, scaler, sources)?;
        Ok(example.view(None))
    }
}

/// One labelled example as training sees it, assembled once: the tile at the model's input
/// size, the checked and scaled coordinates, the source one-hot. Each epoch (or fine-tune view)
/// draws a [`ModelInput`] from it, augmented or not. The CLI's `train` and the page's
/// fine-tuning both assemble their examples here.
#[derive(Debug, Clone)]
pub struct TrainingExample {
    pub image: RgbImage,
    pub coords: [f32; 2],
    pub source: Vec<f32>,
    /// See [`ModelInput::outside_trained_area`].
    pub outside_trained_area: bool,
}

impl TrainingExample {
    pub fn new(
        img: RgbImage,
        size: u32,
        lat: f64,
        lon: f64,
        source: &str,
        scaler: &Scaler,
        sources: &SourceVocab,
    ) -> Result<Self, CoreError> {
        crate::data::tile::validate_lat_lon(lat, lon)?;
        let image = if img.width() == size && img.height() == size {
            img
        } else {
            resize_square(img, size)
        };
        let mut hot = vec![0.0; sources.one_hot_len()];
        sources.one_hot_into(source, &mut hot);
        Ok(Self {
            image,
            coords: scaler.transform(lat, lon),
            source: hot,
            outside_trained_area: !scaler.covers(lat, lon),
        })
    }

    /// The model input: the tile as is, or through the training augmentation.
    pub fn view(&self, augmentation: Option<(&AugmentConfig, &mut Rng)>) -> ModelInput {
        let image = match augmentation {
            Some((cfg, rng)) => normalize_chw(&augment(&self.image, cfg, rng)),
            None => normalize_chw(&self.image),
        };
        ModelInput {
            image,
            coords: self.coords,
            source: self.source.clone(),
            outside_trained_area: self.outside_trained_area,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn normalisation_is_planar_imagenet() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) }
        });
        let v = normalize_chw(&img);
        assert_eq!(v.len(), 6);
        assert!((v[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6); // R of pixel 0
        assert!((v[1] - (0.0 - 0.485) / 0.229).abs() < 1e-6); // R of pixel 1
        assert!((v[5] - (1.0 - 0.406) / 0.225).abs() < 1e-6); // B of pixel 1
    }

    #[test]
    fn any_size_becomes_224() {
        let img = RgbImage::from_pixel(300, 180, image::Rgb([10, 20, 30]));
        let input = ModelInput::from_image_bytes(
            &png(&img),
            60.17,
            24.94,
            "weird",
            &Scaler::default(),
            &SourceVocab::default(),
        )
        .unwrap();
        assert_eq!(input.image.len(), 3 * 224 * 224);
        assert_eq!(input.source, vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(input.coords, [60.17f32, 24.94f32]);
    }

    #[test]
    fn images_over_the_pixel_limit_are_refused_from_the_header() {
        let big = png(&RgbImage::new(300, 200));
        assert!(matches!(
            decode_rgb_limited(&big, 300 * 200 - 1),
            Err(CoreError::ImageTooLarge { width: 300, height: 200, .. })
        ));
        assert_eq!(decode_rgb_limited(&big, 300 * 200).unwrap().dimensions(), (300, 200));
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert!(matches!(decode_rgb(gif), Err(CoreError::UnsupportedImageFormat(_))));
    }

    #[test]
    fn garbage_and_bad_coordinates_are_errors() {
        let s = Scaler::default();
        let v = SourceVocab::default();
        assert!(matches!(
            ModelInput::from_image_bytes(b"not an image", 0.0, 0.0, "osm", &s, &v),
            Err(CoreError::UnknownImageFormat)
        ));
        let img = png(&RgbImage::new(4, 4));
        assert!(matches!(
            ModelInput::from_image_bytes(&img[..img.len() / 2], 0.0, 0.0, "osm", &s, &v),
            Err(CoreError::ImageDecode(_))
        ));
        assert!(ModelInput::from_image_bytes(&img, 100.0, 0.0, "osm", &s, &v).is_err());
    }
}
