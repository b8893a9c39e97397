//! PNG plots (plotters, drawn into memory, encoded with `image`, written atomically).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::cmd::train::EpochLog;
use crate::fsutil::write_atomic;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
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
        let n = history.len().max(2) as f64;
        let max_loss = history
            .iter()
            .flat_map(|e| [e.train_loss, e.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3);
        let mut c = ChartBuilder::on(&left)
            .caption("Loss", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(1.0..n, 0.0..max_loss * 1.05)
            .map_err(|e| anyhow!("{e}"))?;
        c.configure_mesh()
            .x_desc("epoch")
            .y_desc("cross-entropy")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (name, colour, f) in [
            ("train", BLUE, (|e: &EpochLog| e.train_loss) as fn(&EpochLog) -> f64),
            ("validation", RED, |e: &EpochLog| e.val_loss),
        ] {
            c.draw_series(LineSeries::new(
                history.iter().map(|e| (e.epoch as f64, f(e))),
                colour.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;

        let mut c = ChartBuilder::on(&right)
            .caption("Validation", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(1.0..n, 0.0..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        c.configure_mesh().x_desc("epoch").y_desc("score").draw().map_err(|e| anyhow!("{e}"))?;
        for (name, colour, f) in [
            ("macro-F1", GREEN, (|e: &EpochLog| e.val_macro_f1) as fn(&EpochLog) -> f64),
            ("accuracy", MAGENTA, |e: &EpochLog| e.val_accuracy),
        ] {
            c.draw_series(LineSeries::new(
                history.iter().map(|e| (e.epoch as f64, f(e))),
                colour.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomic(path, &png)
}
