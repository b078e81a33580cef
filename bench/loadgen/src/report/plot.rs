//! The SVG plot of fan-out latency (p50 dashed, p99 solid) against followers, one colour
//! per system measured at several sizes. Written as SVG text directly: a few lines and labels, laid out by whatever
//! shows the page (a plotting crate would need a font file here to measure its labels).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::results::{Measured, Outcome};

const W: f64 = 860.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The plot, from every single-node fan-out outcome.
pub(super) fn fan_out(outcomes: &[Outcome]) -> String {
    // system label -> followers -> (p50, p99)
    let mut series: BTreeMap<String, BTreeMap<usize, (f64, f64)>> = BTreeMap::new();
    for o in outcomes {
        if let Measured::FanOut(f) = &o.result {
            series
                .entry(super::label(o))
                .or_default()
                .insert(f.followers, (f.latency.p50_ms, f.latency.p99_ms));
        }
    }
    // Systems measured at one size only (automerge-repo at seconds a post, the real
    // engines) are in the table; drawn, they would flatten the lines that matter.
    if series.values().any(|points| points.len() > 1) {
        series.retain(|_, points| points.len() > 1);
    }
    let max_x = series
        .values()
        .flat_map(|s| s.keys())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_y = series
        .values()
        .flat_map(|s| s.values().map(|(_, p99)| *p99))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |v: f64| LEFT + v / max_x * (W - LEFT - RIGHT);
    let y = |v: f64| H - BOTTOM - v / max_y * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    // Axes and grid.
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for i in 0..=5 {
        let v = max_y * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
    }
    let xs: Vec<usize> = {
        let mut v: Vec<usize> = series.values().flat_map(|s| s.keys().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for f in &xs {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{f}</text>"#,
            x(*f as f64),
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">online followers</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency, ms (p99 solid, p50 dashed)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0,
        H / 2.0,
        H / 2.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (which, dash) in [(1, ""), (0, r#" stroke-dasharray="5,4""#)] {
            let path: Vec<String> = points
                .iter()
                .map(|(f, (p50, p99))| {
                    let v = if which == 1 { *p99 } else { *p50 };
                    format!("{:.1},{:.1}", x(*f as f64), y(v))
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
        }
        for (f, (_, p99)) in points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(*f as f64),
                y(*p99)
            );
        }
        let ly = TOP + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly:.1}" x2="{}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{:.1}">{}</text>"#,
            W - RIGHT + 12.0,
            W - RIGHT + 32.0,
            W - RIGHT + 38.0,
            ly + 4.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
