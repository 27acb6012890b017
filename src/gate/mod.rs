//! The CI gate: budgets and noise-aware regression checks over profiles.
//!
//! A [`Policy`] (strict TOML, see [`policy`]) names metrics with absolute budgets and a
//! tolerated regression; [`evaluate`] applies it to a current profile and, for
//! regressions, a baseline profile, and returns a [`Verdict`]: a failed gate is a value,
//! not an error. The CLI maps the verdict's [`Decision`] to the exit status: 0 pass,
//! 1 fail, 3 inconclusive (too noisy to decide); errors (a different model, a baseline
//! missing configurations, a bad policy) are exit status 2.
//!
//! Timings are never judged on a single number: latency budgets use the confidence
//! interval of the latency, regressions a seeded bootstrap interval of the ratio of
//! candidate to baseline medians ([`crate::stats`]), over interleaved rounds when the two models
//! were measured side by side ([`rounds`], `edgepack gate --remeasure`).
//!
//! ```
//! use edgepack::gate::{Metric, Policy};
//! let policy = Policy::from_toml(
//!     "[metrics.p50_latency]\nmax_regression = \"5%\"\n[metrics.peak_memory]\nmax = \"300MB\"\n",
//! ).unwrap();
//! assert_eq!(policy.rules[&Metric::P50Latency].max_regression, Some(0.05));
//! assert_eq!(policy.rules[&Metric::PeakMemory].max, Some(300e6));
//! assert!(Policy::from_toml("[metrics.p99_latency]\nmax = 1\n").is_err());
//! ```

pub mod policy;
pub mod remeasure;
pub mod rounds;
pub mod verdict;

pub use policy::{Direction, Metric, Policy, Rule, Scope, Severity};
pub use verdict::{
    evaluate, read_profile, Check, CheckKind, CheckStatus, Decision, Extras, Verdict,
};
