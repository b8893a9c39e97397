//! PNG plots (plotters, drawn into memory, encoded with `image`, written atomically).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::fsutil::write_atomic;
use model_core::train::driver::EpochLog;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type Series<'a> = (&'a str, RGBColor, fn(&EpochLog) -> f64);

/// One panel of per-epoch lines with a legend.
fn epoch_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    history: &[EpochLog],
    (title, y_desc, y_max): (&str, &str, f64),
    series: &[Series],
) -> Result<()> {
    let n = history.len().max(2) as f64;
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(1.0..n, 0.0..y_max)
        .map_err(err)?;
    c.configure_mesh().x_desc("epoch").y_desc(y_desc).draw().map_err(err)?;
    for &(name, colour, f) in series {
        c.draw_series(LineSeries::new(
            history.iter().map(|e| (e.epoch as f64, f(e))),
            colour.stroke_width(2),
        ))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(err)?;
    Ok(())
}

/// `curves.png`: loss (train, validation) and validation accuracy / macro-F1 per epoch.
pub fn training_curves(history: &[EpochLog], path: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1000u32, 420u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (left, right) = root.split_horizontally(w / 2);
        let max_loss = history
            .iter()
            .flat_map(|e| [e.train_loss, e.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3);
        epoch_panel(
            &left,
            history,
            ("Loss", "cross-entropy", max_loss * 1.05),
            &[("train", BLUE, |e| e.train_loss), ("validation", RED, |e| e.val_loss)],
        )?;
        epoch_panel(
            &right,
            history,
            ("Validation", "score", 1.0),
            &[("macro-F1", GREEN, |e| e.val_macro_f1), ("accuracy", MAGENTA, |e| e.val_accuracy)],
        )?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode(buf, w, h, path)
}

fn encode(buf: Vec<u8>, w: u32, h: u32, path: &Path) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomic(path, &png)
}

/// `confusion_matrix.png`: counts (left) and row-normalised (right); rows are true classes,
/// columns predicted classes.
pub fn confusion_matrix(
    cm: &model_core::train::metrics::ConfusionMatrix,
    path: &Path,
) -> Result<()> {
    register_font();
    let k = cm.labels.len().max(1) as i32;
    let cell = 70i32;
    let (ml, mt) = (130i32, 70i32);
    let panel = ml + cell * k + 30;
    let (w, h) = ((panel * 2) as u32, (mt + cell * k + 110) as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let font = ("sans-serif", 14).into_font();
        for (p, normalised) in [(0, false), (1, true)] {
            let ox = p * panel;
            let title = if normalised {
                "Confusion matrix (row-normalised)"
            } else {
                "Confusion matrix (counts)"
            };
            root.draw(&Text::new(title, (ox + ml, 20), ("sans-serif", 18).into_font()))
                .map_err(|e| anyhow!("{e}"))?;
            for (r, row) in cm.matrix.iter().enumerate() {
                let total: usize = row.iter().sum();
                for (c, &n) in row.iter().enumerate() {
                    let v = if normalised {
                        if total == 0 { 0.0 } else { n as f64 / total as f64 }
                    } else {
                        n as f64
                    };
                    let max = if normalised {
                        1.0
                    } else {
                        cm.matrix.iter().flatten().copied().max().unwrap_or(1).max(1) as f64
                    };
                    let shade = (255.0 - 200.0 * (v / max)) as u8;
                    let (x, y) = (ox + ml + c as i32 * cell, mt + r as i32 * cell);
                    root.draw(&Rectangle::new(
                        [(x, y), (x + cell, y + cell)],
                        RGBColor(shade, shade, 255).filled(),
                    ))
                    .map_err(|e| anyhow!("{e}"))?;
                    root.draw(&Rectangle::new(
                        [(x, y), (x + cell, y + cell)],
                        BLACK.stroke_width(1),
                    ))
                    .map_err(|e| anyhow!("{e}"))?;
                    let label = if normalised { format!("{v:.2}") } else { n.to_string() };
                    let colour = if shade < 120 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        label,
                        (x + cell / 2 - 14, y + cell / 2 - 7),
                        font.clone().color(&colour),
                    ))
                    .map_err(|e| anyhow!("{e}"))?;
                }
            }
            for (i, l) in cm.labels.iter().enumerate() {
                let y = mt + i as i32 * cell + cell / 2 - 7;
                root.draw(&Text::new(l.clone(), (ox + 8, y), font.clone()))
                    .map_err(|e| anyhow!("{e}"))?;
                let x = ox + ml + i as i32 * cell + 4;
                root.draw(&Text::new(
                    l.clone(),
                    (x, mt + k * cell + 8),
                    ("sans-serif", 12).into_font(),
                ))
                .map_err(|e| anyhow!("{e}"))?;
            }
            root.draw(&Text::new(
                "predicted",
                (ox + ml + k * cell / 2 - 30, mt + k * cell + 40),
                font.clone(),
            ))
            .map_err(|e| anyhow!("{e}"))?;
            root.draw(&Text::new("true (rows)", (ox + 8, mt - 24), font.clone()))
                .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode(buf, w, h, path)
}

/// `calibration.png`: reliability diagram (accuracy per confidence bin against the diagonal).
pub fn reliability(
    bins: &[model_core::infer::calibration::Bin],
    ece: f64,
    path: &Path,
) -> Result<()> {
    register_font();
    let (w, h) = (520u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut c = ChartBuilder::on(&root)
            .caption(format!("Reliability (ECE {ece:.3})"), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        c.configure_mesh()
            .x_desc("confidence")
            .y_desc("accuracy")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        c.draw_series(
            bins.iter()
                .filter(|b| b.count > 0)
                .map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.accuracy)], BLUE.mix(0.5).filled())),
        )
        .map_err(|e| anyhow!("{e}"))?;
        c.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode(buf, w, h, path)
}

/// `suggestions_pr.png`: precision against recall over thresholds, one line per type and
/// overall (`all`, thicker), with the base rate (blind picking) as a dashed level.
pub fn precision_recall(
    curves: &std::collections::BTreeMap<String, Vec<(f32, f64, f64)>>,
    base_rate: f64,
    path: &Path,
) -> Result<()> {
    register_font();
    let (w, h) = (560u32, 480u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(200, 120, 0)];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut c = ChartBuilder::on(&root)
            .caption("Suggestions: precision against recall", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        c.configure_mesh()
            .x_desc("recall")
            .y_desc("precision")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (k, (label, points)) in curves.iter().enumerate() {
            let (colour, width) =
                if label == "all" { (BLACK, 3) } else { (palette[k % palette.len()], 2) };
            // Thresholds where something was suggested (precision is defined).
            let line: Vec<(f64, f64)> =
                points.iter().filter(|p| p.1 > 0.0 || p.2 > 0.0).map(|p| (p.2, p.1)).collect();
            c.draw_series(LineSeries::new(line, colour.stroke_width(width)))
                .map_err(|e| anyhow!("{e}"))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(width))
                });
        }
        c.draw_series(DashedLineSeries::new(
            [(0.0, base_rate), (1.0, base_rate)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(|e| anyhow!("{e}"))?
        .label("base rate (any candidate)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(1)));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode(buf, w, h, path)
}
