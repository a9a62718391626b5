//! Statistical process control: the XmR (individuals) chart and the
//! special-cause rules of NHS England's "Making Data Count", so a quality
//! improvement measure can say whether a change is signal or noise.
//!
//! An XmR chart takes a time-ordered series of single values. Its centre
//! line is the mean; its spread is estimated from the mean moving range
//! (the mean absolute difference between neighbours): sigma is the mean
//! moving range divided by [`SIGMA_FROM_MEAN_MOVING_RANGE`] (1.128), and the
//! process limits are the mean ± 3 sigma, which is the mean ± 2.66 × mean
//! moving range. Four rules then look for special-cause variation:
//!
//! 1. [`Rule::Outside`]: a single point above the upper or below the lower
//!    process limit.
//! 2. [`Rule::TwoOfThree`]: two out of three consecutive points beyond
//!    2 sigma on the same side of the mean.
//! 3. [`Rule::Shift`]: [`SHIFT_MIN_POINTS`] (7) or more consecutive points
//!    all above, or all below, the mean.
//! 4. [`Rule::Trend`]: [`TREND_MIN_POINTS`] (7) or more consecutive points
//!    each strictly higher, or each strictly lower, than the one before.
//!
//! Whether a signal is an improvement or a concern depends on which way the
//! measure should go ([`Better`]).
//!
//! ```
//! # use gatehouse_node::query::spc::{self, Better, PointFlag, Rule, Side};
//! let waits_days = [9.0, 11.0, 10.0, 12.0, 10.0, 11.0, 9.0, 10.0, 11.0, 10.0, 25.0];
//! let analysis = spc::analyse(&waits_days, Better::Lower)?;
//! assert!(analysis.provisional, "11 points are fewer than Making Data Count advises");
//! let outside = &analysis.signals[0];
//! assert_eq!((outside.rule, outside.side, outside.points.as_slice()), (Rule::Outside, Side::High, &[10][..]));
//! assert_eq!(analysis.flags[10], PointFlag::Concern, "longer waits are worse");
//! # Ok::<(), spc::SpcError>(())
//! ```
//!
//! Invariants: the module is pure (no IO, no clock) and never panics. It
//! computes nothing from NaN or infinite values: [`try_limits`] and
//! [`analyse`] refuse them with [`SpcError::NonFinite`], [`limits`] returns
//! `None`, and [`signals`] finds no signal in a series that holds one.
//! Callers that want a chart despite a missing value drop it first, and say
//! so.

use std::fmt::Write as _;

use thiserror::Error;

/// The fewest points Making Data Count advises before process limits are
/// trusted (it prefers 20). Limits are still computed from fewer, down to
/// [`MIN_POINTS_FOR_ANY_LIMITS`], but [`Analysis::provisional`] says so and
/// a chart should too.
pub const MIN_POINTS_FOR_LIMITS: usize = 15;
/// The fewest points any limits can be computed from: one moving range
/// needs two points.
pub const MIN_POINTS_FOR_ANY_LIMITS: usize = 2;
/// The bias-correction constant d2 for moving ranges of two points: sigma
/// is the mean moving range divided by this.
pub const SIGMA_FROM_MEAN_MOVING_RANGE: f64 = 1.128;
/// How many sigma the process limits lie from the mean.
pub const PROCESS_LIMIT_SIGMAS: f64 = 3.0;
/// How many sigma from the mean a point must lie, strictly, to count
/// towards [`Rule::TwoOfThree`].
pub const NEAR_LIMIT_SIGMAS: f64 = 2.0;
/// The window [`Rule::TwoOfThree`] looks at: two points beyond 2 sigma
/// within this many consecutive points.
pub const TWO_OF_THREE_WINDOW_POINTS: usize = 3;
/// The shortest run of points on one side of the mean that is a
/// [`Rule::Shift`].
pub const SHIFT_MIN_POINTS: usize = 7;
/// The shortest run of strictly rising or strictly falling points that is
/// a [`Rule::Trend`].
pub const TREND_MIN_POINTS: usize = 7;

/// Which way a measure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Better {
    /// Higher values are better (for example, the share of patients seen
    /// within a target time).
    Higher,
    /// Lower values are better (for example, days waited, missed doses).
    Lower,
}

impl Better {
    /// "Higher is better" or "Lower is better".
    pub fn in_words(self) -> &'static str {
        match self {
            Better::Higher => "Higher is better",
            Better::Lower => "Lower is better",
        }
    }
}

/// Why no limits could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SpcError {
    /// Fewer than [`MIN_POINTS_FOR_ANY_LIMITS`] values: there is no moving
    /// range to estimate sigma from.
    #[error("process limits need at least 2 values, and there are {count}")]
    TooFewPoints {
        /// How many values there were.
        count: usize,
    },
    /// A value is NaN or infinite.
    #[error("value {index} (counting from 0) is not a finite number")]
    NonFinite {
        /// The index of the first such value.
        index: usize,
    },
    /// The values are so large that the mean, sigma or a limit does not fit
    /// in an `f64`.
    #[error("the values are too large for process limits to be computed")]
    Overflow,
}

