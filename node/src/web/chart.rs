//! Server-rendered SVG charts for quality improvement measures: a run chart
//! and a Making Data Count XmR chart ([`crate::query::spc`]), each drawn
//! without JavaScript and told again in words beside it.
//!
//! A chart is a `<figure>`: a visible caption, an `<svg role="img">` whose
//! `<title>` and `<desc>` name and summarise it, any notices (provisional
//! limits, points left out), for the XmR chart the signals in words, and a
//! `<table>` of every point with its flag in words. Colour is never the
//! only cue: improvement and concern points also differ in shape (diamond,
//! square), and the table says what each colour means.
//!
//! Every user-provided string (title, unit, labels, annotations) goes
//! through maud, which escapes it; the only strings built here by
//! formatting are numbers and ids made of checked characters. The markup
//! uses presentation attributes (`fill`, `stroke`) and `spc-` classes but no
//! `style` attribute, so it renders without the stylesheet and under the
//! site's Content-Security-Policy. Every SVG element is closed explicitly:
//! an HTML parser would otherwise nest the rest of the chart inside an
//! unclosed `<line>`.
//!
//! The stylesheet may add, for the chart to shrink on narrow screens:
//! `.spc-svg { max-width: 100%; height: auto; }`.

use maud::{Markup, html};

use crate::query::spc::{self, Better, PointFlag};

/// The most points a chart draws: ten years of weekly values. Longer
/// series are cut to their most recent points, and the chart says so.
pub const MAX_CHART_POINTS: usize = 520;
/// The most x-axis labels drawn; the table lists every point.
pub const MAX_X_LABELS: usize = 7;
/// Characters of an x label drawn on the axis before it is cut short
/// (the table shows it whole).
pub const MAX_AXIS_LABEL_CHARS: usize = 12;
/// Characters of an annotation drawn on the chart before it is cut short
/// (the table shows it whole).
pub const MAX_ANNOTATION_LABEL_CHARS: usize = 24;
/// How many y-axis intervals the axis aims for.
const TARGET_Y_INTERVALS: f64 = 5.0;
/// The most y-axis ticks drawn, whatever the rounding does.
const MAX_Y_TICKS: usize = 12;
/// The most decimal places a number is shown with.
const MAX_DECIMALS: usize = 6;
/// Values this large or larger are shown in scientific notation.
const SCIENTIFIC_FROM: f64 = 1e15;

/// The SVG's coordinate system.
const VIEW_WIDTH: f64 = 720.0;
const VIEW_HEIGHT: f64 = 400.0;
/// The plot area inside it: room on the left for tick labels, on the right
/// for line labels, above for annotations, below for x labels and legend.
const PLOT_LEFT: f64 = 72.0;
const PLOT_RIGHT: f64 = 624.0;
const PLOT_TOP: f64 = 60.0;
const PLOT_BOTTOM: f64 = 300.0;
/// Gap between the axes and the first and last points.
const POINT_INSET: f64 = 12.0;
/// Where the legend's row sits.
const LEGEND_Y: f64 = 376.0;

/// Common-cause points: NHS mid grey, 3.75:1 against white.
const COLOUR_COMMON: &str = "#768692";
/// Improvement points: NHS blue, 6.4:1 against white.
const COLOUR_IMPROVEMENT: &str = "#005eb8";
/// Concern points: a dark orange, 4.2:1 against white.
const COLOUR_CONCERN: &str = "#c65f00";
/// Text and the centre line: 14:1 against white.
const COLOUR_INK: &str = "#212b32";
/// The data line and the limits: 7.8:1 against white.
const COLOUR_LINE: &str = "#425563";
/// Gridlines: decorative, so deliberately faint.
const COLOUR_GRID: &str = "#d8dde0";

/// A run chart: the values over time and their median, with labelled axes
/// and annotations (such as PDSA cycles) as vertical markers at the index
/// of the point they belong to.
///
/// `id_prefix` makes the chart's element ids; give each chart on a page its
/// own. `points` are (x label, value) in time order.
pub fn run_chart(
    id_prefix: &str,
    title: &str,
    unit: &str,
    points: &[(String, f64)],
    annotations: &[(usize, String)],
    better: Better,
) -> Markup {
    let series = match Series::new(points, annotations) {
        Ok(series) => series,
        Err(problem) => return unchartable(title, problem),
    };
    let Some(median) = spc::median(&series.values) else {
        return unchartable(title, Problem::NoData);
    };
    let mut lines = series.values.clone();
    lines.push(median);
    let Some(scale) = Scale::new(&lines, series.values.len()) else {
        return unchartable(title, Problem::TooLarge);
    };
    let line_decimals = (scale.decimals + 1).min(MAX_DECIMALS);
    let median_words = format_number(median, line_decimals);
    let description = format!(
        "Run chart of {}, {}. Median {}{}. {}.",
        series.extent_in_words(),
        series.range_in_words(unit),
        median_words,
        unit_suffix(unit),
        better.in_words(),
    );
    let ids = Ids::new(id_prefix);
    let flags = vec![PointFlag::CommonCause; series.values.len()];
    let median_y = scale.y(median);
    html! {
        figure.spc-chart.spc-run-chart {
            figcaption.spc-title { (title) }
            (svg_open(&ids, title, &description, html! {
                (axes(&scale, &series, unit))
                line.spc-median x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(median_y)) y2=(px(median_y))
                    stroke=(COLOUR_INK) stroke-width="2" {}
                text.spc-line-label x=(px(PLOT_RIGHT + 6.0)) y=(px(median_y + 4.0)) { "Median " (median_words) }
                (annotation_markers(&scale, &series))
                (data_line(&scale, &series.values))
                (markers(&scale, &series, &flags))
                g.spc-legend {
                    line x1=(px(PLOT_LEFT)) x2=(px(PLOT_LEFT + 24.0)) y1=(px(LEGEND_Y - 4.0)) y2=(px(LEGEND_Y - 4.0))
                        stroke=(COLOUR_INK) stroke-width="2" {}
                    text x=(px(PLOT_LEFT + 30.0)) y=(px(LEGEND_Y)) { "Median" }
                    text x=(px(PLOT_LEFT + 110.0)) y=(px(LEGEND_Y)) { (better.in_words()) }
                }
            }))
            (series.notices())
            (data_table(title, unit, &series, None))
        }
    }
}

