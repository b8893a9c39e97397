pub mod browser;
pub mod model;
pub mod osm_clients;