/// The centre line and limits of an XmR chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The mean of the values: the centre line.
    pub mean: f64,
    /// The estimated standard deviation: the mean moving range divided by
    /// [`SIGMA_FROM_MEAN_MOVING_RANGE`]. Zero for a constant series.
    pub sigma: f64,
    /// The upper process limit: mean + 3 sigma.
    pub upper: f64,
    /// The lower process limit: mean − 3 sigma.
    pub lower: f64,
}

impl Limits {
    /// Limits with the given centre and sigma, the process limits
    /// [`PROCESS_LIMIT_SIGMAS`] sigma either side.
    pub fn from_mean_sigma(mean: f64, sigma: f64) -> Self {
        Limits {
            mean,
            sigma,
            upper: mean + PROCESS_LIMIT_SIGMAS * sigma,
            lower: mean - PROCESS_LIMIT_SIGMAS * sigma,
        }
    }

    /// The upper 2-sigma line: a point strictly above it counts towards
    /// [`Rule::TwoOfThree`].
    pub fn upper_two_sigma(&self) -> f64 {
        self.mean + NEAR_LIMIT_SIGMAS * self.sigma
    }

    /// The lower 2-sigma line: a point strictly below it counts towards
    /// [`Rule::TwoOfThree`].
    pub fn lower_two_sigma(&self) -> f64 {
        self.mean - NEAR_LIMIT_SIGMAS * self.sigma
    }

    /// Whether every line is a finite number.
    pub fn is_finite(&self) -> bool {
        [
            self.mean,
            self.sigma,
            self.upper,
            self.lower,
            self.upper_two_sigma(),
            self.lower_two_sigma(),
        ]
        .iter()
        .all(|line| line.is_finite())
    }
}

/// The XmR limits of `values`, or `None` when there are fewer than two
/// values, a value is not finite, or the limits overflow; see
/// [`try_limits`] for which.
///
/// Below [`MIN_POINTS_FOR_LIMITS`] the limits are computed all the same;
/// [`limits_are_provisional`] tells a chart to say they are provisional.
pub fn limits(values: &[f64]) -> Option<Limits> {
    try_limits(values).ok()
}

/// The XmR limits of `values`, or why there are none.
pub fn try_limits(values: &[f64]) -> Result<Limits, SpcError> {
    if let Some(index) = values.iter().position(|value| !value.is_finite()) {
        return Err(SpcError::NonFinite { index });
    }
    if values.len() < MIN_POINTS_FOR_ANY_LIMITS {
        return Err(SpcError::TooFewPoints {
            count: values.len(),
        });
    }
    let mean = mean(values).ok_or(SpcError::Overflow)?;
    let moving_ranges: Vec<f64> = values
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .collect();
    let mean_moving_range = mean_of_non_negative(&moving_ranges).ok_or(SpcError::Overflow)?;
    let limits = Limits::from_mean_sigma(mean, mean_moving_range / SIGMA_FROM_MEAN_MOVING_RANGE);
    if limits.is_finite() {
        Ok(limits)
    } else {
        Err(SpcError::Overflow)
    }
}

/// Whether limits computed from `point_count` points are provisional:
/// fewer than [`MIN_POINTS_FOR_LIMITS`].
pub fn limits_are_provisional(point_count: usize) -> bool {
    point_count < MIN_POINTS_FOR_LIMITS
}

/// The mean of finite values, kept within their range so that a constant
/// series has exactly its value as the mean (summing 0.1 twenty times is
/// not 2.0, and a mean a hair off would put every point on one side of
/// it). `None` when empty or when it does not fit in an `f64`.
fn mean(values: &[f64]) -> Option<f64> {
    let count = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let mean = if sum.is_finite() {
        sum / count
    } else {
        // The sum overflowed; the mean of the scaled values cannot.
        values.iter().map(|value| value / count).sum()
    };
    let lowest = values.iter().copied().reduce(f64::min)?;
    let highest = values.iter().copied().reduce(f64::max)?;
    let mean = mean.clamp(lowest, highest);
    mean.is_finite().then_some(mean)
}

/// The mean of non-negative values, `None` when empty or not finite.
fn mean_of_non_negative(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    mean.is_finite().then_some(mean)
}

/// The median of `values` (the run chart's centre line): the middle value,
/// or the mean of the middle two. `None` when empty or a value is not
/// finite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|value| !value.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(middle).copied()
    } else {
        let low = *sorted.get(middle - 1)?;
        let high = *sorted.get(middle)?;
        // Halve first so two huge values cannot overflow.
        Some(low / 2.0 + high / 2.0)
    }
}

