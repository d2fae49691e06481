//! `[client]` and `[checks]`: how the harness's client behaves and how the
//! checks are tuned.

use std::time::Duration;

use serde::Deserialize;

/// `[client]`: how the harness's HTTP client behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// A header the app takes the client address from (behind a trusted
    /// proxy, e.g. `X-Forwarded-For`): each virtual user then sends its own
    /// documentation address, so per-client limits apply per virtual user.
    pub address_header: Option<String>,
    /// Per-request timeout in seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Headers sent with every request (an API gateway's key, e.g.
    /// `{ apikey = "..." }`); shown in evidence.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            address_header: None,
            timeout_secs: default_timeout(),
            headers: std::collections::BTreeMap::new(),
        }
    }
}

fn default_timeout() -> u64 {
    10
}

/// `[checks]`: tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// How long to wait for an email (default 5 s).
    #[serde(default = "default_mail_wait")]
    pub mail_wait_secs: f64,
    /// Parallel submits of one link (default 8).
    #[serde(default = "default_parallel")]
    pub parallel_submits: usize,
    /// Timed requests per identifier class in the first batch (default 25);
    /// more batches follow while the interval cannot decide, within
    /// `timing_budget_secs` and `timing_max_samples`.
    #[serde(default = "default_samples")]
    pub timing_samples: usize,
    /// Most timed requests per class (default 200).
    #[serde(default = "default_max_samples")]
    pub timing_max_samples: usize,
    /// Time the timing check may spend sampling (default 30 s).
    #[serde(default = "default_timing_budget")]
    pub timing_budget_secs: f64,
    /// Race trials of `parallel_submits` simultaneous submits (default 5).
    #[serde(default = "default_race_trials")]
    pub race_trials: usize,
    /// Warn when the slower class's median exceeds the faster one's by this
    /// factor (default 1.5).
    #[serde(default = "default_ratio")]
    pub timing_warn_ratio: f64,
    /// ... and their medians differ by at least this many milliseconds
    /// (default 0.5: below that, a few dozen samples on a shared machine
    /// cannot tell a difference from scheduling noise).
    #[serde(default = "default_min_difference")]
    pub timing_min_difference_ms: f64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            mail_wait_secs: default_mail_wait(),
            parallel_submits: default_parallel(),
            timing_samples: default_samples(),
            timing_max_samples: default_max_samples(),
            timing_budget_secs: default_timing_budget(),
            race_trials: default_race_trials(),
            timing_warn_ratio: default_ratio(),
            timing_min_difference_ms: default_min_difference(),
        }
    }
}

impl CheckSettings {
    /// [`mail_wait_secs`](Self::mail_wait_secs) as a duration.
    pub fn mail_wait(&self) -> Duration {
        Duration::from_secs_f64(self.mail_wait_secs)
    }
}

fn default_mail_wait() -> f64 {
    5.0
}
fn default_parallel() -> usize {
    8
}
fn default_samples() -> usize {
    25
}
fn default_max_samples() -> usize {
    200
}
fn default_timing_budget() -> f64 {
    30.0
}
fn default_race_trials() -> usize {
    5
}
fn default_ratio() -> f64 {
    1.5
}
fn default_min_difference() -> f64 {
    0.5
}
