//! The measurement loop, generic over a [`Runner`] (the thing being measured).
//!
//! # Protocol
//!
//! For one configuration (one session, one set of bound inputs):
//!
//! 1. **Cold run.** The first run after session creation is timed on its own and reported
//!    as `first_run_s`: it pays for lazy allocation, kernel selection and cold caches, which
//!    is what a user's first query sees. It never enters the steady-state statistics.
//! 2. **Warm-up.** `warmup_iterations` runs are made and discarded.
//! 3. **Probe.** One more run estimates the per-run time `t`. The initial iteration count is
//!    `clamp(⌈min_time_s / t⌉, min_iterations, max_iterations)`.
//! 4. **Iterate.** Runs are collected in order. After each batch the loop computes the
//!    distribution-free 95% confidence interval of the median (see [`crate::stats`]) and the
//!    stability of the last three windows. It stops as **converged** once the interval's
//!    relative half-width is at most `target_ci_rel`, the last three windows agree within
//!    `stability_tolerance` (where there are enough samples to tell), at least
//!    `min_iterations` runs were made and at least `min_time_s` was measured. Otherwise the
//!    next batch is sized from the `1/√n` shrinkage of the interval (at most doubling the
//!    count), and the loop stops at `max_iterations` or once `max_time_s` of measured time
//!    has been spent (`min_iterations` wins over `max_time_s`).
//! 5. **Overhead.** The runner's calibrated timer overhead
//!    ([`Runner::timer_overhead_s`]) is subtracted from every sample (floored at zero).
//! 6. **Report, never hide.** A loop that stopped before converging, unstable windows,
//!    outliers (Tukey fences, mild and severe counted separately) and a slow first run are
//!    returned as [`Warning`]s next to the full statistics and the raw samples.
//!
//! Time bounds count *measured* time (the sum of samples), not wall time, so the loop is a
//! deterministic function of what the runner returns: the mock runner makes the protocol
//! testable without a clock. The real runner times only ONNX Runtime's `Run` with inputs
//! bound once, so measured and wall time differ by the harness overhead only (a few
//! hundred nanoseconds per call, measured in BENCHMARKS.md); the parent process enforces a
//! wall-clock timeout on top.

use std::fmt;

use super::schema::LatencyStats;
use crate::error::Result;
use crate::stats::{self, Summary};

/// The thing being measured: one call is one timed execution.
pub trait Runner {
    /// Run once and return the elapsed time of the measured region in seconds.
    fn run_once(&mut self) -> Result<f64>;

    /// Fixed cost of the timer itself, subtracted from every sample (seconds).
    fn timer_overhead_s(&mut self) -> f64 {
        0.0
    }
}

/// Settings of the measurement loop (from a plan).
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    pub warmup_iterations: u64,
    pub min_iterations: u64,
    pub max_iterations: u64,
    pub min_time_s: f64,
    pub max_time_s: f64,
    /// Target relative half-width of the median's confidence interval (0.01 = ±1%).
    pub target_ci_rel: f64,
    /// Allowed relative deviation of the last three window medians from their mean.
    pub stability_tolerance: f64,
    /// Confidence level of the median interval.
    pub confidence: f64,
    /// A first run this many times the steady median (and beyond the severe fence) is
    /// reported as slow.
    pub slow_first_run_ratio: f64,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            warmup_iterations: 5,
            min_iterations: 20,
            max_iterations: 10_000,
            min_time_s: 1.0,
            max_time_s: 10.0,
            target_ci_rel: 0.01,
            stability_tolerance: 0.05,
            confidence: 0.95,
            slow_first_run_ratio: 1.5,
        }
    }
}

/// Why the loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The interval is narrow enough and the windows agree.
    Converged,
    /// `max_iterations` reached first.
    MaxIterations,
    /// `max_time_s` of measured time spent first.
    MaxTime,
}

