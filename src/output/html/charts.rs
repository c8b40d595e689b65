//! Small SVG charts for the HTML pages, from plain data: a squarified
//! [`Treemap`] of parts of a whole per item, a horizontal [`BarChart`] and a
//! grouped [`Histogram`]. Each is a value that renders itself as an inline
//! `<svg>` (an askama template under `templates/charts/`): embed it in a page
//! as `{{ chart|safe }}`. Every shape has a `<title>`, which browsers show on
//! hover, with the exact numbers; nothing needs JavaScript.

use askama::Template;

/// Fill colours of the parts of a treemap cell or the series of a histogram,
/// in order (colour-blind-safe: Okabe–Ito).
pub const PALETTE: [&str; 6] = [
    "#0072B2", "#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#D55E00",
];

/// A coordinate rounded to a tenth of a pixel (short SVG, no float noise).
fn px(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `label` cut to about `width` pixels of 11px text, with an ellipsis.
fn fit(label: &str, width: f64) -> String {
    let max = ((width - 6.0) / 6.6).floor().max(0.0) as usize;
    if label.chars().count() <= max {
        label.to_string()
    } else if max <= 1 {
        String::new()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// A legend entry: a name, its colour, and where it starts on the
/// legend's line.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    /// What the colour stands for.
    pub name: String,
    /// Its fill colour.
    pub fill: &'static str,
    /// Offset of its swatch from the start of the legend's line: after
    /// the entries before it, each as wide as its text can be.
    pub x: f64,
}

/// The widest a legend character is drawn (11 px sans-serif, with room for
/// wide fonts and capitals) and the gap after an entry: entries never run into
/// each other.
const LEGEND_CHAR: f64 = 8.5;
const LEGEND_GAP: f64 = 18.0 + 24.0;

/// A rectangle with its hover text.
#[derive(Debug, Clone)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Fill colour.
    pub fill: &'static str,
    /// Hover text.
    pub title: String,
}

/// One item of a treemap: a label and the sizes of its parts (one per
/// category of [`Treemap::new`]).
#[derive(Debug, Clone)]
pub struct TreemapItem {
    /// The item's name (e.g. a repository).
    pub label: String,
    /// Sizes of its parts, in category order.
    pub parts: Vec<u64>,
}

/// One cell of a treemap: the item's rectangle, split into its parts.
#[derive(Debug, Clone)]
pub struct TreemapCell {
    /// The whole cell (drawn as an outline, with the item's total as title).
    pub outline: Rect,
    /// Its parts, stacked along the cell's longer side.
    pub parts: Vec<Rect>,
    /// The label as it fits in the cell (empty when the cell is too small).
    pub label: String,
    /// Where the label goes.
    pub label_x: f64,
    /// Where the label's baseline is.
    pub label_y: f64,
}

/// A squarified treemap: each item's area is its total, split into parts.
#[derive(Debug, Clone, Template)]
#[template(path = "charts/treemap.svg", escape = "html")]
pub struct Treemap {
    /// What the chart shows (the SVG's accessible title).
    pub title: String,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// The cells, largest first.
    pub cells: Vec<TreemapCell>,
    /// The categories' colours.
    pub legend: Vec<LegendEntry>,
}

impl Treemap {
    /// Lays out `items` (parts named by `categories`) in a `width` ×
    /// `height` rectangle, the largest `max_items` on their own and the rest
    /// merged into one "other" cell; `fmt` writes a size for the hover text.
    /// Items whose parts are all zero are left out.
    pub fn new(
        title: &str,
        categories: &[&str],
        mut items: Vec<TreemapItem>,
        fmt: fn(u64) -> String,
        (width, height): (f64, f64),
        max_items: usize,
    ) -> Treemap {
        let total = |i: &TreemapItem| i.parts.iter().sum::<u64>();
        items.retain(|i| total(i) > 0);
        items.sort_by(|a, b| total(b).cmp(&total(a)).then_with(|| a.label.cmp(&b.label)));
        if items.len() > max_items.max(1) {
            let rest = items.split_off(max_items.max(1) - 1);
            let mut parts = vec![0; categories.len()];
            for i in &rest {
                for (p, v) in parts.iter_mut().zip(&i.parts) {
                    *p += v;
                }
            }
            items.push(TreemapItem {
                label: format!("{} others", rest.len()),
                parts,
            });
        }
        let values: Vec<f64> = items.iter().map(|i| total(i) as f64).collect();
        let rects = squarify(&values, (0.0, 0.0, width, height));
        let cells = items
            .iter()
            .zip(rects)
            .map(|(item, (x, y, w, h))| {
                let sum = total(item);
                let detail: Vec<String> = categories
                    .iter()
                    .zip(&item.parts)
                    .map(|(c, &v)| format!("{c}: {}", fmt(v)))
                    .collect();
                let title = format!("{}: {} ({})", item.label, fmt(sum), detail.join(", "));
                // Parts stacked along the longer side.
                let mut parts = Vec::new();
                let mut at = 0.0;
                for (k, (&v, c)) in item.parts.iter().zip(categories).enumerate() {
                    if v == 0 {
                        continue;
                    }
                    let f = v as f64 / sum as f64;
                    let r = if w >= h {
                        (x + at * w, y, f * w, h)
                    } else {
                        (x, y + at * h, w, f * h)
                    };
                    at += f;
                    parts.push(Rect {
                        x: px(r.0),
                        y: px(r.1),
                        w: px(r.2),
                        h: px(r.3),
                        fill: PALETTE[k % PALETTE.len()],
                        title: format!("{}: {c} {}", item.label, fmt(v)),
                    });
                }
                let label = if h >= 16.0 {
                    fit(&item.label, w)
                } else {
                    String::new()
                };
                TreemapCell {
                    outline: Rect {
                        x: px(x),
                        y: px(y),
                        w: px(w),
                        h: px(h),
                        fill: "none",
                        title,
                    },
                    parts,
                    label,
                    label_x: px(x + 4.0),
                    label_y: px(y + 13.0),
                }
            })
            .collect();
        Treemap {
            title: title.to_string(),
            width,
            height,
            cells,
            legend: legend(categories),
        }
    }

    /// True when there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

fn legend(names: &[&str]) -> Vec<LegendEntry> {
    let mut x = 0.0;
    names
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let e = LegendEntry {
                name: n.to_string(),
                fill: PALETTE[k % PALETTE.len()],
                x,
            };
            x += LEGEND_GAP + n.chars().count() as f64 * LEGEND_CHAR;
            e
        })
        .collect()
}

