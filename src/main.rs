//! `accessatlas`: the native command line of AccessAtlas.

use accessatlas::cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "accessatlas",
    version,
    about = "Find and record accessibility features on the map",
    // `accessatlas --epochs 3 train` would silently drop --epochs: the pipeline's flags are
    // for the pipeline alone.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: the whole pipeline on the bundled data.
    #[command(flatten)]
    pipeline: cmd::pipeline::PipelineArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect model architectures.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Labelled locations and their map tiles into DATA/tags.csv and DATA/images/.
    Collect(cmd::collect::CollectArgs),
    /// Validate and split DATA/tags.csv; fit the scaler and class weights on the train split.
    Preprocess(cmd::preprocess::PreprocessArgs),
    /// Train the model on the preprocessed splits (checkpoints, logs, resume).
    Train(cmd::train::TrainArgs),
    /// Evaluate a training run on the test split (metrics, predictions, error analysis, plots).
    Evaluate(cmd::evaluate::EvaluateArgs),
    /// The held-out predictions of several evaluations (cross-validation folds) as one test set.
    Pool(cmd::pool::PoolArgs),
    /// Export a training run as a model bundle (model.json + weights.bpk).
    Export(cmd::export::ExportArgs),
    /// Predict the feature type for an image and its metadata.
    Predict(cmd::predict::PredictArgs),
    /// Serve the web app, the model bundle, rendered tiles and the prediction API (http://127.0.0.1:8080).
    Serve(cmd::serve::ServeArgs),
    /// Suggestions for an area: candidate points from the map, scored by the model.
    Suggest(cmd::suggest::SuggestArgs),
    /// Map tiles: render an area once into MBTiles or a folder (for `serve --tiles`).
    #[command(subcommand)]
    Tiles(cmd::tiles::TilesCommand),
    /// OpenStreetMap files from your tags, for review and upload in an editor.
    #[command(subcommand)]
    Osm(cmd::osm::OsmCommand),
    /// Fetch and check the ImageNet-pretrained EfficientNet-Lite0 weights.
    #[command(subcommand)]
    Pretrained(cmd::pretrained::PretrainedCommand),
}

fn main() {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ACCESSATLAS_LOG")
            .unwrap_or_else(|_| "info,tiny_skia=error".into())
    };
    // ACCESSATLAS_LOG_FORMAT=json: one JSON object per log line (e.g. `serve`'s request log).
    if std::env::var("ACCESSATLAS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return cmd::pipeline::run(cli.pipeline);
    };
    match command {
        Command::Collect(a) => cmd::collect::run(a),
        Command::Model(c) => cmd::model::run(c),
        Command::Preprocess(a) => cmd::preprocess::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Pool(a) => cmd::pool::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Pretrained(c) => cmd::pretrained::run(c),
        Command::Osm(c) => cmd::osm::run(c),
        Command::Tiles(c) => cmd::tiles::run(c),
        Command::Suggest(a) => cmd::suggest::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag of every subcommand says what it does in `--help`.
    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{path} --{}", a.get_long().unwrap_or(id)));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "accessatlas", &mut missing);
        assert!(missing.is_empty(), "flags without help:\n{}", missing.join("\n"));
    }
}