/// Something the reader of a result must know about.
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// The loop stopped before the median interval met its target.
    NotConverged {
        ci_rel: Option<f64>,
        target_ci_rel: f64,
        iterations: usize,
        stop: StopReason,
    },
    /// The last three windows disagreed by more than the tolerance.
    Unstable { spread: f64, tolerance: f64 },
    /// Too few samples to check stability.
    StabilityUnchecked { iterations: usize },
    /// Outliers by Tukey fences.
    Outliers {
        mild: usize,
        severe: usize,
        iterations: usize,
    },
    /// The cold first run was much slower than the steady state.
    SlowFirstRun { first_run_s: f64, ratio: f64 },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NotConverged {
                ci_rel,
                target_ci_rel,
                iterations,
                stop,
            } => {
                let why = match stop {
                    StopReason::MaxIterations => "max iterations",
                    StopReason::MaxTime => "max time",
                    StopReason::Converged => "stability",
                };
                match ci_rel {
                    Some(r) => write!(
                        f,
                        "median CI ±{:.2}% is wider than the target ±{:.2}% after {iterations} iterations (stopped at {why})",
                        r * 100.0,
                        target_ci_rel * 100.0
                    ),
                    None => write!(
                        f,
                        "too few iterations ({iterations}) for a 95% median CI (stopped at {why})"
                    ),
                }
            }
            Warning::Unstable { spread, tolerance } => write!(
                f,
                "unstable: the last 3 windows differ by up to {:.1}% (tolerance {:.1}%); the machine may be busy",
                spread * 100.0,
                tolerance * 100.0
            ),
            Warning::StabilityUnchecked { iterations } => write!(
                f,
                "stability not checked: {iterations} iterations are fewer than 3 windows of 3"
            ),
            Warning::Outliers {
                mild,
                severe,
                iterations,
            } => write!(
                f,
                "outliers: {mild} mild and {severe} severe of {iterations} runs (Tukey fences)"
            ),
            Warning::SlowFirstRun { first_run_s, ratio } => write!(
                f,
                "slow first run: {:.3} ms, {ratio:.1}x the steady median (cold caches, lazy allocation)",
                first_run_s * 1e3
            ),
        }
    }
}

/// The result of measuring one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub first_run_s: f64,
    pub probe_s: f64,
    /// Steady-state samples in measurement order, overhead subtracted.
    pub samples_s: Vec<f64>,
    pub summary: Summary,
    pub ci_rel: Option<f64>,
    pub stable: Option<bool>,
    pub stop: StopReason,
    /// Sum of the steady-state samples.
    pub measured_time_s: f64,
    pub warnings: Vec<Warning>,
}

impl Measurement {
    /// The schema's latency object (raw samples included).
    pub fn to_latency_stats(&self) -> LatencyStats {
        // With too few samples for a 95% interval, [min, max] is reported and flagged
        // through the NotConverged warning.
        LatencyStats::from_summary(
            &self.summary,
            self.ci_rel,
            self.stable.unwrap_or(false),
            self.samples_s.clone(),
        )
    }
}

/// Measure `runner` following the protocol in the module docs.
pub fn measure(runner: &mut dyn Runner, protocol: &Protocol) -> Result<Measurement> {
    measure_impl(runner, protocol, None)
}

/// Like [`measure`], for a runner whose cold first run already happened elsewhere (the
/// real runner makes it through the ordinary, unbound path before binding): step 1 of the
/// protocol is skipped and `first_run_s` is taken as given.
pub fn measure_after_cold(
    runner: &mut dyn Runner,
    protocol: &Protocol,
    first_run_s: f64,
) -> Result<Measurement> {
    measure_impl(runner, protocol, Some(first_run_s))
}