/// The squarified treemap layout (Bruls, Huizing, van Wijk): `values`
/// (sorted largest first, positive) as rectangles `(x, y, w, h)` filling
/// `area`, each with an area proportional to its value and an aspect ratio
/// close to 1.
pub fn squarify(values: &[f64], area: (f64, f64, f64, f64)) -> Vec<(f64, f64, f64, f64)> {
    let (mut x, mut y, mut w, mut h) = area;
    let sum: f64 = values.iter().sum();
    if values.is_empty() || sum <= 0.0 || w <= 0.0 || h <= 0.0 {
        return Vec::new();
    }
    let scale = w * h / sum;
    let v: Vec<f64> = values.iter().map(|&v| v * scale).collect();
    // The worst aspect ratio of a row laid along a side of length `side`.
    let worst = |row: &[f64], side: f64| {
        let s: f64 = row.iter().sum();
        let (mx, mn) = row
            .iter()
            .fold((f64::MIN, f64::MAX), |(a, b), &r| (a.max(r), b.min(r)));
        (side * side * mx / (s * s)).max(s * s / (side * side * mn))
    };
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let side = w.min(h);
        let mut end = i + 1;
        let mut best = worst(&v[i..end], side);
        while end < v.len() {
            let next = worst(&v[i..=end], side);
            if next > best {
                break;
            }
            best = next;
            end += 1;
        }
        // The last row takes what is left, so that rounding leaves no gap.
        if end == v.len() {
            lay_row(&v[i..end], &mut out, (x, y, w, h));
            break;
        }
        let s: f64 = v[i..end].iter().sum();
        if w >= h {
            let thick = s / h;
            lay_row(&v[i..end], &mut out, (x, y, thick, h));
            x += thick;
            w -= thick;
        } else {
            let thick = s / w;
            lay_row(&v[i..end], &mut out, (x, y, w, thick));
            y += thick;
            h -= thick;
        }
        i = end;
    }
    out
}