/// An XmR chart as Making Data Count draws it: the values, their mean, the
/// upper and lower process limits (dashed), each point coloured by its
/// [`PointFlag`] (grey common cause, blue improvement, orange concern) and
/// annotations as vertical markers, followed by the signals in words.
///
/// Limits from fewer than [`spc::MIN_POINTS_FOR_LIMITS`] points are drawn
/// and called provisional; a single point is drawn without limits.
/// `id_prefix` makes the chart's element ids; give each chart on a page its
/// own. `points` are (x label, value) in time order. With `baseline`, the
/// limits come from the first that many points and every point is judged
/// against them ([`spc::analyse_with_baseline`]).
pub fn spc_chart(
    id_prefix: &str,
    title: &str,
    unit: &str,
    points: &[(String, f64)],
    annotations: &[(usize, String)],
    better: Better,
    baseline: Option<usize>,
) -> Markup {
    let series = match Series::new(points, annotations) {
        Ok(series) => series,
        Err(problem) => return unchartable(title, problem),
    };
    let analysis = match spc::analyse_with_baseline(&series.values, baseline, better) {
        Ok(analysis) => Some(analysis),
        Err(spc::SpcError::TooFewPoints { .. }) => None,
        Err(spc::SpcError::NonFinite { .. } | spc::SpcError::Overflow) => {
            return unchartable(title, Problem::TooLarge);
        }
    };
    let mut lines = series.values.clone();
    if let Some(analysis) = &analysis {
        let limits = analysis.limits;
        lines.extend([limits.mean, limits.upper, limits.lower]);
    }
    let Some(scale) = Scale::new(&lines, series.values.len()) else {
        return unchartable(title, Problem::TooLarge);
    };
    let line_decimals = (scale.decimals + 1).min(MAX_DECIMALS);
    let flags = match &analysis {
        Some(analysis) => analysis.flags.clone(),
        None => vec![PointFlag::CommonCause; series.values.len()],
    };
    let mut description = format!(
        "XmR chart of {}, {}. ",
        series.extent_in_words(),
        series.range_in_words(unit)
    );
    match &analysis {
        Some(analysis) => {
            let limits = analysis.limits;
            description.push_str(&format!(
                "Mean {}, upper process limit {}, lower process limit {}{}{}. {}. {}.",
                format_number(limits.mean, line_decimals),
                format_number(limits.upper, line_decimals),
                format_number(limits.lower, line_decimals),
                unit_suffix(unit),
                if analysis.provisional {
                    " (provisional)"
                } else {
                    ""
                },
                better.in_words(),
                signal_count_in_words(analysis.signals.len()),
            ));
        }
        None => description.push_str("Process limits need at least 2 points."),
    }
    let ids = Ids::new(id_prefix);
    html! {
        figure.spc-chart.spc-xmr-chart {
            figcaption.spc-title { (title) }
            (svg_open(&ids, title, &description, html! {
                (axes(&scale, &series, unit))
                @if let Some(analysis) = &analysis {
                    (limit_lines(&scale, &analysis.limits, line_decimals))
                }
                (annotation_markers(&scale, &series))
                (data_line(&scale, &series.values))
                (markers(&scale, &series, &flags))
                (xmr_legend(better))
            }))
            (series.notices())
            @match &analysis {
                Some(analysis) => {
                    @if let Some(n) = baseline.filter(|n| *n >= spc::MIN_POINTS_FOR_ANY_LIMITS && *n < series.values.len()) {
                        p.spc-notice {
                            "The mean and limits come from the baseline: the first " (n) " points. Every point is judged against them."
                        }
                    }
                    @if analysis.provisional {
                        p.spc-notice {
                            "These limits come from " (baseline.filter(|n| *n >= spc::MIN_POINTS_FOR_ANY_LIMITS && *n <= series.values.len()).unwrap_or(series.values.len())) " points. Making Data Count advises at least "
                            (spc::MIN_POINTS_FOR_LIMITS) " before limits are trusted, so treat them as provisional."
                        }
                    }
                    (signal_list(&series, &analysis.signals))
                }
                None => p.spc-notice { "Process limits need at least 2 points." }
            }
            (data_table(title, unit, &series, Some(&flags)))
        }
    }
}

/// Why a chart cannot be drawn.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    /// No points.
    NoData,
    /// A value is NaN or infinite; its label.
    NotANumber(String),
    /// The values or their limits do not fit the arithmetic.
    TooLarge,
}