fn measure_impl(
    runner: &mut dyn Runner,
    protocol: &Protocol,
    cold_s: Option<f64>,
) -> Result<Measurement> {
    let p = protocol;
    let overhead = runner.timer_overhead_s().max(0.0);
    let timed = |r: &mut dyn Runner| -> Result<f64> { Ok((r.run_once()? - overhead).max(0.0)) };

    let first_run_s = match cold_s {
        Some(s) => s,
        None => timed(runner)?,
    };
    for _ in 0..p.warmup_iterations {
        timed(runner)?;
    }
    let probe_s = timed(runner)?;

    let min_n = p.min_iterations.max(1) as usize;
    let max_n = (p.max_iterations as usize).max(min_n);
    let per_run = probe_s.max(1e-9);
    let mut target_n = ((p.min_time_s / per_run).ceil() as usize).clamp(min_n, max_n);

    let mut samples: Vec<f64> = Vec::with_capacity(target_n);
    let mut measured = 0.0f64;
    let stop = loop {
        let mut hit_time = false;
        while samples.len() < target_n {
            let s = timed(runner)?;
            samples.push(s);
            measured += s;
            if measured >= p.max_time_s && samples.len() >= min_n {
                hit_time = true;
                break;
            }
        }
        let summary = Summary::of(&samples, p.confidence).expect("at least one sample");
        let ci_rel = summary.ci_rel();
        let stable = stability(&samples, p.stability_tolerance).map(|(ok, _)| ok);
        let ci_ok = ci_rel.is_some_and(|r| r <= p.target_ci_rel);
        let enough = samples.len() >= min_n && measured >= p.min_time_s;
        if ci_ok && stable != Some(false) && enough {
            break StopReason::Converged;
        }
        if samples.len() >= max_n {
            break StopReason::MaxIterations;
        }
        if hit_time || measured >= p.max_time_s {
            break StopReason::MaxTime;
        }
        // The interval shrinks like 1/sqrt(n): aim for the n that meets the target, grow
        // by at least a quarter (so an unstable run gets fresh windows) and at most double.
        let n = samples.len();
        let wanted = match ci_rel {
            Some(r) if r > p.target_ci_rel && p.target_ci_rel > 0.0 => {
                (n as f64 * (r / p.target_ci_rel).powi(2)).ceil() as usize
            }
            _ => n + n / 4,
        };
        let by_time = if measured < p.min_time_s {
            n + ((p.min_time_s - measured) / (measured / n as f64).max(1e-9)).ceil() as usize
        } else {
            0
        };
        target_n = wanted
            .max(by_time)
            .clamp(n + (n / 4).max(1), 2 * n + 1)
            .min(max_n);
    };

    let summary = Summary::of(&samples, p.confidence).expect("at least one sample");
    let ci_rel = summary.ci_rel();
    let stab = stability(&samples, p.stability_tolerance);
    let mut warnings = Vec::new();
    let ci_ok = ci_rel.is_some_and(|r| r <= p.target_ci_rel);
    if !ci_ok {
        warnings.push(Warning::NotConverged {
            ci_rel,
            target_ci_rel: p.target_ci_rel,
            iterations: samples.len(),
            stop,
        });
    }
    match stab {
        Some((false, spread)) => warnings.push(Warning::Unstable {
            spread,
            tolerance: p.stability_tolerance,
        }),
        None => warnings.push(Warning::StabilityUnchecked {
            iterations: samples.len(),
        }),
        Some((true, _)) => {}
    }
    let o = summary.outliers;
    // Any severe outlier, or mild ones above 5% of the runs, is worth a line; the counts
    // are always in the result either way.
    if o.severe() > 0 || o.mild() * 20 > samples.len() {
        warnings.push(Warning::Outliers {
            mild: o.mild(),
            severe: o.severe(),
            iterations: samples.len(),
        });
    }
    if let Some(ratio) = stats::slow_first_run(first_run_s, &samples, p.slow_first_run_ratio) {
        warnings.push(Warning::SlowFirstRun { first_run_s, ratio });
    }
    Ok(Measurement {
        first_run_s,
        probe_s,
        samples_s: samples,
        summary,
        ci_rel,
        stable: stab.map(|(ok, _)| ok),
        stop,
        measured_time_s: measured,
        warnings,
    })
}

/// `(stable, spread)` of the last three windows, `None` when there are too few samples.
fn stability(samples: &[f64], tolerance: f64) -> Option<(bool, f64)> {
    let w = stats::stability_window_len(samples.len())?;
    let spread = stats::last_windows_spread(samples, w)?;
    Some((spread <= tolerance, spread))
}