/// Splits the strip `(x, y, w, h)` among `row` along its longer side.
fn lay_row(row: &[f64], out: &mut Vec<(f64, f64, f64, f64)>, (x, y, w, h): (f64, f64, f64, f64)) {
    let s: f64 = row.iter().sum();
    let mut at = 0.0;
    for &r in row {
        let f = r / s;
        if h >= w {
            out.push((x, y + at * h, w, f * h));
        } else {
            out.push((x + at * w, y, f * w, h));
        }
        at += f;
    }
}

/// One bar of a [`BarChart`].
#[derive(Debug, Clone)]
pub struct Bar {
    /// The bar.
    pub rect: Rect,
    /// Its label as it fits left of the bar.
    pub label: String,
    /// The value, written right of the bar.
    pub value: String,
    /// Baseline of the label and value.
    pub text_y: f64,
}

/// Horizontal bars, largest first, one row each.
#[derive(Debug, Clone, Template)]
#[template(path = "charts/bars.svg", escape = "html")]
pub struct BarChart {
    /// What the chart shows.
    pub title: String,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// Where the bars start (labels are left of it).
    pub bar_x: f64,
    /// The bars.
    pub bars: Vec<Bar>,
    /// A last line saying how many items are not shown, if any.
    pub more: String,
    /// Baseline of `more`.
    pub more_y: f64,
}

impl BarChart {
    /// One bar per `(label, value)` with a value above zero, largest first,
    /// at most `max_bars` (a last line counts the others); `fmt` writes the
    /// values.
    pub fn new(
        title: &str,
        mut items: Vec<(String, u64)>,
        fmt: fn(u64) -> String,
        width: f64,
        max_bars: usize,
    ) -> BarChart {
        const ROW: f64 = 22.0;
        const LABEL_W: f64 = 260.0;
        const VALUE_W: f64 = 90.0;
        items.retain(|(_, v)| *v > 0);
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let hidden = items.len().saturating_sub(max_bars);
        items.truncate(max_bars);
        let max = items.first().map_or(1, |i| i.1.max(1)) as f64;
        let span = (width - LABEL_W - VALUE_W).max(10.0);
        let bars: Vec<Bar> = items
            .iter()
            .enumerate()
            .map(|(k, (label, v))| {
                let y = k as f64 * ROW;
                Bar {
                    rect: Rect {
                        x: LABEL_W,
                        y: px(y + 3.0),
                        w: px((*v as f64 / max * span).max(1.0)),
                        h: ROW - 6.0,
                        fill: PALETTE[2],
                        title: format!("{label}: {}", fmt(*v)),
                    },
                    label: fit(label, LABEL_W - 8.0),
                    value: fmt(*v),
                    text_y: px(y + 15.0),
                }
            })
            .collect();
        let more = if hidden > 0 {
            format!("… and {hidden} more")
        } else {
            String::new()
        };
        let rows = bars.len() + usize::from(hidden > 0);
        BarChart {
            title: title.to_string(),
            width,
            height: rows as f64 * ROW,
            bar_x: LABEL_W,
            more_y: px(bars.len() as f64 * ROW + 15.0),
            bars,
            more,
        }
    }

    /// True when there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }
}

/// One series of a [`Histogram`]: a name and a count per bucket.
#[derive(Debug, Clone)]
pub struct Series {
    /// What is counted (shown in the legend).
    pub name: String,
    /// One count per bucket.
    pub counts: Vec<u64>,
}

/// One tick of a value axis.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Its height.
    pub y: f64,
    /// Its value.
    pub label: String,
}

