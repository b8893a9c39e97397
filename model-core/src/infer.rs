//! Inference on one example: the code `accessatlas predict`, the browser worker and the API
//! share, from a loaded model bundle to a [`Prediction`].
//!
//! The input is cut from the bundle's own tile source at the bundle's zoom
//! ([`Predictor::window`]), whatever layer a user looks at: a model only understands tiles like
//! those it was trained on.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::bundle::{BundleManifest, TileSourceSpec};
use crate::metadata::Scaler;
use crate::persist::model_from_bytes;
use crate::preprocess::ModelInput;
use crate::tile::Window;
use crate::{AccessModel, CoreError, ModelConfig, Prediction};

/// A model in inference mode with what its inputs need.
#[derive(Debug, Clone)]
pub struct Predictor {
    pub config: ModelConfig,
    pub model: AccessModel,
    pub scaler: Scaler,
    /// Softmax temperature (1 when not calibrated).
    pub temperature: f32,
    device: Device,
}

impl Predictor {
    pub fn new(
        config: ModelConfig,
        model: AccessModel,
        scaler: Scaler,
        temperature: f32,
        device: &Device,
    ) -> Self {
        Self { config, model: model.valid(), scaler, temperature, device: device.clone() }
    }

    /// Loads a bundle from its `model.json` text and `weights.bpk` bytes.
    pub fn from_bundle(
        manifest: &BundleManifest,
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, CoreError> {
        let model = model_from_bytes(&manifest.config, weights, device)?;
        Ok(Self::new(manifest.config.clone(), model, manifest.scaler, manifest.temperature, device))
    }

    /// The window of map pixels the model sees around a point of `source`'s tiles.
    pub fn window(&self, source: &TileSourceSpec, lat: f64, lon: f64) -> Result<Window, CoreError> {
        Window::centered(lat, lon, source.zoom(), self.config.image_size)
    }

    /// The model input for an image (any size; resized to the model's side) and its metadata.
    pub fn input(
        &self,
        img: &RgbImage,
        lat: f64,
        lon: f64,
        source: &str,
    ) -> Result<ModelInput, CoreError> {
        ModelInput::from_rgb_sized(
            img,
            self.config.image_size,
            lat,
            lon,
            source,
            &self.scaler,
            &self.config.sources,
        )
    }

    fn logits(&self, input: &ModelInput) -> Result<Tensor<2>, CoreError> {
        let s = self.config.image_size as usize;
        let k = self.config.sources.one_hot_len();
        if input.image.len() != 3 * s * s || input.source.len() != k {
            return Err(CoreError::BadBatch("input does not fit the model".into()));
        }
        let d = &self.device;
        Ok(self.model.forward(
            Tensor::<4>::from_data(TensorData::new(input.image.clone(), [1, 3, s, s]), d),
            Tensor::<2>::from_data(TensorData::new(input.coords.to_vec(), [1, 2]), d),
            Tensor::<2>::from_data(TensorData::new(input.source.clone(), [1, k]), d),
        ))
    }

    fn finish(&self, data: TensorData) -> Result<Prediction, CoreError> {
        let logits = data.try_to_vec::<f32>().map_err(|e| CoreError::Backend(format!("{e:?}")))?;
        Ok(Prediction::from_logits(&logits, &self.config.labels, self.temperature))
    }

    /// Runs the model and reads the result back synchronously (CPU backends).
    pub fn predict(&self, input: &ModelInput) -> Result<Prediction, CoreError> {
        let data = self
            .logits(input)?
            .try_into_data()
            .map_err(|e| CoreError::Backend(format!("{e:?}")))?;
        self.finish(data)
    }

    /// Runs the model and reads the result back asynchronously (required by WebGPU in the
    /// browser, fine everywhere).
    pub async fn predict_async(&self, input: &ModelInput) -> Result<Prediction, CoreError> {
        let data = self
            .logits(input)?
            .into_data_async()
            .await
            .map_err(|e| CoreError::Backend(format!("{e:?}")))?;
        self.finish(data)
    }
}
