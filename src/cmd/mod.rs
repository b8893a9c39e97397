//! One module per subcommand: arguments, files and progress around the library (`crate::run`
//! for the folder layouts, model-core for the work). Commands never import each other; the
//! pipeline, which runs them in order, is the one exception.

pub mod collect;
pub mod evaluate;
pub mod export;
pub mod model;
pub mod osm;
pub mod pipeline;
pub mod pool;
pub mod predict;
pub mod preprocess;
pub mod pretrained;
pub mod serve;
pub mod suggest;
pub mod tiles;
pub mod train;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use model_core::EncoderKind;
use model_core::train::driver::Keep;
use model_core::train::precision::Precision;
use model_core::train::recipe::SchedulerKind;

/// A flag taking one of a model-core enum's names: `--help` and errors list every value.
fn named<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(all.iter().map(move |&v| name(v))).map(move |s| {
        all.iter().copied().find(|&v| name(v) == s).expect("clap passes listed values")
    })
}

/// `--encoder`: the six image encoders by name.
pub(crate) fn encoder_parser() -> impl TypedValueParser<Value = EncoderKind> {
    named(&EncoderKind::ALL, EncoderKind::name)
}

/// `--scheduler`: cosine, step, plateau or constant.
pub(crate) fn scheduler_parser() -> impl TypedValueParser<Value = SchedulerKind> {
    named(&SchedulerKind::ALL, SchedulerKind::name)
}

/// `--precision`: f32, f16 or bf16.
pub(crate) fn precision_parser() -> impl TypedValueParser<Value = Precision> {
    named(&Precision::ALL, Precision::name)
}

/// `--keep`: best or last.
pub(crate) fn keep_parser() -> impl TypedValueParser<Value = Keep> {
    named(&Keep::ALL, Keep::name)
}
