//! The evaluation report folder: `report.json` (the CLI contract), plots as SVG and PNG (ROUGE bars
//! with their 95% whiskers, the distribution of per-example ROUGE-L, the training loss curve when a
//! training log is given), and `report.html`, one
//! self-contained page with the scores, the plots and every example side by side, sortable.

use std::fmt::Write as _;
use std::path::Path;

use crate::data::Dialogue;
use crate::error::{Error, Result};
use crate::eval::Run;
use crate::fsutil::{NewFolder, check_new_files, write_atomically};
use crate::model::Precision;

const COLORS: [&str; 6] = [
    "#7a869a", "#2f6fde", "#e07b24", "#2a9d5c", "#b8437a", "#8a6cd1",
];
const TYPES: [&str; 4] = ["rouge1", "rouge2", "rougeL", "rougeLsum"];

/// One point of a training log: `{"step", "loss", "validation_loss"?}` per line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPoint {
    pub step: f64,
    pub loss: Option<f64>,
    pub validation_loss: Option<f64>,
}

/// Reads a training log (JSON lines with at least `step` and `loss` or `validation_loss`).
pub fn read_training_log(path: &Path) -> Result<Vec<LogPoint>> {
    let mut points = Vec::new();
    for (number, row) in crate::data::read_json_lines(path)? {
        let number_field = |key: &str| {
            row.get(key)
                .and_then(serde_json::Value::as_f64)
                .filter(|v| v.is_finite())
        };
        let Some(step) = number_field("step") else {
            return Err(Error::invalid_at(
                path,
                number,
                "missing numeric field \"step\"",
            ));
        };
        let (loss, validation_loss) = (number_field("loss"), number_field("validation_loss"));
        if loss.is_some() || validation_loss.is_some() {
            points.push(LogPoint {
                step,
                loss,
                validation_loss,
            });
        }
    }
    if points.is_empty() {
        return Err(Error::invalid(path, "the training log has no losses"));
    }
    Ok(points)
}

/// The files of a report folder.
const FILES: [&str; 8] = [
    "report.json",
    "report.html",
    "rouge.svg",
    "rouge.png",
    "rougeL_distribution.svg",
    "rougeL_distribution.png",
    "loss_curve.svg",
    "loss_curve.png",
];

/// The output rule for a report folder, checked before the evaluation: a report there is kept
/// unless `overwrite`, and only regular files are replaced.
pub fn check_new(folder: &Path, overwrite: bool) -> Result<()> {
    check_new_files(folder, &FILES, overwrite)
}

/// Writes the report of `runs` (the baseline first) into `folder`, with the loss curves of
/// `training_log` when given; `precision` is how the model's weights were stored.
pub fn write(
    folder: &Path,
    model: &str,
    precision: Precision,
    data: &str,
    dialogues: &[Dialogue],
    runs: &[Run],
    training_log: Option<&[LogPoint]>,
) -> Result<()> {
    let made = NewFolder::create(folder)?;
    let json = serde_json::json!({
        "model": model,
        "precision": precision,
        "data": data,
        "count": dialogues.len(),
        "runs": runs,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::settings(e.to_string()))?;
    write_atomically(&folder.join("report.json"), text.as_bytes())?;
    let bars = rouge_bars_svg(runs);
    let distribution = rouge_l_distribution_svg(runs);
    let curve = training_log.map(loss_curve_svg);
    let mut plots = vec![("rouge", &bars), ("rougeL_distribution", &distribution)];
    if let Some(curve) = &curve {
        plots.push(("loss_curve", curve));
    }
    for (name, svg) in plots {
        write_atomically(&folder.join(format!("{name}.svg")), svg.as_bytes())?;
        write_atomically(&folder.join(format!("{name}.png")), &png(svg)?)?;
    }
    let mut figures = format!("<h2>ROUGE</h2>{bars}<h2>Per-example ROUGE-L</h2>{distribution}");
    if let Some(curve) = &curve {
        let _ = write!(figures, "<h2>Training loss</h2>{curve}");
    }
    let html = html_page(model, precision, data, dialogues, runs, &figures);
    write_atomically(&folder.join("report.html"), html.as_bytes())?;
    made.keep();
    Ok(())
}

/// Rasterizes one of our SVG plots at twice its size, with the system's sans-serif font.
fn png(svg: &str) -> Result<Vec<u8>> {
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| Error::settings(format!("cannot draw the plot: {e}")))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(2.0)
        .ok_or_else(|| Error::settings("cannot size the plot"))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::settings("cannot allocate the plot"))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(2.0, 2.0),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| Error::settings(format!("cannot encode the plot: {e}")))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(run: usize) -> &'static str {
    COLORS[run % COLORS.len()]
}

