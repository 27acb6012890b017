//! The CI gate: budgets and noise-aware regression checks over profiles.

pub mod policy;
pub mod rounds;
pub mod stats;
pub mod units;
pub mod verdict;

pub use policy::{Direction, Metric, Policy, Rule, Scope, Severity};
pub use verdict::{
    evaluate, read_profile, Check, CheckKind, CheckStatus, Decision, Extras, Verdict,
};