/// One bucket of a histogram: its label and a bar per series.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The bucket's name, under its bars.
    pub label: String,
    /// Where the name is centred.
    pub label_x: f64,
    /// One bar per series.
    pub bars: Vec<Rect>,
}

/// Vertical bars per bucket, one per series side by side, with a count axis.
#[derive(Debug, Clone, Template)]
#[template(path = "charts/histogram.svg", escape = "html")]
pub struct Histogram {
    /// What the chart shows.
    pub title: String,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// Left edge of the plot (ticks are left of it).
    pub plot_x: f64,
    /// Bottom of the plot (the buckets' names are under it).
    pub base_y: f64,
    /// The buckets.
    pub buckets: Vec<Bucket>,
    /// The count axis.
    pub ticks: Vec<Tick>,
    /// The series' colours.
    pub legend: Vec<LegendEntry>,
    /// Where the legend's line is.
    pub legend_y: f64,
}

impl Histogram {
    /// Bars for `series` over the buckets named by `buckets`; `noun` names
    /// what is counted, for the hover text ("3 manifests").
    pub fn new(
        title: &str,
        buckets: &[&str],
        series: &[Series],
        noun: &str,
        (width, height): (f64, f64),
    ) -> Histogram {
        const LEFT: f64 = 48.0;
        const TOP: f64 = 10.0;
        const BOTTOM: f64 = 48.0;
        let base_y = height - BOTTOM;
        let plot_h = base_y - TOP;
        let max = series
            .iter()
            .flat_map(|s| s.counts.iter().copied())
            .max()
            .unwrap_or(0);
        let top = nice_ceiling(max);
        let slot = (width - LEFT) / buckets.len().max(1) as f64;
        let n = series.len().max(1) as f64;
        let bar_w = (slot * 0.8) / n;
        let buckets = buckets
            .iter()
            .enumerate()
            .map(|(b, label)| {
                let x0 = LEFT + b as f64 * slot + slot * 0.1;
                let bars = series
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        let c = s.counts.get(b).copied().unwrap_or(0);
                        let h = c as f64 / top as f64 * plot_h;
                        Rect {
                            x: px(x0 + k as f64 * bar_w),
                            y: px(base_y - h),
                            w: px(bar_w - 1.0),
                            h: px(h),
                            fill: PALETTE[k % PALETTE.len()],
                            title: format!("{}, {label}: {c} {noun}", s.name),
                        }
                    })
                    .collect();
                Bucket {
                    label: label.to_string(),
                    label_x: px(LEFT + (b as f64 + 0.5) * slot),
                    bars,
                }
            })
            .collect();
        let ticks = (0..=4)
            .map(|i| Tick {
                y: px(base_y - i as f64 / 4.0 * plot_h),
                label: (top * i / 4).to_string(),
            })
            .collect();
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        Histogram {
            title: title.to_string(),
            width,
            height,
            plot_x: LEFT,
            base_y: px(base_y),
            buckets,
            ticks,
            legend: legend(&names),
            legend_y: px(height - 8.0),
        }
    }
}

/// The smallest of 4, 8, 20, 40, 80, 200, … (a multiple of 4, so that four
/// ticks are whole numbers) that is at least `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut m = 1;
    loop {
        for f in [4, 8, 20] {
            if f * m >= n {
                return f * m;
            }
        }
        m *= 10;
    }
}

/// Bucket names of [`age_buckets`].
pub const AGE_BUCKETS: [&str; 8] = [
    "< 1 day",
    "1–7 days",
    "1–4 weeks",
    "1–3 months",
    "3–6 months",
    "6–12 months",
    "1–2 years",
    "> 2 years",
];