/// Grouped bars: one group per ROUGE type, one bar per run, whiskers for the 95% interval.
fn rouge_bars_svg(runs: &[Run]) -> String {
    let (width, height, left, bottom, top) = (720.0, 360.0, 50.0, 40.0, 34.0);
    let plot_height = height - bottom - top;
    let max = runs
        .iter()
        .flat_map(|r| r.rouge_ci95.named().into_iter().map(|(_, ci)| ci[1]))
        .fold(0.1f64, f64::max);
    let max = (max * 10.0).ceil() / 10.0;
    let y = |v: f64| top + plot_height * (1.0 - v / max);
    let group_width = (width - left - 20.0) / TYPES.len() as f64;
    let bar_width = group_width * 0.8 / runs.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif" font-size="12">"#
    );
    svg.push_str(&format!(
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    ));
    for tick in 0..=((max * 10.0).round() as usize) {
        let value = tick as f64 / 10.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" text-anchor="end">{value:.1}</text>"##,
            width - 20.0,
            left - 6.0,
            y(value) + 4.0,
            y = y(value)
        );
    }
    for (group, name) in TYPES.iter().enumerate() {
        let x0 = left + group as f64 * group_width + group_width * 0.1;
        for (index, run) in runs.iter().enumerate() {
            let (value, ci) = (run.rouge.named()[group].1, run.rouge_ci95.named()[group].1);
            let x = x0 + index as f64 * bar_width;
            let center = x + bar_width * 0.45;
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {value:.4} (95% {:.4}-{:.4})</title></rect><line x1="{center:.1}" x2="{center:.1}" y1="{:.1}" y2="{:.1}" stroke="#222" stroke-width="1.5"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#222"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                y(value),
                bar_width * 0.9,
                y(0.0) - y(value),
                color(index),
                escape(&run.label),
                ci[0],
                ci[1],
                y(ci[0]),
                y(ci[1]),
                center - 4.0,
                center + 4.0,
                y(ci[0]),
                y(ci[0]),
                center - 4.0,
                center + 4.0,
                y(ci[1]),
                y(ci[1]),
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{name}</text>"#,
            x0 + group_width * 0.4,
            height - bottom + 18.0
        );
    }
    legend(&mut svg, runs, left);
    svg.push_str("</svg>\n");
    svg
}

/// One row of run colours and names above the plot.
fn legend(svg: &mut String, runs: &[Run], left: f64) {
    let mut x = left;
    for (index, run) in runs.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="6" width="10" height="10" fill="{}"/><text x="{:.1}" y="15">{}</text>"#,
            color(index),
            x + 15.0,
            escape(&run.label)
        );
        x += 30.0 + 7.0 * run.label.chars().count() as f64;
    }
}