/// A special-cause rule of Making Data Count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A single point above the upper or below the lower process limit.
    Outside,
    /// Two out of three consecutive points beyond 2 sigma on the same side
    /// of the mean (the third point may be anywhere).
    TwoOfThree,
    /// [`SHIFT_MIN_POINTS`] or more consecutive points all above, or all
    /// below, the mean. A point exactly on the mean ends the run.
    Shift,
    /// [`TREND_MIN_POINTS`] or more consecutive points each strictly higher,
    /// or each strictly lower, than the one before. An equal value ends the
    /// trend.
    Trend,
}

/// Which way a signal points.
///
/// [`Rule::Outside`], [`Rule::TwoOfThree`] and [`Rule::Shift`] signals are
/// [`Side::High`] or [`Side::Low`] (of the mean); [`Rule::Trend`] signals
/// are [`Side::Rising`] or [`Side::Falling`]. No other pairing is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Above the mean (or the upper limit).
    High,
    /// Below the mean (or the lower limit).
    Low,
    /// Each point higher than the one before.
    Rising,
    /// Each point lower than the one before.
    Falling,
}

impl Side {
    /// Whether movement this way is an improvement for a measure that is
    /// `better` one way.
    pub fn is_improvement(self, better: Better) -> bool {
        match self {
            Side::High | Side::Rising => better == Better::Higher,
            Side::Low | Side::Falling => better == Better::Lower,
        }
    }
}

/// One special-cause signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The rule that fired.
    pub rule: Rule,
    /// Which way it points.
    pub side: Side,
    /// The indexes (into the values, from 0) of the points it flags, in
    /// increasing order, never empty. For [`Rule::TwoOfThree`] these are
    /// only the points beyond 2 sigma, so they need not be consecutive.
    pub points: Vec<usize>,
    /// Whether it is an improvement (else a concern), given [`Better`].
    pub improvement: bool,
}

impl Signal {
    fn new(rule: Rule, side: Side, points: Vec<usize>, better: Better) -> Self {
        Signal {
            rule,
            side,
            points,
            improvement: side.is_improvement(better),
        }
    }

    /// What was seen, in words: "7 points in a row above the mean".
    pub fn rule_in_words(&self) -> String {
        let count = self.points.len();
        match (self.rule, self.side) {
            (Rule::Outside, Side::Low | Side::Falling) => {
                "a point below the lower process limit".to_owned()
            }
            (Rule::Outside, Side::High | Side::Rising) => {
                "a point above the upper process limit".to_owned()
            }
            (Rule::TwoOfThree, Side::Low | Side::Falling) => {
                format!("{count} points close to the lower limit (2 of 3 in a row beyond 2 sigma)")
            }
            (Rule::TwoOfThree, Side::High | Side::Rising) => {
                format!("{count} points close to the upper limit (2 of 3 in a row beyond 2 sigma)")
            }
            (Rule::Shift, Side::Low | Side::Falling) => {
                format!("{count} points in a row below the mean")
            }
            (Rule::Shift, Side::High | Side::Rising) => {
                format!("{count} points in a row above the mean")
            }
            (Rule::Trend, Side::Falling | Side::Low) => format!("{count} points in a row falling"),
            (Rule::Trend, Side::Rising | Side::High) => format!("{count} points in a row rising"),
        }
    }

    /// The points it flags, numbered from 1 as people count them: "point
    /// 4", "points 5–11", "points 2, 4–6".
    pub fn points_in_words(&self) -> String {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for &index in &self.points {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == index => *last = index,
                _ => ranges.push((index, index)),
            }
        }
        let mut words = String::from(if self.points.len() == 1 {
            "point "
        } else {
            "points "
        });
        for (position, (first, last)) in ranges.iter().enumerate() {
            if position > 0 {
                words.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = match last - first {
                0 => write!(words, "{}", first + 1),
                1 => write!(words, "{}, {}", first + 1, last + 1),
                _ => write!(words, "{}–{}", first + 1, last + 1),
            };
        }
        words
    }

    /// The whole signal in words: "7 points in a row above the mean,
    /// points 5–11: improvement".
    pub fn describe(&self) -> String {
        format!(
            "{}, {}: {}",
            self.rule_in_words(),
            self.points_in_words(),
            if self.improvement {
                "improvement"
            } else {
                "concern"
            }
        )
    }
}

/// The special-cause signals in `values` against `limits`, ordered by their
/// first point and then by [`Rule`].
///
/// Runs are maximal: a run of 9 points above the mean is one
/// [`Rule::Shift`] signal of 9 points, and each [`Rule::TwoOfThree`] signal
/// gathers the points beyond 2 sigma that share a window of three. Each
/// point outside the limits is its own [`Rule::Outside`] signal; a point
/// can be flagged by several rules.
///
/// Returns no signal when a value or a limit is not finite.
pub fn signals(values: &[f64], limits: &Limits, better: Better) -> Vec<Signal> {
    if !limits.is_finite() || values.iter().any(|value| !value.is_finite()) {
        return Vec::new();
    }
    let mut found = Vec::new();
    outside_limits(values, limits, better, &mut found);
    two_of_three(values, limits, better, &mut found);
    shifts(values, limits, better, &mut found);
    trends(values, better, &mut found);
    found.sort_by_key(|signal| (signal.points.first().copied(), signal.rule, signal.side));
    found
}

