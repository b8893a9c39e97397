//! The sidebar's panels, one component per file: tag form, prediction panel, tag list with
//! filter, import/export, settings, the keyboard help, and the backend badge in the top bar.

mod backend_badge;
mod import_export;
mod keyboard_help;
mod prediction;
mod settings;
mod tag_form;
mod tag_list;

pub use backend_badge::BackendBadge;
pub use import_export::ImportExport;
pub use keyboard_help::KeyboardHelp;
pub use prediction::PredictionPanel;
pub use settings::Settings;
pub use tag_form::TagForm;
pub use tag_list::TagList;