/// Counts of `ages` (seconds) per bucket of [`AGE_BUCKETS`].
pub fn age_buckets(ages: impl IntoIterator<Item = u64>) -> Vec<u64> {
    const DAY: u64 = 86_400;
    let limits = [
        DAY,
        7 * DAY,
        30 * DAY,
        91 * DAY,
        182 * DAY,
        365 * DAY,
        730 * DAY,
    ];
    let mut counts = vec![0; AGE_BUCKETS.len()];
    for a in ages {
        counts[limits.partition_point(|&l| l <= a)] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(r: &(f64, f64, f64, f64)) -> f64 {
        r.2 * r.3
    }

    #[test]
    fn squarify_fills_the_area_in_proportion_without_overlap() {
        let values = [60.0, 30.0, 20.0, 10.0, 5.0, 5.0, 1.0];
        let rects = squarify(&values, (0.0, 0.0, 400.0, 300.0));
        assert_eq!(rects.len(), values.len());
        let total: f64 = values.iter().sum();
        for (r, v) in rects.iter().zip(values) {
            let want = v / total * 400.0 * 300.0;
            assert!((area(r) - want).abs() < 1e-6, "{r:?} for {v}");
            assert!(r.0 >= -1e-9 && r.1 >= -1e-9);
            assert!(r.0 + r.2 <= 400.0 + 1e-6 && r.1 + r.3 <= 300.0 + 1e-6);
        }
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                let ox = (a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0);
                let oy = (a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1);
                assert!(ox <= 1e-6 || oy <= 1e-6, "{a:?} overlaps {b:?}");
            }
        }
        // Squarified: no sliver among comparable values.
        let worst = rects
            .iter()
            .map(|r| (r.2 / r.3).max(r.3 / r.2))
            .take(4)
            .fold(0.0, f64::max);
        assert!(worst < 4.0, "aspect {worst}");
    }

    #[test]
    fn treemap_merges_the_tail_and_titles_every_part() {
        let items = (1..=5)
            .map(|i| TreemapItem {
                label: format!("r{i}"),
                parts: vec![i * 100, i * 10, 0],
            })
            .collect();
        let t = Treemap::new(
            "t",
            &["unique", "shared", "reclaimable"],
            items,
            |v| format!("{v} B"),
            (500.0, 300.0),
            3,
        );
        let labels: Vec<&str> = t.cells.iter().map(|c| c.outline.title.as_str()).collect();
        assert_eq!(labels.len(), 3);
        assert!(labels[0].starts_with("r5: 550 B"), "{labels:?}");
        assert!(labels[2].starts_with("3 others: 660 B"), "{labels:?}");
        assert_eq!(t.cells[0].parts.len(), 2, "zero parts are not drawn");
        let svg = t.render().unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<title>r5: unique 500 B</title>"));
    }

    #[test]
    fn bars_are_sorted_scaled_and_escaped() {
        let c = BarChart::new(
            "b",
            vec![
                ("<small>".into(), 10),
                ("big".into(), 40),
                ("zero".into(), 0),
                ("mid".into(), 20),
            ],
            |v| format!("{v} B"),
            800.0,
            2,
        );
        assert_eq!(c.bars.len(), 2);
        assert_eq!(c.bars[0].value, "40 B");
        assert!((c.bars[1].rect.w * 2.0 - c.bars[0].rect.w).abs() < 0.2);
        assert_eq!(c.more, "… and 1 more");
        let svg = c.render().unwrap();
        assert!(!svg.contains("<small>"));
    }

    #[test]
    fn ages_fall_into_their_buckets() {
        let d = 86_400;
        let c = age_buckets([0, d - 1, d, 8 * d, 100 * d, 800 * d, 800 * d]);
        assert_eq!(c, vec![2, 1, 1, 0, 1, 0, 0, 2]);
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(5), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(21), 40);
    }

    #[test]
    fn histogram_bar_heights_follow_the_counts() {
        let h = Histogram::new(
            "h",
            &["a", "b"],
            &[Series {
                name: "s".into(),
                counts: vec![2, 4],
            }],
            "things",
            (400.0, 200.0),
        );
        let (a, b) = (&h.buckets[0].bars[0], &h.buckets[1].bars[0]);
        assert!((b.h - 2.0 * a.h).abs() < 0.2);
        assert_eq!(a.title, "s, a: 2 things");
        assert!(h
            .render()
            .unwrap()
            .contains("<title>s, b: 4 things</title>"));
    }
}
