pub mod collect;
pub mod evaluate;
pub mod model;
pub mod preprocess;
pub mod pretrained;
pub mod train;