/// The figure shown in place of a chart that cannot be drawn.
fn unchartable(title: &str, problem: Problem) -> Markup {
    html! {
        figure.spc-chart.spc-empty {
            figcaption.spc-title { (title) }
            p.spc-notice {
                @match problem {
                    Problem::NoData => { "No data yet." }
                    Problem::NotANumber(label) => {
                        "This chart cannot be drawn: the value for " (label) " is not a number."
                    }
                    Problem::TooLarge => { "This chart cannot be drawn: the values are too large." }
                }
            }
        }
    }
}

/// The points a chart draws.
struct Series<'a> {
    /// The points drawn: the most recent [`MAX_CHART_POINTS`].
    points: &'a [(String, f64)],
    /// Their values.
    values: Vec<f64>,
    /// How many points the caller gave.
    total: usize,
    /// Annotations that fall on a drawn point, as (index into `points`,
    /// text), in the order given.
    annotations: Vec<(usize, &'a str)>,
}

impl<'a> Series<'a> {
    fn new(
        points: &'a [(String, f64)],
        annotations: &'a [(usize, String)],
    ) -> Result<Self, Problem> {
        let offset = points.len().saturating_sub(MAX_CHART_POINTS);
        let shown = points.get(offset..).unwrap_or_default();
        if shown.is_empty() {
            return Err(Problem::NoData);
        }
        if let Some((label, _)) = shown.iter().find(|(_, value)| !value.is_finite()) {
            return Err(Problem::NotANumber(label.clone()));
        }
        let annotations = annotations
            .iter()
            .filter_map(|(index, text)| {
                let shown_index = index.checked_sub(offset)?;
                (shown_index < shown.len()).then_some((shown_index, text.as_str()))
            })
            .collect();
        Ok(Series {
            points: shown,
            values: shown.iter().map(|(_, value)| *value).collect(),
            total: points.len(),
            annotations,
        })
    }

    /// The label of point `index`, empty if there is none.
    fn label(&self, index: usize) -> &str {
        self.points
            .get(index)
            .map_or("", |(label, _)| label.as_str())
    }

    /// "20 points, 2026-01-01 to 2026-08-01" or "1 point, 2026-01-01".
    fn extent_in_words(&self) -> String {
        let count = self.points.len();
        let last = self.label(count.saturating_sub(1));
        if count == 1 {
            format!("1 point, {last}")
        } else {
            format!("{count} points, {} to {last}", self.label(0))
        }
    }

    /// "from 9 to 16 days", or "value 12 days" for one point.
    fn range_in_words(&self, unit: &str) -> String {
        let lowest = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if self.values.len() == 1 {
            format!(
                "value {}{}",
                format_number(highest, value_decimals(highest)),
                unit_suffix(unit)
            )
        } else {
            format!(
                "values from {} to {}{}",
                format_number(lowest, value_decimals(lowest)),
                format_number(highest, value_decimals(highest)),
                unit_suffix(unit)
            )
        }
    }

    /// The notices every chart may carry.
    fn notices(&self) -> Markup {
        html! {
            @if self.total > self.points.len() {
                p.spc-notice {
                    "Showing the most recent " (self.points.len()) " of " (self.total) " points."
                }
            }
        }
    }
}

/// The ids of one chart's elements, from a caller's prefix reduced to
/// ASCII letters, digits, `-` and `_`, starting with a letter.
struct Ids {
    base: String,
}

impl Ids {
    fn new(prefix: &str) -> Self {
        let cleaned: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = if cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
            cleaned
        } else {
            format!("chart-{cleaned}")
        };
        Ids { base }
    }

    fn title(&self) -> String {
        format!("{}-title", self.base)
    }

    fn desc(&self) -> String {
        format!("{}-desc", self.base)
    }
}

/// The `<svg>` element around a chart's content, named by its `<title>`
/// and `<desc>`.
fn svg_open(ids: &Ids, title: &str, description: &str, content: Markup) -> Markup {
    html! {
        svg.spc-svg xmlns="http://www.w3.org/2000/svg" role="img"
            aria-labelledby={ (ids.title()) " " (ids.desc()) }
            viewBox={ "0 0 " (px(VIEW_WIDTH)) " " (px(VIEW_HEIGHT)) }
            width=(px(VIEW_WIDTH)) height=(px(VIEW_HEIGHT)) {
            title id=(ids.title()) { (title) }
            desc id=(ids.desc()) { (description) }
            rect x="0" y="0" width=(px(VIEW_WIDTH)) height=(px(VIEW_HEIGHT)) fill="#ffffff" {}
            g font-family="Arial, Helvetica, sans-serif" font-size="12" fill=(COLOUR_INK) {
                (content)
            }
        }
    }
}

/// The y axis's range and ticks, and the x positions of the points.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    /// The value at the bottom of the plot.
    low: f64,
    /// The value at the top of the plot.
    high: f64,
    /// Values of the y ticks, low to high.
    ticks: Vec<f64>,
    /// Decimal places of the tick labels.
    decimals: usize,
    /// How many points share the x axis.
    point_count: usize,
}