/// Per-run histograms of per-example ROUGE-L F-measure in ten bins over [0, 1], as outlines.
fn rouge_l_distribution_svg(runs: &[Run]) -> String {
    let (width, height, left, bottom, top) = (720.0, 320.0, 50.0, 40.0, 34.0);
    let bins = 10;
    let counts: Vec<Vec<usize>> = runs
        .iter()
        .map(|run| {
            let mut counts = vec![0; bins];
            for example in &run.examples {
                counts[((example.rouge.rouge_l * bins as f64) as usize).min(bins - 1)] += 1;
            }
            counts
        })
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let plot_width = width - left - 20.0;
    let plot_height = height - bottom - top;
    let x = |bin: f64| left + plot_width * bin / bins as f64;
    let y = |count: f64| top + plot_height * (1.0 - count / max);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif" font-size="12"><rect width="{width}" height="{height}" fill="white"/>"#
    );
    for bin in 0..=bins {
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#e3e6ea"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{:.1}</text>"##,
            height - bottom,
            height - bottom + 16.0,
            bin as f64 / bins as f64,
            x = x(bin as f64)
        );
    }
    let step = (max / 5.0).ceil().max(1.0);
    let mut tick = 0.0;
    while tick <= max {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"#,
            left - 6.0,
            y(tick) + 4.0
        );
        tick += step;
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">per-example ROUGE-L F1</text>"#,
        left + plot_width / 2.0,
        height - 6.0
    );
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">examples</text>"#,
        top + plot_height / 2.0,
        top + plot_height / 2.0
    );
    for (index, counts) in counts.iter().enumerate() {
        let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
        for (bin, &count) in counts.iter().enumerate() {
            let _ = write!(
                points,
                " {:.1},{:.1} {:.1},{:.1}",
                x(bin as f64),
                y(count as f64),
                x(bin as f64 + 1.0),
                y(count as f64)
            );
        }
        let _ = write!(points, " {:.1},{:.1}", x(bins as f64), y(0.0));
        let _ = write!(
            svg,
            r#"<polyline points="{points}" fill="{}" fill-opacity="0.12" stroke="{}" stroke-width="2"/>"#,
            color(index),
            color(index)
        );
    }
    legend(&mut svg, runs, left);
    svg.push_str("</svg>\n");
    svg
}

/// Training loss (line) and validation loss (dots) against the step.
fn loss_curve_svg(points: &[LogPoint]) -> String {
    let (width, height, left, bottom, top) = (720.0, 320.0, 56.0, 40.0, 34.0);
    let values = points
        .iter()
        .flat_map(|p| [p.loss, p.validation_loss])
        .flatten();
    let max_loss = values.fold(0.0f64, f64::max).max(1e-9) * 1.05;
    let max_step = points.iter().map(|p| p.step).fold(1.0f64, f64::max);
    let x = |step: f64| left + (width - left - 20.0) * step / max_step;
    let y = |loss: f64| top + (height - bottom - top) * (1.0 - loss / max_loss);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif" font-size="12"><rect width="{width}" height="{height}" fill="white"/>"#
    );
    for i in 0..=4 {
        let loss = max_loss * i as f64 / 4.0;
        let step = max_step * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#e3e6ea"/><text x="{:.1}" y="{:.1}" text-anchor="end">{loss:.2}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            width - 20.0,
            y(loss),
            y(loss),
            left - 6.0,
            y(loss) + 4.0,
            x(step),
            height - bottom + 16.0,
            if step.fract() == 0.0 {
                format!("{step:.0}")
            } else {
                format!("{step:.1}")
            }
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">step</text>"#,
        (left + width) / 2.0,
        height - 6.0
    );
    let line: Vec<String> = points
        .iter()
        .filter_map(|p| p.loss.map(|l| format!("{:.1},{:.1}", x(p.step), y(l))))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
        line.join(" "),
        color(1)
    );
    for point in points {
        if let Some(loss) = point.validation_loss {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/>"#,
                x(point.step),
                y(loss),
                color(2)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<rect x="{left}" y="6" width="10" height="10" fill="{}"/><text x="{:.1}" y="15">training loss</text><circle cx="{:.1}" cy="11" r="4" fill="{}"/><text x="{:.1}" y="15">validation loss</text></svg>"#,
        color(1),
        left + 15.0,
        left + 125.0,
        color(2),
        left + 135.0
    );
    svg.push('\n');
    svg
}

