pub mod collect;
pub mod model;
pub mod pretrained;