impl Scale {
    /// A scale that shows every value in `lines` (values and centre and
    /// limit lines) with rounded ticks; `None` if they are not finite or
    /// their range does not fit in an `f64`.
    fn new(lines: &[f64], point_count: usize) -> Option<Scale> {
        let mut low = lines.iter().copied().reduce(f64::min)?;
        let mut high = lines.iter().copied().reduce(f64::max)?;
        if low == high {
            let pad = if low == 0.0 { 1.0 } else { low.abs() / 10.0 };
            low -= pad;
            high += pad;
        }
        let range = high - low;
        if !(low.is_finite() && high.is_finite() && range.is_finite() && range > 0.0) {
            return None;
        }
        let step = nice_step(range / TARGET_Y_INTERVALS);
        if step.is_finite() && step > 0.0 {
            let first = (low / step).floor();
            let last = (high / step).ceil();
            let (rounded_low, rounded_high) = (first * step, last * step);
            let intervals = last - first;
            if intervals >= 1.0
                && intervals < MAX_Y_TICKS as f64
                && rounded_low.is_finite()
                && rounded_high.is_finite()
                && rounded_high > rounded_low
            {
                // Each tick from its own multiple: no drift from adding.
                let tick_count = intervals as usize + 1;
                let ticks = (0..tick_count).map(|k| (first + k as f64) * step).collect();
                return Some(Scale {
                    low: rounded_low,
                    high: rounded_high,
                    ticks,
                    decimals: decimals_for_step(step),
                    point_count,
                });
            }
        }
        // Rounding failed (a range too fine for the magnitude): label the
        // ends as they are.
        Some(Scale {
            low,
            high,
            ticks: vec![low, high],
            decimals: decimals_for_step(range),
            point_count,
        })
    }

    /// The x coordinate of point `index`.
    fn x(&self, index: usize) -> f64 {
        let left = PLOT_LEFT + POINT_INSET;
        let right = PLOT_RIGHT - POINT_INSET;
        if self.point_count <= 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * index as f64 / (self.point_count - 1) as f64
        }
    }

    /// The y coordinate of `value`.
    fn y(&self, value: f64) -> f64 {
        let share = (value - self.low) / (self.high - self.low);
        let y = PLOT_BOTTOM - share * (PLOT_BOTTOM - PLOT_TOP);
        if y.is_finite() { y } else { PLOT_BOTTOM }
    }
}

/// 1, 2 or 5 times a power of ten, at least `rough`.
fn nice_step(rough: f64) -> f64 {
    let magnitude = 10f64.powf(rough.log10().floor());
    let residual = rough / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Decimal places that tell ticks `step` apart.
fn decimals_for_step(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) || step >= 1.0 {
        return 0;
    }
    // Less a hair, so 0.1 (whose log10 may round below −1) needs 1, not 2.
    let decimals = (-step.log10() - 1e-9).ceil();
    if decimals >= MAX_DECIMALS as f64 {
        MAX_DECIMALS
    } else {
        decimals.max(0.0) as usize
    }
}

/// Decimal places that show `value` as given, up to [`MAX_DECIMALS`].
fn value_decimals(value: f64) -> usize {
    (0..MAX_DECIMALS)
        .find(|&decimals| {
            let scale = 10f64.powi(decimals as i32);
            ((value * scale).round() / scale - value).abs() <= value.abs() * 1e-12
        })
        .unwrap_or(MAX_DECIMALS)
}

/// `value` with `decimals` places and thousands separators, "12,345.6";
/// scientific notation from [`SCIENTIFIC_FROM`]; never "-0".
fn format_number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "not a number".to_owned();
    }
    if value.abs() >= SCIENTIFIC_FROM {
        return format!("{value:.3e}");
    }
    let text = format!("{:.*}", decimals.min(MAX_DECIMALS), value);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (
            digits.chars().any(|c| c.is_ascii_digit() && c != '0'),
            digits,
        ),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut grouped = String::with_capacity(text.len() + whole.len() / 3);
    if negative {
        grouped.push('-');
    }
    for (position, digit) in whole.chars().enumerate() {
        if position > 0 && (whole.len() - position) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

/// A coordinate as an attribute value.
fn px(coordinate: f64) -> String {
    format!("{coordinate:.1}")
}

/// " days" for a unit, nothing for none.
fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// `text` cut to `max_chars` characters, the last an ellipsis.
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

/// "No special cause variation" or "1 signal of special cause variation".
fn signal_count_in_words(count: usize) -> String {
    match count {
        0 => "No special cause variation".to_owned(),
        1 => "1 signal of special cause variation".to_owned(),
        _ => format!("{count} signals of special cause variation"),
    }
}

/// Gridlines, tick labels, the axes, x labels and the unit.
fn axes(scale: &Scale, series: &Series<'_>, unit: &str) -> Markup {
    let count = series.points.len();
    let label_every = count.div_ceil(MAX_X_LABELS).max(1);
    let middle_y = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
    html! {
        g.spc-grid stroke=(COLOUR_GRID) stroke-width="1" {
            @for tick in &scale.ticks {
                line x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(scale.y(*tick))) y2=(px(scale.y(*tick))) {}
            }
        }
        g.spc-y-ticks text-anchor="end" {
            @for tick in &scale.ticks {
                text x=(px(PLOT_LEFT - 6.0)) y=(px(scale.y(*tick) + 4.0)) { (format_number(*tick, scale.decimals)) }
            }
        }
        g.spc-axes stroke=(COLOUR_INK) stroke-width="1" {
            line x1=(px(PLOT_LEFT)) x2=(px(PLOT_LEFT)) y1=(px(PLOT_TOP)) y2=(px(PLOT_BOTTOM)) {}
            line x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(PLOT_BOTTOM)) y2=(px(PLOT_BOTTOM)) {}
        }
        g.spc-x-labels text-anchor="middle" font-size="11" {
            @for index in (0..count).step_by(label_every) {
                text x=(px(scale.x(index))) y=(px(PLOT_BOTTOM + 18.0)) {
                    (shorten(series.label(index), MAX_AXIS_LABEL_CHARS))
                }
            }
        }
        @if !unit.is_empty() {
            text.spc-unit text-anchor="middle" x=(px(-middle_y)) y="16" transform="rotate(-90)" { (unit) }
        }
    }
}