fn html_page(
    model: &str,
    precision: Precision,
    data: &str,
    dialogues: &[Dialogue],
    runs: &[Run],
    figures: &str,
) -> String {
    let mut html = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Dialora evaluation</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#1d2430}table{border-collapse:collapse;margin:12px 0}
td,th{border:1px solid #d6dae0;padding:6px 8px;vertical-align:top;text-align:left}th{background:#f3f5f8;cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums}details summary{cursor:pointer;color:#2f6fde}
.dialogue{white-space:pre-wrap;max-width:420px}.better{color:#2a9d5c}.worse{color:#c0392b}</style></head><body>"#,
    );
    let _ = write!(
        html,
        "<h1>Evaluation</h1><p>Model <b>{}</b> (weights in {}) on <b>{}</b>, {} dialogues.</p>",
        escape(model),
        precision.name(),
        escape(data),
        dialogues.len()
    );
    html.push_str("<table><tr><th>run</th><th>loss</th>");
    for name in TYPES {
        let _ = write!(html, "<th>{name} (95% interval)</th>");
    }
    html.push_str("</tr>");
    for run in runs {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=num>{:.4}</td>",
            escape(&run.label),
            run.loss
        );
        for ((_, value), (_, ci)) in run.rouge.named().iter().zip(run.rouge_ci95.named()) {
            let _ = write!(
                html,
                "<td class=num>{value:.4} ({:.4}–{:.4})</td>",
                ci[0], ci[1]
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html.push_str(figures);
    html.push_str("<h2>Examples</h2><p>Click a column to sort; ROUGE-L F1 after each summary.</p><table id=examples><thead><tr><th>id</th><th>dialogue</th><th>reference</th>");
    for run in runs {
        let _ = write!(html, "<th>{}</th>", escape(&run.label));
    }
    let best_adapter = runs.len() > 1;
    if best_adapter {
        html.push_str("<th>improvement</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for (index, dialogue) in dialogues.iter().enumerate() {
        let baseline = &runs[0].examples[index];
        let _ = write!(
            html,
            "<tr><td>{}</td><td><details><summary>show</summary><div class=dialogue>{}</div></details></td><td>{}</td>",
            escape(
                &baseline
                    .id
                    .as_str()
                    .map_or_else(|| baseline.id.to_string(), str::to_string)
            ),
            escape(&dialogue.dialogue),
            escape(&baseline.reference)
        );
        for run in runs {
            let example = &run.examples[index];
            let _ = write!(
                html,
                "<td data-sort=\"{:.6}\">{} <small>({:.3})</small></td>",
                example.rouge.rouge_l,
                escape(&example.summary),
                example.rouge.rouge_l
            );
        }
        if best_adapter {
            let best = runs[1..]
                .iter()
                .map(|r| r.examples[index].rouge.rouge_l)
                .fold(f64::MIN, f64::max);
            let delta = best - baseline.rouge.rouge_l;
            let class = if delta > 0.0 {
                "better"
            } else if delta < 0.0 {
                "worse"
            } else {
                ""
            };
            let _ = write!(
                html,
                "<td class=\"num {class}\" data-sort=\"{delta:.6}\">{delta:+.3}</td>"
            );
        }
        html.push_str("</tr>");
    }
    html.push_str(
        r#"</tbody></table><script>
document.querySelectorAll('#examples th').forEach((th, column) => {
  let descending = true;
  th.addEventListener('click', () => {
    const body = document.querySelector('#examples tbody');
    const key = row => { const cell = row.children[column]; const v = cell.dataset.sort; return v === undefined ? cell.textContent : parseFloat(v); };
    const rows = Array.from(body.rows).sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1); });
    descending = !descending;
    rows.forEach(row => body.appendChild(row));
  });
});
</script></body></html>
"#,
    );
    html
}
