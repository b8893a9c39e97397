//! The data layer: what mappers record and what the model is fed. Feature types and their
//! OSM tags, vocabularies, the `tags.csv` schema, the split, Web Mercator tile math, the
//! lat/lon scaler, image preprocessing and augmentation, OSM edit files, suggestion
//! candidates from the map's geometry and the `none` class's background points.

pub mod augment;
pub mod background;
pub mod candidates;
pub mod dataset;
pub mod features;
pub mod metadata;
pub mod osm_edit;
pub mod preprocess;
pub mod split;
pub mod tags;
pub mod tile;
pub mod vocab;
