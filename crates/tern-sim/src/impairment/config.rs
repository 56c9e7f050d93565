//! The model: what one direction of an impaired path does, as plain values.

use std::time::Duration;

use thiserror::Error;

/// Default bound of the serialisation queue when a `rate` is set: 64 KiB.
pub const DEFAULT_QUEUE_LIMIT: usize = 64 * 1024;

/// Default extra hold of a reordered datagram: 20 ms.
pub const DEFAULT_REORDER_DELAY: Duration = Duration::from_millis(20);

/// Shape of the jitter added to the base delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitterDist {
    /// Uniform in `[-jitter, +jitter]`.
    #[default]
    Uniform,
    /// Normal with standard deviation `jitter`, truncated at ±3σ.
    Normal,
}

/// Parameters of the Gilbert–Elliott two-state bursty loss model.
///
/// In steady state the chain is bad a fraction
/// `p_good_to_bad / (p_good_to_bad + p_bad_to_good)` of the time, and a bad
/// period lasts `1 / p_bad_to_good` datagrams on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability, per datagram, of moving from the good to the bad state.
    pub p_good_to_bad: f64,
    /// Probability, per datagram, of moving from the bad to the good state.
    pub p_bad_to_good: f64,
    /// Loss probability while in the good state (default 0).
    pub loss_good: f64,
    /// Loss probability while in the bad state (default 1).
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The classic Gilbert model: no loss when good, every datagram lost when bad.
    pub fn new(p_good_to_bad: f64, p_bad_to_good: f64) -> Self {
        GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// Long-run fraction of datagrams lost by this chain alone.
    pub fn steady_state_loss(&self) -> f64 {
        let denom = self.p_good_to_bad + self.p_bad_to_good;
        if denom == 0.0 {
            return self.loss_good;
        }
        let bad = self.p_good_to_bad / denom;
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// A half-open window `[start, end)` of virtual time in which every datagram is
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    /// First instant of the outage.
    pub start: Duration,
    /// First instant after the outage.
    pub end: Duration,
}

impl Blackout {
    /// Whether the instant `now_us` (µs since the origin) lies in the window.
    pub fn contains(&self, now_us: u64) -> bool {
        let start = as_us(self.start);
        let end = as_us(self.end);
        now_us >= start && now_us < end
    }
}

/// Configuration of one direction of an impaired path.
///
/// [`Default`] is a perfect network: no loss, no delay, unlimited rate.
/// Fields are public; [`Impairment::parse`] builds one from a compact spec
/// string (see its [`FromStr`](std::str::FromStr) impl in `spec.rs` for the
/// grammar) and [`Display`](std::fmt::Display) writes the canonical spec back.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// Probability of independent random loss, `0..=1`.
    pub loss: f64,
    /// Optional bursty loss (applied in addition to `loss`).
    pub burst: Option<GilbertElliott>,
    /// Base one-way propagation delay.
    pub delay: Duration,
    /// Jitter amplitude (uniform half-width or normal σ).
    pub jitter: Duration,
    /// Shape of the jitter.
    pub jitter_dist: JitterDist,
    /// Probability a datagram is held back so later ones overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Probability a datagram is delivered twice.
    pub dup: f64,
    /// Probability a delivered copy is damaged.
    pub corrupt: f64,
    /// Bottleneck rate in bytes per second (`None` = unlimited).
    pub rate: Option<u64>,
    /// Bound, in bytes, of the bottleneck queue (used only with `rate`).
    pub queue_limit: usize,
    /// Outage windows, relative to the driver's time origin.
    pub blackouts: Vec<Blackout>,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss: 0.0,
            burst: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_dist: JitterDist::Uniform,
            reorder: 0.0,
            reorder_delay: DEFAULT_REORDER_DELAY,
            dup: 0.0,
            corrupt: 0.0,
            rate: None,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            blackouts: Vec::new(),
        }
    }
}

impl Impairment {
    /// A perfect network (same as [`Default`]).
    pub fn perfect() -> Self {
        Self::default()
    }

    /// Parse a compact spec such as
    /// `"loss=0.1,burst=0.05:0.3,delay=50ms,jitter=10ms,rate=1mbps"`.
    pub fn parse(spec: &str) -> Result<Self, ImpairmentError> {
        spec.parse()
    }

    /// Whether this configuration leaves every datagram untouched and undelayed.
    pub fn is_perfect(&self) -> bool {
        self.loss == 0.0
            && self.burst.is_none()
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder == 0.0
            && self.dup == 0.0
            && self.corrupt == 0.0
            && self.rate.is_none()
            && self.blackouts.is_empty()
    }

    /// Check every field is in range (probabilities in `0..=1`, a non-zero
    /// rate and queue, non-empty blackout windows).
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        check_prob("loss", self.loss)?;
        if let Some(ge) = &self.burst {
            check_prob("burst", ge.p_good_to_bad)?;
            check_prob("burst", ge.p_bad_to_good)?;
            check_prob("burst", ge.loss_good)?;
            check_prob("burst", ge.loss_bad)?;
        }
        check_prob("reorder", self.reorder)?;
        check_prob("dup", self.dup)?;
        check_prob("corrupt", self.corrupt)?;
        if self.rate == Some(0) {
            return Err(ImpairmentError::Invalid {
                key: "rate",
                reason: "must be greater than zero",
            });
        }
        if self.queue_limit == 0 {
            return Err(ImpairmentError::Invalid {
                key: "queue",
                reason: "must be greater than zero",
            });
        }
        for b in &self.blackouts {
            if b.end <= b.start {
                return Err(ImpairmentError::Invalid {
                    key: "blackout",
                    reason: "window end must be after its start",
                });
            }
        }
        Ok(())
    }
}

fn check_prob(key: &'static str, p: f64) -> Result<(), ImpairmentError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(ImpairmentError::Invalid {
            key,
            reason: "probability must be within 0..=1",
        })
    }
}

/// A bad spec string or an out-of-range configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImpairmentError {
    /// An item is not of the form `key=value`.
    #[error("`{0}`: expected key=value")]
    Syntax(String),
    /// The key is not one of the known ones.
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    /// The key appears twice (only `blackout` may repeat).
    #[error("key `{0}` given more than once")]
    DuplicateKey(String),
    /// A value could not be parsed.
    #[error("{key}: bad value `{value}`: expected {expected}")]
    BadValue {
        /// The key whose value is bad.
        key: String,
        /// The offending text.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// The value parsed but is out of range.
    #[error("{key}: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
}

/// A duration in whole microseconds, saturating.
pub(super) fn as_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