/// Rule 1: each point above the upper or below the lower limit.
fn outside_limits(values: &[f64], limits: &Limits, better: Better, found: &mut Vec<Signal>) {
    for (index, &value) in values.iter().enumerate() {
        if value > limits.upper {
            found.push(Signal::new(Rule::Outside, Side::High, vec![index], better));
        } else if value < limits.lower {
            found.push(Signal::new(Rule::Outside, Side::Low, vec![index], better));
        }
    }
}

/// Rule 2: a point beyond 2 sigma is flagged when another point beyond
/// 2 sigma on the same side lies within the same window of three, that is
/// at most two places away. Flagged points that share windows form one
/// signal.
fn two_of_three(values: &[f64], limits: &Limits, better: Better, found: &mut Vec<Signal>) {
    let reach = TWO_OF_THREE_WINDOW_POINTS - 1;
    let upper = limits.upper_two_sigma();
    let lower = limits.lower_two_sigma();
    for side in [Side::High, Side::Low] {
        let beyond: Vec<bool> = values
            .iter()
            .map(|&value| match side {
                Side::High => value > upper,
                _ => value < lower,
            })
            .collect();
        let mut group: Vec<usize> = Vec::new();
        for (index, _) in beyond.iter().enumerate().filter(|(_, beyond)| **beyond) {
            let window = index.saturating_sub(reach)..=index.saturating_add(reach);
            let partnered = window
                .filter(|&other| other != index)
                .any(|other| beyond.get(other).copied().unwrap_or(false));
            if !partnered {
                continue;
            }
            if group.last().is_some_and(|&last| index - last > reach) {
                found.push(Signal::new(
                    Rule::TwoOfThree,
                    side,
                    std::mem::take(&mut group),
                    better,
                ));
            }
            group.push(index);
        }
        if !group.is_empty() {
            found.push(Signal::new(Rule::TwoOfThree, side, group, better));
        }
    }
}

/// Rule 3: maximal runs of [`SHIFT_MIN_POINTS`] or more points strictly
/// on one side of the mean.
fn shifts(values: &[f64], limits: &Limits, better: Better, found: &mut Vec<Signal>) {
    let sides = values.iter().map(|&value| {
        if value > limits.mean {
            Some(Side::High)
        } else if value < limits.mean {
            Some(Side::Low)
        } else {
            None
        }
    });
    for (side, first, last) in runs(sides) {
        if last - first + 1 >= SHIFT_MIN_POINTS {
            found.push(Signal::new(
                Rule::Shift,
                side,
                (first..=last).collect(),
                better,
            ));
        }
    }
}

/// Rule 4: maximal runs of [`TREND_MIN_POINTS`] or more points, each
/// strictly above (or below) the one before.
fn trends(values: &[f64], better: Better, found: &mut Vec<Signal>) {
    // Step k is the move from point k to point k + 1.
    let steps = values.windows(2).map(|pair| {
        if pair[1] > pair[0] {
            Some(Side::Rising)
        } else if pair[1] < pair[0] {
            Some(Side::Falling)
        } else {
            None
        }
    });
    for (side, first_step, last_step) in runs(steps) {
        // Steps first..=last join points first..=last + 1.
        let (first, last) = (first_step, last_step + 1);
        if last - first + 1 >= TREND_MIN_POINTS {
            found.push(Signal::new(
                Rule::Trend,
                side,
                (first..=last).collect(),
                better,
            ));
        }
    }
}

/// The maximal runs of equal `Some` keys, as (key, first index, last
/// index); `None` belongs to no run.
fn runs<K: Copy + PartialEq>(keys: impl Iterator<Item = Option<K>>) -> Vec<(K, usize, usize)> {
    let mut runs: Vec<(K, usize, usize)> = Vec::new();
    let mut previous: Option<K> = None;
    for (index, key) in keys.enumerate() {
        match (key, runs.last_mut()) {
            (Some(key), Some((run_key, _, last))) if previous == Some(key) && *run_key == key => {
                *last = index;
            }
            (Some(key), _) => runs.push((key, index, index)),
            (None, _) => {}
        }
        previous = key;
    }
    runs
}

/// What a chart says about one point, with the Making Data Count colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointFlag {
    /// In no signal: common-cause variation (grey).
    CommonCause,
    /// In an improvement signal only (blue).
    Improvement,
    /// In a concern signal (orange), whether or not it is also in an
    /// improvement signal.
    Concern,
}