/// The mean (solid) and the process limits (dashed), labelled at the right
/// unless a label would overlap the mean's.
fn limit_lines(scale: &Scale, limits: &spc::Limits, decimals: usize) -> Markup {
    let mean_y = scale.y(limits.mean);
    let upper_y = scale.y(limits.upper);
    let lower_y = scale.y(limits.lower);
    let apart = |y: f64| (y - mean_y).abs() >= 12.0;
    html! {
        line.spc-mean x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(mean_y)) y2=(px(mean_y))
            stroke=(COLOUR_INK) stroke-width="2" {}
        line.spc-limit.spc-upper-limit x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(upper_y)) y2=(px(upper_y))
            stroke=(COLOUR_LINE) stroke-width="1.5" stroke-dasharray="6 4" {}
        line.spc-limit.spc-lower-limit x1=(px(PLOT_LEFT)) x2=(px(PLOT_RIGHT)) y1=(px(lower_y)) y2=(px(lower_y))
            stroke=(COLOUR_LINE) stroke-width="1.5" stroke-dasharray="6 4" {}
        text.spc-line-label x=(px(PLOT_RIGHT + 6.0)) y=(px(mean_y + 4.0)) { "Mean " (format_number(limits.mean, decimals)) }
        @if apart(upper_y) {
            text.spc-line-label x=(px(PLOT_RIGHT + 6.0)) y=(px(upper_y + 4.0)) { "UPL " (format_number(limits.upper, decimals)) }
        }
        @if apart(lower_y) {
            text.spc-line-label x=(px(PLOT_RIGHT + 6.0)) y=(px(lower_y + 4.0)) { "LPL " (format_number(limits.lower, decimals)) }
        }
    }
}

/// The line joining the points.
fn data_line(scale: &Scale, values: &[f64]) -> Markup {
    let coordinates: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(index, value)| format!("{},{}", px(scale.x(index)), px(scale.y(*value))))
        .collect();
    html! {
        @if values.len() > 1 {
            polyline.spc-data-line points=(coordinates.join(" ")) fill="none"
                stroke=(COLOUR_LINE) stroke-width="1.5" {}
        }
    }
}

/// One marker per point, shaped and coloured by its flag, with a tooltip.
fn markers(scale: &Scale, series: &Series<'_>, flags: &[PointFlag]) -> Markup {
    html! {
        g.spc-points {
            @for (index, value) in series.values.iter().enumerate() {
                @let flag = flags.get(index).copied().unwrap_or(PointFlag::CommonCause);
                @let tooltip = format!(
                    "{}: {} — {}",
                    series.label(index),
                    format_number(*value, value_decimals(*value)),
                    flag.in_words()
                );
                (marker(flag, scale.x(index), scale.y(*value), &tooltip))
            }
        }
    }
}

/// A marker: a grey circle, a blue diamond or an orange square.
fn marker(flag: PointFlag, x: f64, y: f64, tooltip: &str) -> Markup {
    match flag {
        PointFlag::CommonCause => html! {
            circle.spc-point.spc-common cx=(px(x)) cy=(px(y)) r="4" fill=(COLOUR_COMMON) {
                title { (tooltip) }
            }
        },
        PointFlag::Improvement => {
            let size = 6.5;
            let corners = format!(
                "{},{} {},{} {},{} {},{}",
                px(x),
                px(y - size),
                px(x + size),
                px(y),
                px(x),
                px(y + size),
                px(x - size),
                px(y)
            );
            html! {
                polygon.spc-point.spc-improvement points=(corners) fill=(COLOUR_IMPROVEMENT) {
                    title { (tooltip) }
                }
            }
        }
        PointFlag::Concern => html! {
            rect.spc-point.spc-concern x=(px(x - 5.0)) y=(px(y - 5.0)) width="10" height="10" fill=(COLOUR_CONCERN) {
                title { (tooltip) }
            }
        },
    }
}

/// Annotations as dotted vertical lines with their text above the plot,
/// alternating between two rows so neighbours overlap less.
fn annotation_markers(scale: &Scale, series: &Series<'_>) -> Markup {
    html! {
        g.spc-annotations {
            @for (row, (index, text)) in series.annotations.iter().enumerate() {
                @let x = scale.x(*index);
                @let anchor = if x < PLOT_LEFT + 80.0 { "start" } else if x > PLOT_RIGHT - 80.0 { "end" } else { "middle" };
                @let label_y = PLOT_TOP - 10.0 - (row % 2) as f64 * 16.0;
                line.spc-annotation x1=(px(x)) x2=(px(x)) y1=(px(label_y + 4.0)) y2=(px(PLOT_BOTTOM))
                    stroke=(COLOUR_INK) stroke-width="1" stroke-dasharray="2 3" {}
                text.spc-annotation-label x=(px(x)) y=(px(label_y)) text-anchor=(anchor) {
                    (shorten(text, MAX_ANNOTATION_LABEL_CHARS))
                }
            }
        }
    }
}

