//! SVG charts from a run's results: latency CDFs per loss level, p99 against
//! loss, throughput bars and wire bytes per message.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::results::{LatencyResult, RunResults};

const TERN: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const MOSQ: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const TERN_RTT: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

const MOSQ_RTT: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

fn color(peer: &str) -> RGBColor {
    match peer {
        "tern" => TERN,
        "mosquitto" => MOSQ,
        "mosquitto-rtt" => MOSQ_RTT,
        _ => TERN_RTT,
    }
}

fn label(r: &LatencyResult) -> String {
    match r.peer.as_str() {
        "tern" => "Tern (raw UDP)".into(),
        "mosquitto" => "Mosquitto (MQTT QoS 1, TCP)".into(),
        "tern-rtt" => format!("Tern, +{} ms RTT", r.added_rtt_ms),
        "mosquitto-rtt" => format!("Mosquitto, +{} ms RTT", r.added_rtt_ms),
        "tern-proxy" => format!(
            "Tern, +{} ms RTT via tern-proxy (Tern only)",
            r.added_rtt_ms
        ),
        p => p.to_string(),
    }
}

fn e<T: std::fmt::Debug>(x: T) -> anyhow::Error {
    anyhow!("plotting: {x:?}")
}

/// A blank 760 × 460 SVG canvas at `path`.
fn canvas(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    Ok(root)
}

/// A chart on `root` with this caption and the margins every chart uses.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: impl AsRef<str>,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55);
    b
}

/// Draws the legend at `position` and writes the file.
fn finish<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Writes every chart into `out`; returns the file names.
pub fn render(
    res: &RunResults,
    samples: &[(String, f64, Vec<u64>)],
    out: &Path,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(out)?;
    let mut files = Vec::new();
    let mut losses: Vec<f64> = res.latency.iter().map(|r| r.loss).collect();
    losses.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    losses.dedup();
    for &loss in &losses {
        let name = format!("latency-cdf-loss-{:02}.svg", (loss * 100.0).round() as u32);
        cdf_chart(res, samples, loss, &out.join(&name))?;
        files.push(name);
    }
    if !res.latency.is_empty() {
        p99_chart(res, &out.join("latency-p99-vs-loss.svg"))?;
        files.push("latency-p99-vs-loss.svg".into());
    }
    if !res.throughput.is_empty() {
        throughput_chart(res, &out.join("throughput.svg"))?;
        files.push("throughput.svg".into());
    }
    Ok(files)
}

fn cdf_chart(
    res: &RunResults,
    samples: &[(String, f64, Vec<u64>)],
    loss: f64,
    path: &Path,
) -> Result<()> {
    let root = canvas(path)?;
    let runs: Vec<&LatencyResult> = res.latency.iter().filter(|r| r.loss == loss).collect();
    let max_ms = runs
        .iter()
        .map(|r| r.max_ms)
        .filter(|v| v.is_finite())
        .fold(10.0f64, f64::max)
        * 1.3;
    let mut chart = builder(
        &root,
        format!(
            "Delivery latency CDF, {:.0}% random loss each way (netns + iptables)",
            loss * 100.0
        ),
    )
    .build_cartesian_2d((0.05f64..max_ms).log_scale(), 0f64..1.0f64)
    .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale): scheduled send -> receiving app")
        .y_desc("fraction of messages sent")
        .x_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()
        .map_err(e)?;
    for r in &runs {
        let Some((_, _, s)) = samples
            .iter()
            .find(|(p, l, _)| *p == r.peer && *l == r.loss)
        else {
            continue;
        };
        let n = r.sent.max(1) as f64;
        let c = color(&r.peer);
        // Fraction of messages SENT, so that undelivered ones keep the
        // curve below 1.
        let step = (s.len() / 2000).max(1);
        let pts: Vec<(f64, f64)> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == s.len())
            .map(|(i, &v)| (((v as f64) / 1000.0).max(0.05), (i + 1) as f64 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(e)?
            .label(format!(
                "{}: p50 {:.1} p99 {:.1} p99.9 {:.1} ms{}",
                label(r),
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                if r.delivered < r.sent {
                    format!(", {} undelivered", r.sent - r.delivered)
                } else {
                    String::new()
                }
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

fn p99_chart(res: &RunResults, path: &Path) -> Result<()> {
    let root = canvas(path)?;
    let max = res
        .latency
        .iter()
        .map(|r| r.p99_ms)
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.5;
    let max_loss = res.latency.iter().map(|r| r.loss).fold(0.0f64, f64::max) * 100.0 + 2.0;
    let mut chart = builder(&root, "p99 delivery latency against random loss (each way)")
        .build_cartesian_2d(-1f64..max_loss, (0.1f64..max).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("loss each way, %")
        .y_desc("p99 latency, ms (log scale)")
        .draw()
        .map_err(e)?;
    let mut peers: Vec<(String, u64)> = res
        .latency
        .iter()
        .map(|r| (r.peer.clone(), r.added_rtt_ms))
        .collect();
    peers.sort();
    peers.dedup();
    for (peer, rtt) in peers {
        let mut pts: Vec<(f64, f64)> = res
            .latency
            .iter()
            .filter(|r| r.peer == peer && r.p99_ms.is_finite())
            .map(|r| (r.loss * 100.0, r.p99_ms.max(0.1)))
            .collect();
        pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let c = color(&peer);
        let lab = res
            .latency
            .iter()
            .find(|r| r.peer == peer)
            .map(label)
            .unwrap_or_else(|| format!("{peer} {rtt}"));
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(lab)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperLeft)
}

fn throughput_chart(res: &RunResults, path: &Path) -> Result<()> {
    let root = canvas(path)?;
    let workloads = ["online", "offline-store", "offline-drain"];
    let names = [
        "online (both ACKs + delivery)",
        "offline store (ACK = stored)",
        "offline drain",
    ];
    let max = res.throughput.iter().map(|t| t.rate).fold(1.0f64, f64::max) * 1.25 / 1000.0;
    let mut chart = builder(&root, "Throughput, same run (messages/s, thousands)")
        .build_cartesian_2d(0f64..3f64, (-max * 0.08)..max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("k messages/s")
        .draw()
        .map_err(e)?;
    // Group names under the zero line (the mesh would put labels on integers).
    for (i, n) in names.iter().enumerate() {
        chart
            .draw_series(std::iter::once(Text::new(
                n.to_string(),
                (i as f64 + 0.12, -max * 0.03),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(e)?;
    }
    for (pi, peer) in ["tern", "mosquitto"].iter().enumerate() {
        let c = color(peer);
        let bars: Vec<(usize, f64)> = workloads
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                res.throughput
                    .iter()
                    .find(|t| t.peer == *peer && t.workload == *w)
                    .map(|t| (i, t.rate / 1000.0))
            })
            .collect();
        let x0 = |i: usize| i as f64 + 0.15 + pi as f64 * 0.35;
        chart
            .draw_series(
                bars.iter()
                    .map(|&(i, v)| Rectangle::new([(x0(i), 0.0), (x0(i) + 0.33, v)], c.filled())),
            )
            .map_err(e)?
            .label(if *peer == "tern" {
                "Tern (raw UDP, fsync before ACK)"
            } else {
                "Mosquitto (QoS 1, persistence on)"
            })
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        chart
            .draw_series(bars.iter().map(|&(i, v)| {
                Text::new(
                    format!("{v:.1}k"),
                    (x0(i) + 0.03, v + max * 0.02),
                    ("sans-serif", 13).into_font(),
                )
            }))
            .map_err(e)?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperRight)
}