impl PointFlag {
    /// The flag in words: "common cause", "special cause — improvement",
    /// "special cause — concern".
    pub fn in_words(self) -> &'static str {
        match self {
            PointFlag::CommonCause => "common cause",
            PointFlag::Improvement => "special cause — improvement",
            PointFlag::Concern => "special cause — concern",
        }
    }
}

/// One flag per point of a series of `point_count` points, from its
/// `signals`.
///
/// A point in both an improvement and a concern signal (say, a rising
/// trend that is still below the mean, when higher is better) is flagged
/// [`PointFlag::Concern`]: a concern is never hidden behind an improvement
/// colour. Points a signal names beyond `point_count` are ignored.
pub fn point_flags(point_count: usize, signals: &[Signal]) -> Vec<PointFlag> {
    let mut flags = vec![PointFlag::CommonCause; point_count];
    for signal in signals {
        let flag = if signal.improvement {
            PointFlag::Improvement
        } else {
            PointFlag::Concern
        };
        for &index in &signal.points {
            if let Some(slot) = flags.get_mut(index) {
                *slot = (*slot).max(flag);
            }
        }
    }
    flags
}

/// Everything an XmR chart shows about a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The centre line and limits.
    pub limits: Limits,
    /// The special-cause signals, as [`signals`] orders them.
    pub signals: Vec<Signal>,
    /// One flag per value.
    pub flags: Vec<PointFlag>,
    /// Whether the limits come from fewer than [`MIN_POINTS_FOR_LIMITS`]
    /// points, so a chart should call them provisional.
    pub provisional: bool,
}

/// Limits, signals and point flags of `values` in one call.
pub fn analyse(values: &[f64], better: Better) -> Result<Analysis, SpcError> {
    let limits = try_limits(values)?;
    let signals = signals(values, &limits, better);
    let flags = point_flags(values.len(), &signals);
    Ok(Analysis {
        limits,
        signals,
        flags,
        provisional: limits_are_provisional(values.len()),
    })
}

