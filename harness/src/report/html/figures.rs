//! The drawings of the HTML report, as inline SVG: latency distributions
//! with ratio intervals (the timing check) and successes per trial (the
//! race check).

use minijinja::{Value, context};

use super::render;
use crate::scenario::Figure;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// One decimal, as the drawing's coordinates are written.
fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// Two decimals (ratios, milliseconds).
fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// The figure as inline SVG, rendered by the report's template.
pub(super) fn figure_svg(figure: &Figure) -> String {
    let (kind, value) = match figure {
        Figure::Latency {
            reference,
            threshold,
            classes,
            ratios,
        } => ("latency", latency(reference, threshold.0, classes, ratios)),
        Figure::Trials {
            what,
            successes,
            submitted,
            expected,
        } => ("trials", trials(what, successes, *submitted, *expected)),
        #[allow(unreachable_patterns)]
        _ => return String::new(),
    };
    render("figures.html", context! { kind, figure => value })
}

fn latency(
    reference: &str,
    threshold: f64,
    classes: &[crate::scenario::LatencyClass],
    ratios: &[crate::scenario::RatioEstimate],
) -> Value {
    let (w, left, right) = (720.0, 130.0, 20.0);
    let row = 40.0;
    let plot_w = w - left - right;
    let sorted: Vec<Vec<f64>> = classes
        .iter()
        .map(|c| {
            let mut v: Vec<f64> = c
                .samples_ms
                .iter()
                .map(|n| n.0)
                .filter(|x| x.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    // Scale to the 99th percentile of everything, so one outlier does not
    // squash the boxes; samples beyond are drawn at the edge.
    let mut all: Vec<f64> = sorted.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let max = (quantile(&all, 0.99) * 1.1).max(0.001);
    let x = |v: f64| left + (v.min(max) / max) * plot_w;
    let top = 30.0;
    let height = top + row * classes.len() as f64 + 40.0;
    let grid: Vec<Value> = (0..=5)
        .map(|i| {
            let v = max * f64::from(i) / 5.0;
            context! { x => f1(x(v)), y2 => f1(height - 30.0), ty => f1(height - 14.0), label => f1(v) }
        })
        .collect();
    let rows: Vec<Value> = classes
        .iter()
        .zip(&sorted)
        .enumerate()
        .map(|(i, (class, v))| {
            let cy = top + row * i as f64 + row / 2.0;
            let boxed = (!v.is_empty()).then(|| {
                let (p5, q1, med, q3, p95) = (
                    quantile(v, 0.05),
                    quantile(v, 0.25),
                    quantile(v, 0.5),
                    quantile(v, 0.75),
                    quantile(v, 0.95),
                );
                context! {
                    cy => f1(cy),
                    p5 => f1(x(p5)),
                    p95 => f1(x(p95)),
                    q1 => f1(x(q1)),
                    top => f1(cy - 10.0),
                    width => f1((x(q3) - x(q1)).max(1.0)),
                    colour => i % 4,
                    med => f1(x(med)),
                    y1 => f1(cy - 12.0),
                    y2 => f1(cy + 12.0),
                    median_ms => f2(med),
                    q1_ms => f2(q1),
                    q3_ms => f2(q3),
                }
            });
            // Deterministic jitter.
            let dots: Vec<(String, String)> = v
                .iter()
                .enumerate()
                .map(|(k, sample)| (f1(x(*sample)), f1(cy + ((k * 7919) % 17) as f64 - 8.0)))
                .collect();
            context! {
                lx => f1(left - 8.0),
                ly => f1(cy + 4.0),
                name => class.name,
                n => v.len(),
                dots,
                stats => boxed,
            }
        })
        .collect();
    context! {
        w => w.to_string(),
        height => height.to_string(),
        top => top.to_string(),
        grid,
        classes => rows,
        ratios => (!ratios.is_empty()).then(|| ratio(reference, threshold, ratios)),
    }
}

fn ratio(reference: &str, threshold: f64, ratios: &[crate::scenario::RatioEstimate]) -> Value {
    let (w, left, right) = (720.0, 130.0, 230.0);
    let row = 30.0;
    let plot_w = w - left - right;
    let threshold = threshold.max(1.0001);
    let mut lo = 1.0 / threshold / 1.25;
    let mut hi = threshold * 1.25;
    for r in ratios {
        for v in [r.low.0, r.high.0, r.ratio.0] {
            if v.is_finite() && v > 0.0 {
                lo = lo.min(v / 1.1);
                hi = hi.max(v * 1.1);
            }
        }
    }
    let (llo, lhi) = (lo.ln(), hi.ln());
    let x = |v: f64| left + ((v.max(lo).min(hi).ln() - llo) / (lhi - llo)) * plot_w;
    let top = 24.0;
    let height = top + row * ratios.len() as f64 + 34.0;
    let ticks: Vec<Value> = [1.0 / threshold, 1.0, threshold]
        .iter()
        .map(|v| context! { x => f1(x(*v)), label => f2(*v) })
        .collect();
    let rows: Vec<Value> = ratios
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cy = top + row * i as f64 + row / 2.0;
            let class = match r.decision.as_str() {
                "differs" => "bad",
                "same" => "good",
                _ => "maybe",
            };
            context! {
                cy => f1(cy),
                ly => f1(cy + 4.0),
                name => r.name,
                low => f1(x(r.low.0)),
                high => f1(x(r.high.0)),
                point => f1(x(r.ratio.0)),
                class,
                ratio => f2(r.ratio.0),
                low_v => f2(r.low.0),
                high_v => f2(r.high.0),
                decision => r.decision,
            }
        })
        .collect();
    context! {
        w => w.to_string(),
        height => height.to_string(),
        left => left.to_string(),
        top => top.to_string(),
        reference,
        threshold => threshold.to_string(),
        band_x => f1(x(1.0 / threshold)),
        band_w => f1(x(threshold) - x(1.0 / threshold)),
        band_h => f1(row * ratios.len() as f64),
        one => f1(x(1.0)),
        one_y2 => f1(top + row * ratios.len() as f64),
        ticks,
        tick_y => f1(height - 14.0),
        rows,
        label_x => f1(left - 8.0),
        value_x => f1(w - right + 10.0),
    }
}

fn trials(what: &str, successes: &[usize], submitted: usize, expected: usize) -> Value {
    let (w, left) = (720.0, 50.0);
    let top = 10.0;
    let plot_h = 120.0;
    let max = successes.iter().copied().max().unwrap_or(0).max(expected).max(1) as f64;
    let n = successes.len().max(1) as f64;
    let bar_w = ((w - left - 20.0) / n).min(60.0);
    let y = |v: f64| top + plot_h - v / max * plot_h;
    let height = top + plot_h + 36.0;
    let bars: Vec<Value> = successes
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let bx = left + bar_w * i as f64 + 4.0;
            context! {
                x => f1(bx),
                y => f1(y(count as f64)),
                h => f1((top + plot_h - y(count as f64)).max(0.0)),
                class => if count == expected { "good" } else { "bad" },
                count,
                mid => f1(bx + (bar_w - 8.0) / 2.0),
                label_y => f1((y(count as f64) - 3.0).max(9.0)),
            }
        })
        .collect();
    context! {
        w => w.to_string(),
        height => height.to_string(),
        submitted,
        what,
        expected,
        bars,
        bar_w => f1(bar_w - 8.0),
        tick_y => f1(top + plot_h + 14.0),
        left => left.to_string(),
        right => f1(w - 10.0),
        expected_y => f1(y(expected as f64)),
        axis_y => f1(top + plot_h),
        trial_x => f1(left - 40.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{LatencyClass, Num, RatioEstimate};

    #[test]
    fn figures_draw_every_sample_and_escape_their_labels() {
        let latency = Figure::Latency {
            reference: "unknown".into(),
            threshold: Num(1.5),
            classes: vec![
                LatencyClass {
                    name: "<b>known</b>".into(),
                    samples_ms: (0..7).map(|i| Num(1.0 + f64::from(i))).collect(),
                },
                LatencyClass {
                    name: "empty".into(),
                    samples_ms: vec![],
                },
            ],
            ratios: vec![RatioEstimate {
                name: "known".into(),
                ratio: Num(2.5),
                low: Num(2.1),
                high: Num(3.3),
                decision: "differs".into(),
            }],
        };
        let svg = figure_svg(&latency);
        assert!(
            svg.starts_with("<figure><figcaption>Response time") && svg.ends_with("</svg></figure>"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"dot\"").count(), 7);
        assert_eq!(
            svg.matches("class=\"box c").count(),
            1,
            "no box for a class without samples"
        );
        assert!(
            svg.contains("&lt;b&gt;known&lt;&#x2f;b&gt; (n=7)") && !svg.contains("<b>"),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"pt bad\"") && svg.contains("2.50 (2.10–3.30) differs"),
            "{svg}"
        );
        let trials = Figure::Trials {
            what: "submits succeeded".into(),
            successes: vec![1, 2, 1],
            submitted: 10,
            expected: 1,
        };
        let svg = figure_svg(&trials);
        assert_eq!(svg.matches("class=\"bar good\"").count(), 2);
        assert_eq!(svg.matches("class=\"bar bad\"").count(), 1);
        assert!(svg.contains("<title>trial 2: 2</title>"), "{svg}");
    }
}
