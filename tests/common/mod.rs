pub mod browser;
pub mod model;