/// A deterministic runner for tests: returns a fixed sequence of times, cycling, and can be
/// told to fail at a given call.
#[derive(Clone, Debug)]
pub struct MockRunner {
    times_s: Vec<f64>,
    /// Time returned by the very first call (the cold run), if different.
    pub first_s: Option<f64>,
    /// Fail on this call index (0-based).
    pub fail_at: Option<usize>,
    /// Constant added to every returned time and reported as timer overhead.
    pub overhead_s: f64,
    calls: usize,
}

impl MockRunner {
    /// Cycle through `times_s` forever.
    pub fn cycle(times_s: Vec<f64>) -> Self {
        assert!(!times_s.is_empty(), "mock needs at least one time");
        MockRunner {
            times_s,
            first_s: None,
            fail_at: None,
            overhead_s: 0.0,
            calls: 0,
        }
    }

    /// Always the same time.
    pub fn constant(t_s: f64) -> Self {
        Self::cycle(vec![t_s])
    }

    /// How many times `run_once` was called.
    pub fn calls(&self) -> usize {
        self.calls
    }
}

impl Runner for MockRunner {
    fn run_once(&mut self) -> Result<f64> {
        let i = self.calls;
        self.calls += 1;
        if self.fail_at == Some(i) {
            return Err(crate::Error::Runtime(format!("mock failure at call {i}")));
        }
        let t = match (i, self.first_s) {
            (0, Some(f)) => f,
            _ => self.times_s[i % self.times_s.len()],
        };
        Ok(t + self.overhead_s)
    }