/// The XmR chart's legend.
fn xmr_legend(better: Better) -> Markup {
    let y = LEGEND_Y - 4.0;
    html! {
        g.spc-legend {
            (marker(PointFlag::CommonCause, PLOT_LEFT, y, "Common cause"))
            text x=(px(PLOT_LEFT + 10.0)) y=(px(LEGEND_Y)) { "Common cause" }
            (marker(PointFlag::Improvement, PLOT_LEFT + 110.0, y, "Improvement"))
            text x=(px(PLOT_LEFT + 120.0)) y=(px(LEGEND_Y)) { "Improvement" }
            (marker(PointFlag::Concern, PLOT_LEFT + 210.0, y, "Concern"))
            text x=(px(PLOT_LEFT + 220.0)) y=(px(LEGEND_Y)) { "Concern" }
            line x1=(px(PLOT_LEFT + 290.0)) x2=(px(PLOT_LEFT + 314.0)) y1=(px(y)) y2=(px(y))
                stroke=(COLOUR_LINE) stroke-width="1.5" stroke-dasharray="6 4" {}
            text x=(px(PLOT_LEFT + 320.0)) y=(px(LEGEND_Y)) { "Process limits" }
            text x=(px(PLOT_LEFT + 420.0)) y=(px(LEGEND_Y)) { (better.in_words()) }
        }
    }
}

/// The signals in words, each with the labels of the points it spans.
fn signal_list(series: &Series<'_>, signals: &[spc::Signal]) -> Markup {
    html! {
        @if signals.is_empty() {
            p.spc-signals-none { "No special cause variation: every point is within common cause variation." }
        } @else {
            p.spc-signals-intro { (signal_count_in_words(signals.len())) ":" }
            ul.spc-signals {
                @for signal in signals {
                    @let first = signal.points.first().map_or("", |&index| series.label(index));
                    @let last = signal.points.last().map_or("", |&index| series.label(index));
                    li {
                        (signal.describe())
                        @if signal.points.len() == 1 { " (" (first) ")" } @else { " (" (first) " to " (last) ")" }
                    }
                }
            }
        }
    }
}

