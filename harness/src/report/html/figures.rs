//! The drawings of the HTML report, as inline SVG: latency distributions
//! with ratio intervals (the timing check) and successes per trial (the
//! race check).

use std::fmt::Write as _;

use super::text;
use crate::scenario::Figure;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub(super) fn figure_svg(figure: &Figure) -> String {
    match figure {
        Figure::Latency {
            reference,
            threshold,
            classes,
            ratios,
        } => latency_svg(reference, threshold.0, classes, ratios),
        Figure::Trials {
            what,
            successes,
            submitted,
            expected,
        } => trials_svg(what, successes, *submitted, *expected),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

fn latency_svg(
    reference: &str,
    threshold: f64,
    classes: &[crate::scenario::LatencyClass],
    ratios: &[crate::scenario::RatioEstimate],
) -> String {
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
    let mut s = format!(
        "<figure><figcaption>Response time of the forgot-password request per class of identifier (box: quartiles, line: median, whiskers: 5th–95th percentile, dots: samples)</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"latency distributions\">"
    );
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let xx = x(v);
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" class=\"grid\"/><text x=\"{xx:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{v:.1} ms</text>",
            height - 30.0,
            height - 14.0
        );
    }
    for (i, (class, v)) in classes.iter().zip(&sorted).enumerate() {
        let cy = top + row * i as f64 + row / 2.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{} (n={})</text>",
            left - 8.0,
            cy + 4.0,
            text(&class.name),
            v.len()
        );
        if v.is_empty() {
            continue;
        }
        let (p5, q1, med, q3, p95) = (
            quantile(v, 0.05),
            quantile(v, 0.25),
            quantile(v, 0.5),
            quantile(v, 0.75),
            quantile(v, 0.95),
        );
        for (k, sample) in v.iter().enumerate() {
            // Deterministic jitter.
            let jitter = ((k * 7919) % 17) as f64 - 8.0;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" class=\"dot\"/>",
                x(*sample),
                cy + jitter
            );
        }
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" class=\"whisker\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"box c{}\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"median\"/>\
             <title>{}: median {med:.2} ms, quartiles {q1:.2}–{q3:.2} ms</title>",
            x(p5),
            x(p95),
            x(q1),
            cy - 10.0,
            (x(q3) - x(q1)).max(1.0),
            20.0,
            i % 4,
            x(med),
            cy - 12.0,
            x(med),
            cy + 12.0,
            text(&class.name),
        );
    }
    s.push_str("</svg>");
    if !ratios.is_empty() {
        s.push_str(&ratio_svg(reference, threshold, ratios));
    }
    s.push_str("</figure>");
    s
}

fn ratio_svg(reference: &str, threshold: f64, ratios: &[crate::scenario::RatioEstimate]) -> String {
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
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"ratios of medians\">\
         <text x=\"{left}\" y=\"14\" class=\"label\">Ratio of medians to {} identifiers, 95% interval (log scale); shaded: within 1/{threshold}..{threshold}</text>\
         <rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" class=\"band\"/>\
         <line x1=\"{:.1}\" y1=\"{top}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"one\"/>",
        text(reference),
        x(1.0 / threshold),
        x(threshold) - x(1.0 / threshold),
        row * ratios.len() as f64,
        x(1.0),
        x(1.0),
        top + row * ratios.len() as f64,
    );
    for v in [1.0 / threshold, 1.0, threshold] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{v:.2}</text>",
            x(v),
            height - 14.0
        );
    }
    for (i, r) in ratios.iter().enumerate() {
        let cy = top + row * i as f64 + row / 2.0;
        let class = match r.decision.as_str() {
            "differs" => "bad",
            "same" => "good",
            _ => "maybe",
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{}</text>\
             <line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" class=\"ci {class}\"/>\
             <circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"4\" class=\"pt {class}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{:.2} ({:.2}–{:.2}) {}</text>",
            left - 8.0,
            cy + 4.0,
            text(&r.name),
            x(r.low.0),
            x(r.high.0),
            x(r.ratio.0),
            w - right + 10.0,
            cy + 4.0,
            r.ratio.0,
            r.low.0,
            r.high.0,
            text(&r.decision),
        );
    }
    s.push_str("</svg>");
    s
}

fn trials_svg(what: &str, successes: &[usize], submitted: usize, expected: usize) -> String {
    let (w, left) = (720.0, 50.0);
    let top = 10.0;
    let plot_h = 120.0;
    let max = successes.iter().copied().max().unwrap_or(0).max(expected).max(1) as f64;
    let n = successes.len().max(1) as f64;
    let bar_w = ((w - left - 20.0) / n).min(60.0);
    let y = |v: f64| top + plot_h - v / max * plot_h;
    let height = top + plot_h + 36.0;
    let mut s = format!(
        "<figure><figcaption>Per trial: how many of {submitted} {} (bars); a correct app gives exactly {expected} per trial (dashed line)</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"successes per trial\">",
        text(what),
    );
    for (i, &count) in successes.iter().enumerate() {
        let bx = left + bar_w * i as f64 + 4.0;
        let class = if count == expected { "good" } else { "bad" };
        let _ = write!(
            s,
            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar {class}\"><title>trial {}: {count}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"middle\">{count}</text>",
            y(count as f64),
            bar_w - 8.0,
            (top + plot_h - y(count as f64)).max(0.0),
            i + 1,
            bx + (bar_w - 8.0) / 2.0,
            top + plot_h + 14.0,
            i + 1,
            bx + (bar_w - 8.0) / 2.0,
            (y(count as f64) - 3.0).max(9.0),
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"expected\"/>\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"axis\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\">trial</text></svg></figure>",
        y(expected as f64),
        w - 10.0,
        y(expected as f64),
        top + plot_h,
        w - 10.0,
        top + plot_h,
        left - 40.0,
        top + plot_h + 14.0,
    );
    s
}