    fn timer_overhead_s(&mut self) -> f64 {
        self.overhead_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto() -> Protocol {
        Protocol {
            warmup_iterations: 3,
            min_iterations: 10,
            max_iterations: 1000,
            min_time_s: 0.05,
            max_time_s: 5.0,
            target_ci_rel: 0.01,
            stability_tolerance: 0.05,
            confidence: 0.95,
            slow_first_run_ratio: 1.5,
        }
    }

    #[test]
    fn constant_runner_converges_at_the_probe_sized_count() {
        let mut r = MockRunner::constant(0.001);
        let m = measure(&mut r, &proto()).unwrap();
        assert_eq!(m.stop, StopReason::Converged);
        // min_time 0.05 s / 1 ms per run = 50 runs, above min_iterations.
        assert_eq!(m.samples_s.len(), 50);
        // cold + warm-up + probe + samples
        assert_eq!(r.calls(), 1 + 3 + 1 + 50);
        assert_eq!(m.ci_rel, Some(0.0));
        assert_eq!(m.stable, Some(true));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let l = m.to_latency_stats();
        assert_eq!((l.p50_s, l.iterations, l.stable), (0.001, 50, true));
    }

    #[test]
    fn min_iterations_win_over_a_short_min_time() {
        let mut r = MockRunner::constant(1.0);
        let m = measure(&mut r, &proto()).unwrap();
        // 5 s max time, but min_iterations = 10 wins.
        assert_eq!(m.samples_s.len(), 10);
        assert_eq!(m.stop, StopReason::Converged);
    }

    #[test]
    fn noisy_runner_iterates_until_the_interval_is_narrow() {
        // A repeating pattern with ±10% spread: the order statistics around the median
        // need many samples before the interval is within ±1%.
        let pattern: Vec<f64> = (0..20).map(|i| 0.001 * (0.9 + 0.01 * i as f64)).collect();
        let mut r = MockRunner::cycle(pattern);
        let m = measure(&mut r, &proto()).unwrap();
        assert_eq!(m.stop, StopReason::Converged, "{:?}", m.warnings);
        assert!(m.ci_rel.unwrap() <= 0.01);
        assert!(m.samples_s.len() > 50);
    }

    #[test]
    fn time_bound_stops_and_warns_instead_of_hiding() {
        // Half the runs are 1 ms and half 2 ms: the median CI can never get narrow
        // around a bimodal midpoint, so the loop must stop at max_time and say so.
        let mut r = MockRunner::cycle(vec![0.001, 0.002]);
        let mut p = proto();
        p.max_time_s = 0.3;
        let m = measure(&mut r, &p).unwrap();
        assert_eq!(m.stop, StopReason::MaxTime);
        assert!(m.measured_time_s >= 0.3 && m.measured_time_s < 0.31);
        assert!(
            m.warnings.iter().any(|w| matches!(
                w,
                Warning::NotConverged {
                    stop: StopReason::MaxTime,
                    ..
                }
            )),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn max_iterations_bound_the_loop() {
        let mut r = MockRunner::cycle(vec![0.001, 0.002]);
        let mut p = proto();
        p.max_iterations = 64;
        let m = measure(&mut r, &p).unwrap();
        assert_eq!(m.stop, StopReason::MaxIterations);
        assert_eq!(m.samples_s.len(), 64);
    }

    #[test]
    fn slow_first_run_is_reported_and_kept_out_of_the_samples() {
        let mut r = MockRunner::constant(0.001);
        r.first_s = Some(0.05);
        let m = measure(&mut r, &proto()).unwrap();
        assert_eq!(m.first_run_s, 0.05);
        assert_eq!(m.summary.max, 0.001);
        assert!(m.warnings.iter().any(
            |w| matches!(w, Warning::SlowFirstRun { ratio, .. } if (*ratio - 50.0).abs() < 1e-9)
        ));
        assert!(m.warnings[0].to_string().contains("slow first run"));
    }

    #[test]
    fn level_shift_is_reported_as_unstable() {
        // The last third of the samples is 20% slower: the CI of the median may still
        // be narrow, but the windows disagree, so it is neither converged nor hidden.
        let mut times = vec![0.001; 40];
        times.extend(vec![0.0012; 20]);
        let mut r = MockRunner::cycle(times);
        let mut p = proto();
        p.warmup_iterations = 0;
        p.min_time_s = 0.0;
        p.min_iterations = 59; // cold + probe shift the cycle by 2
        p.max_iterations = 59;
        let m = measure(&mut r, &p).unwrap();
        assert_eq!(m.stable, Some(false));
        assert!(m
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::Unstable { .. })));
        assert_eq!(m.stop, StopReason::MaxIterations);
    }

    #[test]
    fn outliers_are_counted_and_warned() {
        let mut times = vec![0.001; 99];
        times.push(0.01);
        let mut r = MockRunner::cycle(times);
        let mut p = proto();
        p.min_iterations = 200;
        let m = measure(&mut r, &p).unwrap();
        assert!(m.summary.outliers.severe() >= 1);
        assert!(m
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::Outliers { .. })));
        let l = m.to_latency_stats();
        assert_eq!(l.outliers_severe, m.summary.outliers.severe() as u64);
    }

    #[test]
    fn cold_run_measured_elsewhere_is_not_repeated() {
        let mut r = MockRunner::constant(0.001);
        let m = measure_after_cold(&mut r, &proto(), 0.01).unwrap();
        assert_eq!(m.first_run_s, 0.01);
        assert_eq!(r.calls(), 3 + 1 + 50);
        assert!(m
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::SlowFirstRun { .. })));
    }

    #[test]
    fn timer_overhead_is_subtracted() {
        let mut r = MockRunner::constant(0.001);
        r.overhead_s = 0.0005;
        let m = measure(&mut r, &proto()).unwrap();
        assert!((m.summary.p50 - 0.001).abs() < 1e-12);
    }

    #[test]
    fn runner_errors_propagate() {
        let mut r = MockRunner::constant(0.001);
        r.fail_at = Some(7);
        let e = measure(&mut r, &proto()).unwrap_err();
        assert!(e.to_string().contains("mock failure at call 7"), "{e}");
    }

    #[test]
    fn too_few_samples_report_min_max_interval_and_warn() {
        let mut r = MockRunner::cycle(vec![0.001, 0.002, 0.003]);
        let mut p = proto();
        p.min_iterations = 3;
        p.max_iterations = 3;
        let m = measure(&mut r, &p).unwrap();
        assert_eq!(m.ci_rel, None);
        let l = m.to_latency_stats();
        assert_eq!((l.p50_ci_low_s, l.p50_ci_high_s), (l.min_s, l.max_s));
        assert!(m
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::NotConverged { ci_rel: None, .. })));
        assert!(m
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::StabilityUnchecked { .. })));
    }
}