/// Every point in a table: number, label, value, flag in words (XmR chart
/// only) and annotations.
fn data_table(title: &str, unit: &str, series: &Series<'_>, flags: Option<&[PointFlag]>) -> Markup {
    let has_notes = !series.annotations.is_empty();
    html! {
        table.table.spc-table {
            caption { (title) ": the data" }
            thead {
                tr {
                    th scope="col" { "Point" }
                    th scope="col" { "Period" }
                    th scope="col" { "Value" @if !unit.is_empty() { " (" (unit) ")" } }
                    @if flags.is_some() { th scope="col" { "Variation" } }
                    @if has_notes { th scope="col" { "Note" } }
                }
            }
            tbody {
                @for (index, (label, value)) in series.points.iter().enumerate() {
                    tr {
                        td { (index + 1) }
                        th scope="row" { (label) }
                        td { (format_number(*value, value_decimals(*value))) }
                        @if let Some(flags) = flags {
                            @let flag = flags.get(index).copied().unwrap_or(PointFlag::CommonCause);
                            td class=(flag_class(flag)) { (flag.in_words()) }
                        }
                        @if has_notes {
                            td {
                                @for (position, (_, text)) in series.annotations.iter().filter(|(at, _)| *at == index).enumerate() {
                                    @if position > 0 { "; " }
                                    (text)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The CSS class of a flag.
fn flag_class(flag: PointFlag) -> &'static str {
    match flag {
        PointFlag::CommonCause => "spc-common",
        PointFlag::Improvement => "spc-improvement",
        PointFlag::Concern => "spc-concern",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Twenty monthly waits in days; the last seven sit below the mean.
    fn waits() -> Vec<(String, f64)> {
        let values = [
            12.0, 14.0, 13.0, 15.0, 12.0, 14.0, 13.0, 16.0, 12.0, 14.0, 13.0, 15.0, 14.0, 9.0,
            10.0, 9.0, 11.0, 10.0, 9.0, 10.0,
        ];
        values
            .iter()
            .enumerate()
            .map(|(month, value)| {
                (
                    format!("{}-{:02}-01", 2024 + month / 12, month % 12 + 1),
                    *value,
                )
            })
            .collect()
    }

    /// The `<svg>` element of rendered markup, parsed as XML: it must be
    /// well-formed, every element closed.
    fn svg_of(markup: &str) -> String {
        let start = markup.find("<svg").expect("an svg element");
        let end = markup.find("</svg>").expect("a closed svg element") + "</svg>".len();
        markup[start..end].to_owned()
    }

    fn with_class<'a>(
        document: &'a roxmltree::Document<'a>,
        class: &str,
    ) -> Vec<roxmltree::Node<'a, 'a>> {
        document
            .descendants()
            .filter(|node| {
                node.attribute("class")
                    .is_some_and(|classes| classes.split(' ').any(|c| c == class))
            })
            .collect()
    }

    #[test]
    fn xmr_chart_draws_limits_flags_and_words() {
        let annotations = [(13, "PDSA 1: new triage".to_owned())];
        let html = spc_chart(
            "waits",
            "Days waited",
            "days",
            &waits(),
            &annotations,
            Better::Lower,
            None,
        )
        .into_string();
        let svg = svg_of(&html);
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let root = document.root_element();
        assert_eq!(root.attribute("role"), Some("img"));
        assert_eq!(
            root.attribute("aria-labelledby"),
            Some("waits-title waits-desc")
        );
        let title = document
            .descendants()
            .find(|n| n.has_tag_name("title") && n.attribute("id") == Some("waits-title"))
            .expect("a title");
        assert_eq!(title.text(), Some("Days waited"));
        let desc = document
            .descendants()
            .find(|n| n.has_tag_name("desc") && n.attribute("id") == Some("waits-desc"))
            .expect("a desc");
        assert!(
            desc.text()
                .is_some_and(|text| text.contains("upper process limit 17.3")
                    && text.contains("lower process limit 7.2 days")
                    && text.contains("1 signal")),
            "{desc:?}"
        );

        assert_eq!(with_class(&document, "spc-mean").len(), 1);
        let limits = with_class(&document, "spc-limit");
        assert_eq!(limits.len(), 2);
        assert!(
            limits
                .iter()
                .all(|line| line.attribute("stroke-dasharray").is_some())
        );
        // The upper limit is drawn above (a smaller y than) the lower.
        let y_of = |class: &str| -> f64 {
            with_class(&document, class)[0]
                .attribute("y1")
                .and_then(|y| y.parse().ok())
                .expect("a y1")
        };
        assert!(y_of("spc-upper-limit") < y_of("spc-mean"));
        assert!(y_of("spc-mean") < y_of("spc-lower-limit"));

        let points = with_class(&document, "spc-point");
        let legend = 3;
        assert_eq!(points.len(), 20 + legend);
        let improvement = with_class(&document, "spc-improvement");
        assert_eq!(improvement.len(), 7 + 1);
        assert!(
            improvement
                .iter()
                .all(|p| p.has_tag_name("polygon")
                    && p.attribute("fill") == Some(COLOUR_IMPROVEMENT))
        );
        assert_eq!(with_class(&document, "spc-concern").len(), 1, "legend only");

        // The annotation marks point 14's x.
        let annotation = &with_class(&document, "spc-annotation")[0];
        assert_eq!(
            annotation.attribute("x1"),
            Some(px(scale_x(13, 20)).as_str())
        );
        assert!(svg.contains("PDSA 1: new triage"));

        assert!(html.contains(
            "7 points in a row below the mean, points 14–20: improvement (2025-02-01 to 2025-08-01)"
        ));
        assert_eq!(html.matches("<tr>").count(), 21, "a header and 20 rows");
        assert_eq!(
            html.matches("special cause — improvement").count(),
            7 + 7,
            "a tooltip and a table cell each"
        );
        assert!(html.contains("<caption>Days waited: the data</caption>"));
        assert!(!html.contains("style="));
        assert!(!html.contains("provisional"));
    }

    fn scale_x(index: usize, count: usize) -> f64 {
        let scale = Scale::new(&[0.0, 1.0], count).expect("a scale");
        scale.x(index)
    }

    #[test]
    fn user_text_is_escaped() {
        let hostile = "<script>alert(1)</script>";
        let points = vec![(hostile.to_owned(), 1.0), ("b\"&".to_owned(), 2.0)];
        let annotations = [(0, hostile.to_owned())];
        for html in [
            spc_chart(
                "x",
                hostile,
                hostile,
                &points,
                &annotations,
                Better::Higher,
                None,
            ),
            run_chart("x", hostile, hostile, &points, &annotations, Better::Higher),
        ] {
            let html = html.into_string();
            assert!(!html.contains("<script"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(html.contains("b&quot;&amp;"));
            roxmltree::Document::parse(&svg_of(&html)).expect("well-formed SVG");
        }
        let html = spc_chart(
            "x",
            "t",
            "",
            &[(hostile.to_owned(), f64::NAN)],
            &[],
            Better::Higher,
            None,
        )
        .into_string();
        assert!(html.contains("the value for &lt;script&gt;"));
    }

    #[test]
    fn no_points_says_no_data_yet() {
        for html in [
            spc_chart(
                "a",
                "Empty",
                "days",
                &[],
                &[(0, "PDSA".to_owned())],
                Better::Higher,
                None,
            ),
            run_chart("a", "Empty", "days", &[], &[], Better::Higher),
        ] {
            let html = html.into_string();
            assert!(html.contains("No data yet."));
            assert!(!html.contains("<svg"));
        }
    }

    #[test]
    fn one_point_is_drawn_without_limits() {
        let points = [("2026-03-01".to_owned(), 42.0)];
        let html = spc_chart(
            "one",
            "One",
            "",
            &points,
            &[(0, "start".to_owned())],
            Better::Higher,
            None,
        )
        .into_string();
        let svg = svg_of(&html);
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert!(with_class(&document, "spc-limit").is_empty());
        assert!(with_class(&document, "spc-mean").is_empty());
        assert!(with_class(&document, "spc-data-line").is_empty());
        assert_eq!(with_class(&document, "spc-common").len(), 1 + 1);
        assert!(html.contains("Process limits need at least 2 points."));
        assert!(html.contains("1 point, 2026-03-01"));

        let run = run_chart("one", "One", "", &points, &[], Better::Higher).into_string();
        assert!(run.contains("Median 42"));
        roxmltree::Document::parse(&svg_of(&run)).expect("well-formed SVG");
    }

    #[test]
    fn a_constant_series_draws_flat_limits() {
        let points: Vec<(String, f64)> = (0..20).map(|i| (format!("w{i}"), 5.0)).collect();
        let html = spc_chart("flat", "Flat", "", &points, &[], Better::Higher, None).into_string();
        let svg = svg_of(&html);
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(with_class(&document, "spc-limit").len(), 2);
        assert_eq!(with_class(&document, "spc-common").len(), 20 + 1);
        assert!(html.contains("No special cause variation"));
        // The flat lines sit inside the plot, not on NaN coordinates.
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(
            html.matches("UPL").count(),
            0,
            "labels that would overlap the mean are left out"
        );
    }

    #[test]
    fn provisional_limits_are_called_so() {
        let points: Vec<(String, f64)> = waits().into_iter().take(5).collect();
        let html = spc_chart("few", "Few", "", &points, &[], Better::Higher, None).into_string();
        assert!(html.contains("These limits come from 5 points"));
        assert!(html.contains("(provisional)"));
    }

    #[test]
    fn large_and_broken_values_do_not_panic() {
        let big: Vec<(String, f64)> = [1.2e9, 3.4e9, 2.2e9, 5.9e9]
            .iter()
            .map(|v| ("q".to_owned(), *v))
            .collect();
        let html = run_chart("big", "Big", "£", &big, &[], Better::Higher).into_string();
        let svg = svg_of(&html);
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let ticks: Vec<&str> = document
            .descendants()
            .filter(|n| n.attribute("class") == Some("spc-y-ticks"))
            .flat_map(|g| g.children().filter_map(|t| t.text()))
            .collect();
        assert_eq!(
            ticks,
            [
                "1,000,000,000",
                "2,000,000,000",
                "3,000,000,000",
                "4,000,000,000",
                "5,000,000,000",
                "6,000,000,000"
            ]
        );

        let extreme = [("a".to_owned(), f64::MAX), ("b".to_owned(), -f64::MAX)];
        for html in [
            spc_chart("e", "E", "", &extreme, &[], Better::Higher, None),
            run_chart("e", "E", "", &extreme, &[], Better::Higher),
        ] {
            assert!(html.into_string().contains("the values are too large"));
        }
        let huge = [("a".to_owned(), 1e300), ("b".to_owned(), 1e300)];
        let html = spc_chart("h", "H", "", &huge, &[], Better::Higher, None).into_string();
        roxmltree::Document::parse(&svg_of(&html)).expect("well-formed SVG");
        let nan = [("a".to_owned(), 1.0), ("March".to_owned(), f64::INFINITY)];
        let html = run_chart("n", "N", "", &nan, &[], Better::Higher).into_string();
        assert!(html.contains("the value for March is not a number"));
    }

    #[test]
    fn long_series_show_the_most_recent_points() {
        let points: Vec<(String, f64)> = (0..MAX_CHART_POINTS + 5)
            .map(|i| (format!("p{i}"), (i % 7) as f64))
            .collect();
        // Annotation 2 falls before the points drawn; the last one on the
        // final point.
        let annotations = [
            (2, "early".to_owned()),
            (MAX_CHART_POINTS + 4, "late".to_owned()),
        ];
        let html = spc_chart(
            "long",
            "Long",
            "",
            &points,
            &annotations,
            Better::Higher,
            None,
        )
        .into_string();
        assert!(html.contains("Showing the most recent 520 of 525 points."));
        assert!(!html.contains("early"));
        assert!(html.contains("late"));
        assert!(!html.contains(">p4<") && html.contains(">p5<"));
    }

    #[test]
    fn ids_are_safe_and_distinct() {
        assert_eq!(Ids::new("waits").title(), "waits-title");
        assert_eq!(Ids::new("my chart\"<>").desc(), "my-chart----desc");
        assert_eq!(Ids::new("2026").title(), "chart-2026-title");
        assert_eq!(Ids::new("").title(), "chart--title");
    }

    #[test]
    fn ticks_are_rounded() {
        let scale = Scale::new(&[3.0, 97.0], 2).expect("a scale");
        assert_eq!(scale.ticks, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(scale.decimals, 0);
        let scale = Scale::new(&[0.12, 0.31], 2).expect("a scale");
        assert_eq!(scale.decimals, 2);
        assert_eq!(scale.ticks.len(), 6, "{:?}", scale.ticks);
        let flat = Scale::new(&[0.0, 0.0], 2).expect("a scale");
        assert!(flat.low < 0.0 && flat.high > 0.0);
        assert!(Scale::new(&[f64::MAX, -f64::MAX], 2).is_none());
        assert!(Scale::new(&[], 0).is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(1234567.891, 2), "1,234,567.89");
        assert_eq!(format_number(-1234.0, 0), "-1,234");
        assert_eq!(format_number(-0.0001, 2), "0.00");
        assert_eq!(format_number(999.0, 0), "999");
        assert_eq!(format_number(2.5e20, 0), "2.500e20");
        assert_eq!(format_number(f64::NAN, 0), "not a number");
        assert_eq!(value_decimals(12.0), 0);
        assert_eq!(value_decimals(0.1), 1);
        assert_eq!(value_decimals(12.345), 3);
        assert_eq!(decimals_for_step(0.1), 1);
        assert_eq!(decimals_for_step(0.05), 2);
        assert_eq!(decimals_for_step(20.0), 0);
        assert_eq!(shorten("2026-03-01T00:00", 12), "2026-03-01T…");
    }

    proptest! {
        #[test]
        fn any_series_renders_well_formed(
            points in prop::collection::vec(("\\PC{0,20}", any::<f64>()), 0..40),
            annotations in prop::collection::vec((0usize..45, "\\PC{0,30}"), 0..4),
        ) {
            for html in [
                spc_chart("p", "P", "u", &points, &annotations, Better::Lower, None),
                run_chart("p", "P", "u", &points, &annotations, Better::Higher),
            ] {
                let html = html.into_string();
                if html.contains("<svg") {
                    let svg = svg_of(&html);
                    prop_assert!(roxmltree::Document::parse(&svg).is_ok(), "{}", svg);
                    prop_assert!(!svg.contains("NaN"));
                }
            }
        }
    }
}
