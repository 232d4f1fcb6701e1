//! A PNG of the training history in the style of the Keras book figures: training vs
//! validation loss, and training vs validation accuracy, side by side.
//!
//! Text is rendered with a font shipped in the crate (`assets/DejaVuSans-ascii.ttf`, an
//! ASCII subset of DejaVu Sans under the Bitstream Vera license, see
//! `assets/DejaVuSans-LICENSE.txt`), so plotting needs no system fonts.

use super::history::History;
use candle_core::Result;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-ascii.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse (covered by the plot test).
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::msg(format!("plotting failed: {e:?}"))
}

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(255, 127, 14);

type Series = Vec<(f64, f64)>;

fn series(history: &History, name: &str) -> Series {
    history
        .epochs
        .iter()
        .filter_map(|e| {
            e.get(name)
                .filter(|v| v.is_finite())
                .map(|v| ((e.epoch + 1) as f64, v))
        })
        .collect()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    train: &Series,
    val: &Series,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all: Vec<&(f64, f64)> = train.iter().chain(val.iter()).collect();
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if all.is_empty() {
        (x0, x1, y0, y1) = (1.0, 2.0, 0.0, 1.0);
    }
    // Half an epoch of room on each side so markers are not clipped.
    x0 -= 0.5;
    x1 += 0.5;
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    y0 -= pad;
    y1 += pad;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .light_line_style(WHITE)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(plot_err)?;
    if !train.is_empty() {
        chart
            .draw_series(
                train
                    .iter()
                    .map(|&p| Circle::new(p, 4, TRAIN_COLOR.filled())),
            )
            .map_err(plot_err)?
            .label(format!("training {y_label}"))
            .legend(|(x, y)| Circle::new((x + 10, y), 4, TRAIN_COLOR.filled()));
    }
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(
                val.iter().copied(),
                VAL_COLOR.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(format!("validation {y_label}"))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], VAL_COLOR.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(legend)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Writes a `width` x `height` PNG of `history` to `path` (atomically): a loss panel
/// (training as dots, validation as a line) and, when accuracy was recorded, an accuracy
/// panel beside it. Non-finite values are left out.
pub fn plot_history(
    history: &History,
    path: impl AsRef<Path>,
    width: u32,
    height: u32,
) -> Result<()> {
    register_font();
    let path = path.as_ref();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The image encoder picks the format from the extension: keep `.png` on the temp file.
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.png", std::process::id()));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let with_accuracy = history.epochs.iter().any(|e| e.accuracy.is_some());
        if with_accuracy {
            let panels = root.split_evenly((1, 2));
            panel(
                &panels[0],
                "Training and validation loss",
                "loss",
                &series(history, "loss"),
                &series(history, "val_loss"),
                SeriesLabelPosition::UpperRight,
            )?;
            panel(
                &panels[1],
                "Training and validation accuracy",
                "accuracy",
                &series(history, "accuracy"),
                &series(history, "val_accuracy"),
                SeriesLabelPosition::LowerRight,
            )?;
        } else {
            panel(
                &root,
                "Training and validation loss",
                "loss",
                &series(history, "loss"),
                &series(history, "val_loss"),
                SeriesLabelPosition::UpperRight,
            )?;
        }
        root.present().map_err(plot_err)
    })();
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write the plot {}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::error::Error::io("rename into", path, e).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    #[test]
    fn an_unwritable_plot_path_is_named_and_leaves_no_temp_file() {
        let dir = temp_dir("plot-unwritable");
        let path = dir.join("missing-folder").join("history.png");
        let err = plot_history(&History::default(), &path, 300, 200).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