/// [`analyse`] with the limits taken from a baseline: the first
/// `baseline` values (the period before the changes tested), all values
/// judged against them. Making Data Count's way of showing whether a change
/// moved the process: limits from every value would widen to take in the
/// very shift being looked for. `None`, or a baseline of fewer than 2 or
/// more than there are values, takes the limits from every value.
pub fn analyse_with_baseline(
    values: &[f64],
    baseline: Option<usize>,
    better: Better,
) -> Result<Analysis, SpcError> {
    let from = match baseline {
        Some(n) if n >= MIN_POINTS_FOR_ANY_LIMITS && n <= values.len() => n,
        _ => values.len(),
    };
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(SpcError::NonFinite { index });
    }
    let limits = try_limits(&values[..from])?;
    let signals = signals(values, &limits, better);
    let flags = point_flags(values.len(), &signals);
    Ok(Analysis {
        limits,
        signals,
        flags,
        provisional: limits_are_provisional(from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Mean 0, sigma 1: upper limit 3, 2-sigma lines ±2.
    fn unit_limits() -> Limits {
        Limits::from_mean_sigma(0.0, 1.0)
    }

    /// Limits wide enough that only shifts and trends can fire.
    fn wide_limits(mean: f64) -> Limits {
        Limits::from_mean_sigma(mean, 100.0)
    }

    fn summary(signals: &[Signal]) -> Vec<(Rule, Side, Vec<usize>)> {
        signals
            .iter()
            .map(|signal| (signal.rule, signal.side, signal.points.clone()))
            .collect()
    }

    fn close(left: f64, right: f64) -> bool {
        (left - right).abs() < 1e-9
    }

    #[test]
    fn a_baseline_judges_the_later_points_against_the_earlier_ones() {
        let values = [
            58.0, 61.0, 60.0, 59.0, 62.0, 60.0, 57.0, 61.0, 60.0, 59.0, 74.0, 76.0, 75.0, 77.0,
            73.0, 76.0, 75.0, 74.0, 78.0, 76.0,
        ];
        // Limits from all twenty call the first ten a concern too.
        let all = analyse(&values, Better::Higher).expect("analyse");
        assert!(all.flags[..10].contains(&PointFlag::Concern));
        // From the first ten, they are common cause and the rest improve.
        let based = analyse_with_baseline(&values, Some(10), Better::Higher).expect("analyse");
        assert!(close(based.limits.mean, 59.7));
        assert!(
            based.flags[..10]
                .iter()
                .all(|f| *f == PointFlag::CommonCause)
        );
        assert!(
            based.flags[10..]
                .iter()
                .all(|f| *f == PointFlag::Improvement)
        );
        assert!(
            based.provisional,
            "ten baseline points are fewer than fifteen"
        );
        assert!(based.signals.iter().all(|s| s.improvement));
        assert!(
            based
                .signals
                .iter()
                .any(|s| s.rule == Rule::Shift && s.points == (10..20).collect::<Vec<_>>())
        );
        // A baseline out of range takes every value.
        assert_eq!(
            analyse_with_baseline(&values, Some(1), Better::Higher).expect("analyse"),
            all
        );
        assert_eq!(
            analyse_with_baseline(&values, Some(21), Better::Higher).expect("analyse"),
            all
        );
    }

    #[test]
    fn limits_of_a_known_series() {
        // Moving ranges 1, 1, 1, 1: mean moving range 1.
        let limits = limits(&[1.0, 2.0, 3.0, 4.0, 5.0]).expect("five finite values");
        assert_eq!(limits.mean, 3.0);
        assert!(close(limits.sigma, 1.0 / 1.128));
        assert!(close(limits.upper, 3.0 + 3.0 / 1.128));
        assert!(close(limits.lower, 3.0 - 3.0 / 1.128));
        // The Making Data Count shorthand: mean ± 2.66 × mean moving range.
        assert!((limits.upper - (3.0 + 2.66)).abs() < 0.001);
        assert!(close(limits.upper_two_sigma(), 3.0 + 2.0 / 1.128));
        assert!(close(limits.lower_two_sigma(), 3.0 - 2.0 / 1.128));
    }

    #[test]
    fn no_limits_without_a_moving_range() {
        assert_eq!(limits(&[]), None);
        assert_eq!(limits(&[7.0]), None);
        assert_eq!(try_limits(&[7.0]), Err(SpcError::TooFewPoints { count: 1 }));
        assert!(limits(&[7.0, 8.0]).is_some());
    }

    #[test]
    fn non_finite_values_are_refused() {
        assert_eq!(
            try_limits(&[1.0, f64::NAN, 2.0]),
            Err(SpcError::NonFinite { index: 1 })
        );
        assert_eq!(
            try_limits(&[1.0, 2.0, f64::INFINITY]),
            Err(SpcError::NonFinite { index: 2 })
        );
        assert_eq!(
            try_limits(&[f64::NEG_INFINITY]),
            Err(SpcError::NonFinite { index: 0 })
        );
        assert_eq!(
            analyse(&[1.0, f64::NAN], Better::Higher),
            Err(SpcError::NonFinite { index: 1 })
        );
        assert!(signals(&[1.0, f64::NAN, 9.0], &unit_limits(), Better::Higher).is_empty());
        let broken = Limits::from_mean_sigma(f64::NAN, 1.0);
        assert!(signals(&[1.0, 2.0], &broken, Better::Higher).is_empty());
    }

    #[test]
    fn overflowing_limits_are_refused() {
        assert_eq!(try_limits(&[f64::MAX, -f64::MAX]), Err(SpcError::Overflow));
        // A huge but steady series has limits: its sum overflows, its mean
        // does not.
        let huge = try_limits(&[f64::MAX, f64::MAX, f64::MAX]).expect("mean fits");
        assert_eq!((huge.mean, huge.sigma), (f64::MAX, 0.0));
    }

    #[test]
    fn a_constant_series_has_zero_sigma_and_no_signal() {
        for value in [4.0, 0.1, -2.5, 0.0] {
            let values = [value; 20];
            let analysis = analyse(&values, Better::Higher).expect("20 finite values");
            assert_eq!(analysis.limits.mean, value);
            assert_eq!(analysis.limits.sigma, 0.0);
            assert_eq!(analysis.limits.upper, value);
            assert_eq!(analysis.limits.lower, value);
            assert!(
                analysis.signals.is_empty(),
                "{value}: {:?}",
                analysis.signals
            );
            assert!(analysis.flags.iter().all(|&f| f == PointFlag::CommonCause));
            assert!(!analysis.provisional);
        }
    }

    #[test]
    fn provisional_below_fifteen_points() {
        assert!(limits_are_provisional(14));
        assert!(!limits_are_provisional(15));
        let values: Vec<f64> = (0..14).map(|i| f64::from(i % 3)).collect();
        assert!(
            analyse(&values, Better::Higher)
                .expect("finite")
                .provisional
        );
    }

    #[test]
    fn outside_fires_only_beyond_the_limits() {
        // 3.0 sits on the upper limit: not outside.
        let values = [0.5, -0.5, 3.5, -0.5, 0.5, -4.0, 0.5, 3.0, -0.5, 0.5];
        assert_eq!(
            summary(&signals(&values, &unit_limits(), Better::Higher)),
            vec![
                (Rule::Outside, Side::High, vec![2]),
                (Rule::Outside, Side::Low, vec![5]),
            ]
        );
    }

    #[test]
    fn two_of_three_flags_the_points_beyond_two_sigma() {
        let values = [
            0.5, -0.5, // 0-1
            2.5, 0.1, 2.2, // 2-4: two of three above 2 sigma: flag 2 and 4
            -0.5, 0.5, -0.5, // 5-7
            2.5, -2.5, 0.5, // 8-10: opposite sides: nothing
            -0.5, 2.0, 2.5, // 11-13: 2.0 is on the line, not beyond: nothing
            -0.5, -2.5, 0.5, 0.5, -2.5, // 14-18: three apart: nothing
            0.5, -0.5,
        ];
        assert_eq!(
            summary(&signals(&values, &unit_limits(), Better::Higher)),
            vec![(Rule::TwoOfThree, Side::High, vec![2, 4])]
        );
    }

    #[test]
    fn two_of_three_merges_shared_windows_and_counts_points_outside() {
        // 0: outside and beyond 2 sigma; 2 partners it. 3, 4, 5 all below.
        let values = [3.5, 0.0, 2.5, -2.5, -2.6, -2.7, 0.5, -0.5];
        assert_eq!(
            summary(&signals(&values, &unit_limits(), Better::Higher)),
            vec![
                (Rule::Outside, Side::High, vec![0]),
                (Rule::TwoOfThree, Side::High, vec![0, 2]),
                (Rule::TwoOfThree, Side::Low, vec![3, 4, 5]),
            ]
        );
    }

    #[test]
    fn a_shift_needs_seven_points_not_six() {
        let values = [
            1.0, 2.0, 1.0, 2.0, 1.0, 2.0, // 0-5: six above
            -1.0, -2.0, -1.0, -2.0, -1.0, -2.0, -1.0, // 6-12: seven below
            1.0,
        ];
        assert_eq!(
            summary(&signals(&values, &wide_limits(0.0), Better::Higher)),
            vec![(Rule::Shift, Side::Low, (6..=12).collect())]
        );
    }

    #[test]
    fn a_point_on_the_mean_breaks_a_shift() {
        let values = [1.0, 2.0, 1.0, 0.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0];
        assert!(signals(&values, &wide_limits(0.0), Better::Higher).is_empty());
        // Without the point on the mean it is one run of ten.
        let mut unbroken = values;
        unbroken[3] = 2.0;
        assert_eq!(
            summary(&signals(&unbroken, &wide_limits(0.0), Better::Higher)),
            vec![(Rule::Shift, Side::High, (0..=9).collect())]
        );
    }

    #[test]
    fn a_trend_needs_seven_points_not_six() {
        // Around a mean of 4, so no shift: 0-6 rise (seven points), then
        // 6-11 fall (six points, sharing the peak).
        let values = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 6.5, 5.5, 4.5, 3.5, 2.5, 3.0,
        ];
        assert_eq!(
            summary(&signals(&values, &wide_limits(4.0), Better::Higher)),
            vec![(Rule::Trend, Side::Rising, (0..=6).collect())]
        );
    }

    #[test]
    fn an_equal_value_breaks_a_trend() {
        let values = [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        assert!(signals(&values, &wide_limits(4.0), Better::Higher).is_empty());
        let mut unbroken = values;
        unbroken[2] = 2.5;
        assert_eq!(
            summary(&signals(&unbroken, &wide_limits(4.0), Better::Higher)),
            vec![(Rule::Trend, Side::Rising, (0..=7).collect())]
        );
    }

    #[test]
    fn improvement_and_concern_follow_the_direction() {
        let cases = [
            (Side::High, Better::Higher, true),
            (Side::High, Better::Lower, false),
            (Side::Low, Better::Higher, false),
            (Side::Low, Better::Lower, true),
            (Side::Rising, Better::Higher, true),
            (Side::Rising, Better::Lower, false),
            (Side::Falling, Better::Higher, false),
            (Side::Falling, Better::Lower, true),
        ];
        for (side, better, improvement) in cases {
            assert_eq!(
                side.is_improvement(better),
                improvement,
                "{side:?} {better:?}"
            );
        }
        // A falling trend that crosses the mean: improvement when lower is
        // better, concern when higher is.
        let values = [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.5];
        for (better, flag) in [
            (Better::Lower, PointFlag::Improvement),
            (Better::Higher, PointFlag::Concern),
        ] {
            let found = signals(&values, &wide_limits(4.0), better);
            assert_eq!(
                summary(&found),
                vec![(Rule::Trend, Side::Falling, (0..=6).collect())]
            );
            let mut expected = vec![flag; 7];
            expected.push(PointFlag::CommonCause);
            assert_eq!(point_flags(values.len(), &found), expected);
        }
    }

    #[test]
    fn a_concern_outranks_an_improvement_on_the_same_point() {
        // Seven rising points, all below the mean: a rising trend
        // (improvement) and a shift below the mean (concern).
        let values = [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0];
        let found = signals(&values, &wide_limits(0.0), Better::Higher);
        assert_eq!(
            summary(&found),
            vec![
                (Rule::Shift, Side::Low, (0..=6).collect()),
                (Rule::Trend, Side::Rising, (0..=6).collect()),
            ]
        );
        assert_eq!(
            found.iter().map(|s| s.improvement).collect::<Vec<_>>(),
            vec![false, true]
        );
        assert_eq!(point_flags(7, &found), vec![PointFlag::Concern; 7]);
        // Indexes past the end are ignored, not a panic.
        assert_eq!(point_flags(3, &found), vec![PointFlag::Concern; 3]);
    }

    #[test]
    fn a_realistic_series_end_to_end() {
        // Twenty monthly waits in days, lower is better; the last seven
        // months after a change sit below the mean.
        let values = [
            12.0, 14.0, 13.0, 15.0, 12.0, 14.0, 13.0, 16.0, 12.0, 14.0, 13.0, 15.0, 14.0, 9.0,
            10.0, 9.0, 11.0, 10.0, 9.0, 10.0,
        ];
        let analysis = analyse(&values, Better::Lower).expect("finite");
        // Sum 245, mean 12.25; the 19 moving ranges sum to 36.
        assert!(close(analysis.limits.mean, 12.25));
        assert!(close(analysis.limits.sigma, 36.0 / 19.0 / 1.128));
        assert_eq!(
            summary(&analysis.signals),
            vec![(Rule::Shift, Side::Low, (13..=19).collect())]
        );
        assert!(analysis.signals[0].improvement);
        assert_eq!(
            analysis.signals[0].describe(),
            "7 points in a row below the mean, points 14–20: improvement"
        );
        let mut expected = vec![PointFlag::CommonCause; 13];
        expected.extend([PointFlag::Improvement; 7]);
        assert_eq!(analysis.flags, expected);
        assert!(!analysis.provisional);
    }

    #[test]
    fn signals_in_words() {
        let signal =
            |rule, side, points: Vec<usize>| Signal::new(rule, side, points, Better::Higher);
        assert_eq!(
            signal(Rule::Outside, Side::Low, vec![3]).describe(),
            "a point below the lower process limit, point 4: concern"
        );
        assert_eq!(
            signal(Rule::TwoOfThree, Side::High, vec![1, 3, 4, 5]).describe(),
            "4 points close to the upper limit (2 of 3 in a row beyond 2 sigma), \
             points 2, 4–6: improvement"
        );
        assert_eq!(
            signal(Rule::TwoOfThree, Side::High, vec![1, 2]).points_in_words(),
            "points 2, 3"
        );
        assert_eq!(
            signal(Rule::Trend, Side::Rising, (4..=10).collect()).rule_in_words(),
            "7 points in a row rising"
        );
        assert_eq!(
            PointFlag::Improvement.in_words(),
            "special cause — improvement"
        );
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
        assert_eq!(median(&[f64::MAX, f64::MAX]), Some(f64::MAX));
    }

    proptest! {
        #[test]
        fn signals_are_well_formed(
            values in prop::collection::vec(-1e6f64..1e6, 0..60),
            higher in any::<bool>(),
        ) {
            let better = if higher { Better::Higher } else { Better::Lower };
            let Ok(analysis) = analyse(&values, better) else {
                prop_assert!(values.len() < 2);
                return Ok(());
            };
            let limits = analysis.limits;
            prop_assert!(limits.lower <= limits.mean && limits.mean <= limits.upper);
            prop_assert_eq!(analysis.flags.len(), values.len());
            for signal in &analysis.signals {
                prop_assert!(!signal.points.is_empty());
                prop_assert!(signal.points.windows(2).all(|pair| pair[0] < pair[1]));
                prop_assert!(signal.points.iter().all(|&index| index < values.len()));
                prop_assert_eq!(signal.improvement, signal.side.is_improvement(better));
                let at = |index: usize| values[index];
                match signal.rule {
                    Rule::Outside => prop_assert_eq!(signal.points.len(), 1),
                    Rule::TwoOfThree => prop_assert!(signal.points.len() >= 2),
                    Rule::Shift => {
                        prop_assert!(signal.points.len() >= SHIFT_MIN_POINTS);
                        let one_side = signal.points.iter().all(|&i| match signal.side {
                            Side::High => at(i) > limits.mean,
                            _ => at(i) < limits.mean,
                        });
                        prop_assert!(one_side);
                    }
                    Rule::Trend => {
                        prop_assert!(signal.points.len() >= TREND_MIN_POINTS);
                        let monotonic = signal.points.windows(2).all(|pair| match signal.side {
                            Side::Rising => at(pair[1]) > at(pair[0]),
                            _ => at(pair[1]) < at(pair[0]),
                        });
                        prop_assert!(monotonic);
                    }
                }
                for &index in &signal.points {
                    prop_assert_ne!(analysis.flags[index], PointFlag::CommonCause);
                }
            }
        }
    }
}
