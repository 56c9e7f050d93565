//! Seeded network impairment model.
//!
//! A [`Link`] models one direction of a lossy path. Hand it a datagram and the
//! current virtual time; it answers with the copies that come out of the far
//! end and when ([`Outcomes`]; none means the datagram was dropped). It is pure:
//! no I/O, no clock, no async runtime. The same configuration, seed and inputs
//! always give the same outcomes, so a failing simulation or lab run can be
//! replayed from its seed.
//!
//! # Time
//!
//! Time is a `u64` count of **microseconds since an arbitrary origin** chosen by
//! the driver (the simulator's virtual clock, or the proxy's start instant).
//! Blackout windows are expressed against the same origin. Callers must pass a
//! non-decreasing `now_us`; the configuration itself uses [`Duration`]s.
//!
//! # What happens to a datagram, in order
//!
//! 1. `sent` is counted.
//! 2. The Gilbert–Elliott chain (if `burst` is set) takes one step: in the good
//!    state it moves to bad with `p_good_to_bad`, in the bad state back to good
//!    with `p_bad_to_good`; then the datagram is lost with the new state's loss
//!    probability.
//! 3. Inside a blackout window the datagram is dropped (`dropped_blackout`);
//!    otherwise a burst loss from step 2 drops it (`dropped_burst`); otherwise
//!    it is dropped with probability `loss` (`dropped_random`).
//! 4. With a `rate` cap the datagram joins a FIFO serialisation queue: it leaves
//!    when every byte queued before it, and then its own bytes, have been sent
//!    at `rate` bytes/s. If the bytes already waiting plus its own would exceed
//!    `queue_limit`, it is dropped (`dropped_queue`); a datagram reaching an
//!    empty queue is always admitted.
//! 5. It then takes `delay` plus a jitter sample (uniform in `±jitter`, or
//!    normal with σ = `jitter` truncated at ±3σ; the total is never negative).
//!    Jitter alone never reorders: a datagram is never delivered before the one
//!    sent before it (like a real FIFO path). With probability `reorder` the
//!    datagram is instead held back `reorder_delay` longer and escapes that
//!    FIFO rule, so later datagrams overtake it (`reordered`).
//! 6. With probability `corrupt` the delivered bytes are damaged (`corrupted`):
//!    three times in four, 1–3 distinct random bits are flipped; otherwise the
//!    datagram is truncated to a random shorter length (possibly empty). An
//!    empty datagram cannot be corrupted and is delivered as is.
//! 7. With probability `dup` a second copy is delivered (`duplicated`). It was
//!    copied after the bottleneck queue, takes its own delay sample (no FIFO
//!    rule, no reorder hold), and may be corrupted independently.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
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
/// string (see [`FromStr`] below for the grammar) and [`fmt::Display`] writes
/// the canonical spec back.
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

fn bad(key: &str, value: &str, expected: &'static str) -> ImpairmentError {
    ImpairmentError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// Parse a probability: `0.1`, `.1` or `10%`.
pub fn parse_probability(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    let v = v / scale;
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

fn split_number(s: &str) -> (&str, &str) {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..idx], s[idx..].trim())
}

fn parse_decimal(num: &str) -> Option<f64> {
    if num.is_empty() || num == "." {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Parse a duration with a mandatory unit: `250us` (or `µs`), `50ms`, `1.5s`,
/// `2m` (or `min`), `1h`. Resolution is one microsecond.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = split_number(s.trim());
    let v = parse_decimal(num)?;
    let us_per_unit: f64 = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    let us = (v * us_per_unit).round();
    (us < u64::MAX as f64).then(|| Duration::from_micros(us as u64))
}

/// Parse a rate into bytes per second. Bits per second (decimal SI, any case):
/// `bps`, `kbps`, `mbps`, `gbps` (also `bit`, `kbit`, `mbit`, `gbit`). Bytes per
/// second (case as written): `B/s`, `kB/s` or `KB/s`, `MB/s`, `GB/s`; a bare
/// number is bytes per second too.
pub fn parse_rate(s: &str) -> Option<u64> {
    let (num, unit) = split_number(s.trim());
    let v = parse_decimal(num)?;
    let bytes_per_sec = match unit {
        "" | "B/s" => v,
        "kB/s" | "KB/s" => v * 1e3,
        "MB/s" => v * 1e6,
        "GB/s" => v * 1e9,
        u => {
            let bits = match u.to_ascii_lowercase().as_str() {
                "bps" | "bit" => 1.0,
                "kbps" | "kbit" => 1e3,
                "mbps" | "mbit" => 1e6,
                "gbps" | "gbit" => 1e9,
                _ => return None,
            };
            v * bits / 8.0
        }
    };
    let r = bytes_per_sec.round();
    (r >= 1.0 && r < u64::MAX as f64).then_some(r as u64)
}

/// Parse a size in bytes: a bare number or `B`, `KB`/`kB` (1000), `KiB` (1024),
/// `MB` (10^6), `MiB` (2^20).
pub fn parse_size(s: &str) -> Option<usize> {
    let (num, unit) = split_number(s.trim());
    let v = parse_decimal(num)?;
    let mult = match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        _ => return None,
    };
    let b = (v * mult).round();
    (b < usize::MAX as f64).then_some(b as usize)
}

fn parse_prob_for(key: &str, s: &str) -> Result<f64, ImpairmentError> {
    parse_probability(s).ok_or_else(|| bad(key, s, "a probability in 0..=1 or a percentage"))
}

fn parse_dur_for(key: &str, s: &str) -> Result<Duration, ImpairmentError> {
    parse_duration(s).ok_or_else(|| bad(key, s, "a duration with a unit (us, ms, s, m, h)"))
}

/// The spec grammar (whitespace around items is ignored; an empty spec or
/// `none` is a perfect network):
///
/// ```text
/// spec    = "" | "none" | item *("," item)
/// item    = "loss=" PROB
///         | "burst=" PROB ":" PROB [":" PROB [":" PROB]]   ; g→b : b→g [: loss_bad [: loss_good]]
///         | "delay=" DUR
///         | "jitter=" DUR [":" ("uniform" | "normal")]
///         | "reorder=" PROB [":" DUR]                      ; extra hold, default 20ms
///         | "dup=" PROB
///         | "corrupt=" PROB
///         | "rate=" RATE
///         | "queue=" SIZE                                  ; default 64KiB
///         | "blackout=" DUR "-" DUR                        ; repeatable
/// PROB    = decimal in 0..=1, or a percentage like "10%"
/// DUR     = decimal with unit us|µs|ms|s|m|min|h
/// RATE    = decimal with unit bps|kbps|mbps|gbps (bits/s) or B/s|kB/s|MB/s|GB/s
/// SIZE    = decimal bytes, optionally B|KB|kB|KiB|MB|MiB
/// ```
impl FromStr for Impairment {
    type Err = ImpairmentError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut cfg = Impairment::default();
        let spec = spec.trim();
        if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
            return Ok(cfg);
        }
        let mut seen: Vec<String> = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ImpairmentError::Syntax(item.to_string()))?;
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if key.is_empty() || value.is_empty() {
                return Err(ImpairmentError::Syntax(item.to_string()));
            }
            if key != "blackout" {
                if seen.contains(&key) {
                    return Err(ImpairmentError::DuplicateKey(key));
                }
                seen.push(key.clone());
            }
            match key.as_str() {
                "loss" => cfg.loss = parse_prob_for(&key, value)?,
                "burst" => {
                    let parts: Vec<&str> = value.split(':').collect();
                    if !(2..=4).contains(&parts.len()) {
                        return Err(bad(
                            &key,
                            value,
                            "P_GOOD_TO_BAD:P_BAD_TO_GOOD[:LOSS_BAD[:LOSS_GOOD]]",
                        ));
                    }
                    let mut ge = GilbertElliott::new(
                        parse_prob_for(&key, parts[0])?,
                        parse_prob_for(&key, parts[1])?,
                    );
                    if let Some(p) = parts.get(2) {
                        ge.loss_bad = parse_prob_for(&key, p)?;
                    }
                    if let Some(p) = parts.get(3) {
                        ge.loss_good = parse_prob_for(&key, p)?;
                    }
                    cfg.burst = Some(ge);
                }
                "delay" => cfg.delay = parse_dur_for(&key, value)?,
                "jitter" => {
                    let (d, dist) = match value.split_once(':') {
                        Some((d, dist)) => (d, Some(dist.trim())),
                        None => (value, None),
                    };
                    cfg.jitter = parse_dur_for(&key, d)?;
                    cfg.jitter_dist = match dist {
                        None | Some("uniform") => JitterDist::Uniform,
                        Some("normal") => JitterDist::Normal,
                        Some(other) => return Err(bad(&key, other, "`uniform` or `normal`")),
                    };
                }
                "reorder" => {
                    let (p, d) = match value.split_once(':') {
                        Some((p, d)) => (p, Some(d)),
                        None => (value, None),
                    };
                    cfg.reorder = parse_prob_for(&key, p)?;
                    if let Some(d) = d {
                        cfg.reorder_delay = parse_dur_for(&key, d)?;
                    }
                }
                "dup" => cfg.dup = parse_prob_for(&key, value)?,
                "corrupt" => cfg.corrupt = parse_prob_for(&key, value)?,
                "rate" => {
                    cfg.rate = Some(parse_rate(value).ok_or_else(|| {
                        bad(&key, value, "a positive rate like 1mbps, 500kbps or 64KB/s")
                    })?)
                }
                "queue" => {
                    cfg.queue_limit = parse_size(value)
                        .filter(|&q| q > 0)
                        .ok_or_else(|| bad(&key, value, "a positive size like 64KiB"))?
                }
                "blackout" => {
                    let (a, b) = value
                        .split_once('-')
                        .ok_or_else(|| bad(&key, value, "START-END like 10s-12s"))?;
                    let start = parse_dur_for(&key, a)?;
                    let end = parse_dur_for(&key, b)?;
                    cfg.blackouts.push(Blackout { start, end });
                }
                _ => return Err(ImpairmentError::UnknownKey(key)),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn fmt_duration(d: Duration) -> String {
    let us = as_us(d);
    let (ms, us_rem) = (us / 1_000, us % 1_000);
    let (secs, ms_rem) = (ms / 1_000, ms % 1_000);
    if us == 0 {
        "0ms".to_string()
    } else if us_rem != 0 {
        format!("{us}us")
    } else if ms_rem != 0 {
        format!("{ms}ms")
    } else {
        format!("{secs}s")
    }
}

/// Writes the canonical spec string; parsing it gives back an equal value
/// (up to microsecond resolution).
impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if self.loss != 0.0 {
            items.push(format!("loss={}", self.loss));
        }
        if let Some(ge) = &self.burst {
            let mut s = format!("burst={}:{}", ge.p_good_to_bad, ge.p_bad_to_good);
            if ge.loss_bad != 1.0 || ge.loss_good != 0.0 {
                s.push_str(&format!(":{}", ge.loss_bad));
            }
            if ge.loss_good != 0.0 {
                s.push_str(&format!(":{}", ge.loss_good));
            }
            items.push(s);
        }
        if !self.delay.is_zero() {
            items.push(format!("delay={}", fmt_duration(self.delay)));
        }
        if !self.jitter.is_zero() || self.jitter_dist != JitterDist::Uniform {
            let mut s = format!("jitter={}", fmt_duration(self.jitter));
            if self.jitter_dist == JitterDist::Normal {
                s.push_str(":normal");
            }
            items.push(s);
        }
        if self.reorder != 0.0 || self.reorder_delay != DEFAULT_REORDER_DELAY {
            items.push(format!(
                "reorder={}:{}",
                self.reorder,
                fmt_duration(self.reorder_delay)
            ));
        }
        if self.dup != 0.0 {
            items.push(format!("dup={}", self.dup));
        }
        if self.corrupt != 0.0 {
            items.push(format!("corrupt={}", self.corrupt));
        }
        if let Some(r) = self.rate {
            items.push(format!("rate={r}B/s"));
        }
        if self.queue_limit != DEFAULT_QUEUE_LIMIT {
            items.push(format!("queue={}", self.queue_limit));
        }
        for b in &self.blackouts {
            items.push(format!(
                "blackout={}-{}",
                fmt_duration(b.start),
                fmt_duration(b.end)
            ));
        }
        if items.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&items.join(","))
        }
    }
}

/// What a [`Link`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams offered to the link.
    pub sent: u64,
    /// Dropped by independent random loss.
    pub dropped_random: u64,
    /// Dropped by the Gilbert–Elliott burst model.
    pub dropped_burst: u64,
    /// Dropped inside a blackout window.
    pub dropped_blackout: u64,
    /// Dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams held back so later ones overtake them.
    pub reordered: u64,
    /// Delivered copies whose bytes were damaged.
    pub corrupted: u64,
}

impl Counters {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_blackout + self.dropped_queue
    }

    /// Copies that come out of the link (originals that survived plus duplicates).
    pub fn delivered(&self) -> u64 {
        self.sent - self.dropped() + self.duplicated
    }
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.sent += o.sent;
        self.dropped_random += o.dropped_random;
        self.dropped_burst += o.dropped_burst;
        self.dropped_blackout += o.dropped_blackout;
        self.dropped_queue += o.dropped_queue;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.corrupted += o.corrupted;
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} dropped={} (random={} burst={} blackout={} queue={}) duplicated={} reordered={} corrupted={}",
            self.sent,
            self.dropped(),
            self.dropped_random,
            self.dropped_burst,
            self.dropped_blackout,
            self.dropped_queue,
            self.duplicated,
            self.reordered,
            self.corrupted
        )
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Independent random loss.
    Random,
    /// Gilbert–Elliott burst loss.
    Burst,
    /// Inside a blackout window.
    Blackout,
    /// Bottleneck queue full.
    Queue,
}

impl DropReason {
    /// Lower-case name, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Random => "random",
            DropReason::Burst => "burst",
            DropReason::Blackout => "blackout",
            DropReason::Queue => "queue",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One copy coming out of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrives, in µs since the origin (never before the `now_us` it was sent at).
    pub at_us: u64,
    /// Its bytes (possibly damaged).
    pub datagram: Bytes,
    /// This is the extra copy made by duplication.
    pub duplicate: bool,
    /// It was held back by the reorder rule.
    pub reordered: bool,
    /// Its bytes were damaged.
    pub corrupted: bool,
}

/// The fate of one datagram: zero, one or two deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcomes {
    /// Copies delivered, the original first; empty when dropped.
    pub deliveries: Vec<Delivery>,
    /// Why it was dropped, if it was.
    pub dropped: Option<DropReason>,
}

impl Outcomes {
    fn drop(reason: DropReason) -> Self {
        Outcomes {
            deliveries: Vec::new(),
            dropped: Some(reason),
        }
    }

    /// Whether nothing is delivered.
    pub fn is_dropped(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Number of copies delivered.
    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// Same as [`Outcomes::is_dropped`].
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

impl IntoIterator for Outcomes {
    type Item = Delivery;
    type IntoIter = std::vec::IntoIter<Delivery>;
    fn into_iter(self) -> Self::IntoIter {
        self.deliveries.into_iter()
    }
}

/// One direction of an impaired path: configuration, seeded RNG and state.
///
/// Determinism: two links built with the same configuration and seed, fed the
/// same `(now_us, datagram)` sequence, give identical outcomes (on the same
/// platform and `rand` version).
#[derive(Debug, Clone)]
pub struct Link {
    cfg: Impairment,
    rng: SmallRng,
    bad_state: bool,
    /// When the bottleneck queue will be empty (µs).
    queue_free_at: u64,
    /// Latest arrival of an in-order datagram (µs): the FIFO floor.
    fifo_floor: u64,
    counters: Counters,
}

fn as_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn chance(rng: &mut SmallRng, p: f64) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

impl Link {
    /// A link with this configuration and seed.
    ///
    /// # Panics
    /// If `cfg` is invalid (see [`Impairment::validate`]); use [`Link::try_new`]
    /// to get the error instead.
    pub fn new(cfg: Impairment, seed: u64) -> Self {
        match Self::try_new(cfg, seed) {
            Ok(link) => link,
            Err(e) => panic!("invalid impairment configuration: {e}"),
        }
    }

    /// A link with this configuration and seed, or why the configuration is invalid.
    pub fn try_new(cfg: Impairment, seed: u64) -> Result<Self, ImpairmentError> {
        cfg.validate()?;
        Ok(Link {
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            bad_state: false,
            queue_free_at: 0,
            fifo_floor: 0,
            counters: Counters::default(),
        })
    }

    /// A perfect link (every datagram delivered at once, unchanged).
    pub fn perfect() -> Self {
        Self::new(Impairment::default(), 0)
    }

    /// The configuration.
    pub fn config(&self) -> &Impairment {
        &self.cfg
    }

    /// What the link has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the Gilbert–Elliott chain is in its bad state.
    pub fn in_bad_state(&self) -> bool {
        self.bad_state
    }

    /// Offer a datagram at virtual time `now_us` (µs since the origin); returns
    /// the copies that come out of the other end and when.
    pub fn transmit(&mut self, now_us: u64, datagram: Bytes) -> Outcomes {
        self.counters.sent += 1;

        // 1. One step of the Gilbert–Elliott chain, then its loss draw.
        let burst_loss = match self.cfg.burst {
            Some(ge) => {
                if self.bad_state {
                    if chance(&mut self.rng, ge.p_bad_to_good) {
                        self.bad_state = false;
                    }
                } else if chance(&mut self.rng, ge.p_good_to_bad) {
                    self.bad_state = true;
                }
                let p = if self.bad_state {
                    ge.loss_bad
                } else {
                    ge.loss_good
                };
                chance(&mut self.rng, p)
            }
            None => false,
        };

        // 2. Losses.
        if self.cfg.blackouts.iter().any(|b| b.contains(now_us)) {
            self.counters.dropped_blackout += 1;
            return Outcomes::drop(DropReason::Blackout);
        }
        if burst_loss {
            self.counters.dropped_burst += 1;
            return Outcomes::drop(DropReason::Burst);
        }
        if chance(&mut self.rng, self.cfg.loss) {
            self.counters.dropped_random += 1;
            return Outcomes::drop(DropReason::Random);
        }

        // 3. Bottleneck queue.
        let departs = match self.cfg.rate {
            Some(rate) => {
                let rate = u128::from(rate);
                let start = self.queue_free_at.max(now_us);
                let backlog_us = u128::from(start - now_us);
                let backlog_bytes = (backlog_us * rate).div_ceil(1_000_000);
                let len = datagram.len() as u128;
                if backlog_bytes > 0 && backlog_bytes + len > self.cfg.queue_limit as u128 {
                    self.counters.dropped_queue += 1;
                    return Outcomes::drop(DropReason::Queue);
                }
                let tx_us = (len * 1_000_000).div_ceil(rate);
                self.queue_free_at = start.saturating_add(u64::try_from(tx_us).unwrap_or(u64::MAX));
                self.queue_free_at
            }
            None => now_us,
        };

        // 4. Propagation delay, jitter, FIFO or reorder hold.
        let mut at = departs.saturating_add(self.sample_delay());
        let reordered = chance(&mut self.rng, self.cfg.reorder);
        if reordered {
            at = at.saturating_add(as_us(self.cfg.reorder_delay));
            self.counters.reordered += 1;
        } else {
            at = at.max(self.fifo_floor);
            self.fifo_floor = at;
        }

        // 5. Duplication decided before corruption so the copy can share bytes.
        let dup = chance(&mut self.rng, self.cfg.dup);
        let (first, first_corrupted) = self.maybe_corrupt(datagram.clone());
        let mut deliveries = Vec::with_capacity(if dup { 2 } else { 1 });
        deliveries.push(Delivery {
            at_us: at,
            datagram: first,
            duplicate: false,
            reordered,
            corrupted: first_corrupted,
        });
        if dup {
            self.counters.duplicated += 1;
            let at2 = departs.saturating_add(self.sample_delay());
            let (copy, corrupted) = self.maybe_corrupt(datagram);
            deliveries.push(Delivery {
                at_us: at2,
                datagram: copy,
                duplicate: true,
                reordered: false,
                corrupted,
            });
        }
        Outcomes {
            deliveries,
            dropped: None,
        }
    }

    /// Base delay plus one jitter sample, in µs, never negative.
    fn sample_delay(&mut self) -> u64 {
        let base = as_us(self.cfg.delay);
        let j = as_us(self.cfg.jitter);
        if j == 0 {
            return base;
        }
        let offset: i128 = match self.cfg.jitter_dist {
            JitterDist::Uniform => {
                let j = i64::try_from(j).unwrap_or(i64::MAX);
                i128::from(self.rng.gen_range(-j..=j))
            }
            JitterDist::Normal => {
                // Box–Muller; u1 in (0, 1] so ln is finite.
                let u1: f64 = 1.0 - self.rng.gen::<f64>();
                let u2: f64 = self.rng.gen::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (z.clamp(-3.0, 3.0) * j as f64).round() as i128
            }
        };
        let total = i128::from(base) + offset;
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }

    /// With probability `corrupt`, damage a copy of the bytes.
    fn maybe_corrupt(&mut self, datagram: Bytes) -> (Bytes, bool) {
        if datagram.is_empty() || !chance(&mut self.rng, self.cfg.corrupt) {
            return (datagram, false);
        }
        self.counters.corrupted += 1;
        let len = datagram.len();
        if self.rng.gen_range(0..4) == 0 {
            let keep = self.rng.gen_range(0..len);
            return (datagram.slice(..keep), true);
        }
        let bits = len * 8;
        let flips = self.rng.gen_range(1..=3usize).min(bits);
        let mut chosen: [usize; 3] = [usize::MAX; 3];
        let mut n = 0;
        while n < flips {
            let b = self.rng.gen_range(0..bits);
            if !chosen[..n].contains(&b) {
                chosen[n] = b;
                n += 1;
            }
        }
        let mut buf = BytesMut::from(&datagram[..]);
        for &b in &chosen[..flips] {
            buf[b / 8] ^= 1 << (b % 8);
        }
        (buf.freeze(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    fn payload(i: u32) -> Bytes {
        Bytes::copy_from_slice(&i.to_be_bytes())
    }

    fn run(cfg: &Impairment, seed: u64, n: u32, gap_us: u64) -> Vec<Outcomes> {
        let mut link = Link::new(cfg.clone(), seed);
        (0..n)
            .map(|i| link.transmit(u64::from(i) * gap_us, payload(i)))
            .collect()
    }

    #[test]
    fn perfect_link_is_transparent() {
        let mut link = Link::perfect();
        for i in 0..100 {
            let out = link.transmit(i * 7, payload(i as u32));
            assert_eq!(out.len(), 1);
            let d = &out.deliveries[0];
            assert_eq!(d.at_us, i * 7);
            assert_eq!(d.datagram, payload(i as u32));
            assert!(!d.corrupted && !d.duplicate && !d.reordered);
        }
        assert_eq!(link.counters().sent, 100);
        assert_eq!(link.counters().dropped(), 0);
        assert!(Impairment::default().is_perfect());
    }

    #[test]
    fn random_loss_rate_within_tolerance() {
        let cfg = Impairment {
            loss: 0.1,
            ..Default::default()
        };
        let mut link = Link::new(cfg, 42);
        let n = 100_000u64;
        let mut lost = 0;
        for i in 0..n {
            if link.transmit(i, payload(i as u32)).is_dropped() {
                lost += 1;
            }
        }
        let rate = lost as f64 / n as f64;
        assert!((rate - 0.1).abs() < 0.005, "loss rate {rate}");
        assert_eq!(link.counters().dropped_random, lost);
        assert_eq!(link.counters().dropped(), lost);
    }

    #[test]
    fn burst_loss_matches_gilbert_elliott_stationary_rate() {
        let ge = GilbertElliott::new(0.05, 0.3);
        let cfg = Impairment {
            burst: Some(ge),
            ..Default::default()
        };
        let mut link = Link::new(cfg, 7);
        let n = 200_000u64;
        let mut lost = 0u64;
        let mut runs = 0u64;
        let mut prev_lost = false;
        for i in 0..n {
            let l = link.transmit(i, payload(i as u32)).is_dropped();
            if l {
                lost += 1;
                if !prev_lost {
                    runs += 1;
                }
            }
            prev_lost = l;
        }
        let rate = lost as f64 / n as f64;
        let expected = ge.steady_state_loss();
        assert!((expected - 0.05 / 0.35).abs() < 1e-12);
        assert!((rate - expected).abs() < 0.01, "rate {rate} vs {expected}");
        // Mean burst length 1 / p_bad_to_good.
        let mean_run = lost as f64 / runs as f64;
        assert!((mean_run - 1.0 / 0.3).abs() < 0.2, "mean burst {mean_run}");
        assert_eq!(link.counters().dropped_burst, lost);
    }

    #[test]
    fn deterministic_for_same_seed_and_differs_for_other_seed() {
        let cfg = Impairment::parse(
            "loss=0.1,burst=0.05:0.3,delay=50ms,jitter=10ms,reorder=0.05,dup=0.05,corrupt=0.05,rate=1mbps,blackout=1s-1.2s",
        )
        .unwrap();
        let a = run(&cfg, 99, 5_000, 500);
        let b = run(&cfg, 99, 5_000, 500);
        assert_eq!(a, b);
        let c = run(&cfg, 100, 5_000, 500);
        assert_ne!(a, c);
    }

    #[test]
    fn duplication_rate_and_copies() {
        let cfg = Impairment {
            dup: 0.2,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(2),
            ..Default::default()
        };
        let outs = run(&cfg, 3, 20_000, 100);
        let dups = outs.iter().filter(|o| o.len() == 2).count();
        let rate = dups as f64 / outs.len() as f64;
        assert!((rate - 0.2).abs() < 0.015, "dup rate {rate}");
        for o in outs.iter().filter(|o| o.len() == 2) {
            assert_eq!(o.deliveries[0].datagram, o.deliveries[1].datagram);
            assert!(!o.deliveries[0].duplicate && o.deliveries[1].duplicate);
        }
    }

    #[test]
    fn delay_and_jitter_bounds_and_fifo() {
        for dist in [JitterDist::Uniform, JitterDist::Normal] {
            let cfg = Impairment {
                delay: Duration::from_millis(50),
                jitter: Duration::from_millis(10),
                jitter_dist: dist,
                ..Default::default()
            };
            let mut link = Link::new(cfg, 5);
            let mut last = 0;
            let mut sum = 0u64;
            let n = 10_000u64;
            for i in 0..n {
                let now = i * 20 * MS; // far apart: FIFO never binds
                let out = link.transmit(now, payload(i as u32));
                let at = out.deliveries[0].at_us;
                assert!(
                    at >= now + 20 * MS && at <= now + 80 * MS,
                    "{dist:?} {at} {now}"
                );
                assert!(at >= last);
                last = at;
                sum += at - now;
            }
            let mean = sum as f64 / n as f64;
            assert!((mean - 50_000.0).abs() < 500.0, "{dist:?} mean {mean}");
        }
        // Closely spaced sends: jitter never reorders on its own.
        let cfg = Impairment::parse("delay=10ms,jitter=9ms").unwrap();
        let outs = run(&cfg, 11, 2_000, 100);
        let ats: Vec<u64> = outs.iter().map(|o| o.deliveries[0].at_us).collect();
        assert!(ats.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn reorder_lets_later_datagrams_overtake() {
        let cfg = Impairment::parse("delay=5ms,reorder=0.1:20ms").unwrap();
        let mut link = Link::new(cfg, 8);
        let mut arrivals = Vec::new();
        for i in 0..2_000u32 {
            for d in link.transmit(u64::from(i) * MS, payload(i)) {
                arrivals.push((d.at_us, i, d.reordered));
            }
        }
        let held = arrivals.iter().filter(|a| a.2).count();
        assert_eq!(held as u64, link.counters().reordered);
        assert!((held as f64 / 2_000.0 - 0.1).abs() < 0.03);
        arrivals.sort_by_key(|a| (a.0, a.1));
        let inversions = arrivals.windows(2).filter(|w| w[0].1 > w[1].1).count();
        assert!(
            inversions >= held / 2,
            "inversions {inversions} held {held}"
        );
        for (at, i, r) in &arrivals {
            let sent = u64::from(*i) * MS;
            if *r {
                assert_eq!(*at, sent + 25 * MS);
            }
        }
    }

    #[test]
    fn corruption_always_changes_bytes() {
        let cfg = Impairment {
            corrupt: 1.0,
            ..Default::default()
        };
        let mut link = Link::new(cfg, 1);
        let original = Bytes::from_static(b"hello, tern! 0123456789");
        let mut truncated = 0;
        let mut flipped = 0;
        for i in 0..1_000 {
            let d = link.transmit(i, original.clone()).deliveries.remove(0);
            assert!(d.corrupted);
            assert_ne!(d.datagram, original);
            if d.datagram.len() < original.len() {
                truncated += 1;
                assert_eq!(&original[..d.datagram.len()], &d.datagram[..]);
            } else {
                flipped += 1;
                let diff: u32 = original
                    .iter()
                    .zip(d.datagram.iter())
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                assert!((1..=3).contains(&diff), "{diff} bits differ");
            }
        }
        assert!(truncated > 150 && flipped > 650, "{truncated} {flipped}");
        assert_eq!(link.counters().corrupted, 1_000);
        // Empty datagrams pass untouched.
        let d = link.transmit(2_000, Bytes::new());
        assert!(!d.deliveries[0].corrupted);
    }

    #[test]
    fn rate_cap_serialises_and_bounds_queue() {
        // 100 kB/s: a 1000-byte datagram takes 10 ms on the wire.
        let cfg = Impairment {
            rate: Some(100_000),
            queue_limit: 10_000,
            ..Default::default()
        };
        let mut link = Link::new(cfg, 0);
        let pkt = Bytes::from(vec![0u8; 1000]);
        let mut ats = Vec::new();
        for _ in 0..100 {
            let out = link.transmit(0, pkt.clone());
            if let Some(d) = out.deliveries.first() {
                ats.push(d.at_us);
            } else {
                assert_eq!(out.dropped, Some(DropReason::Queue));
            }
        }
        // First admitted at an empty queue, then 9 more fit behind it.
        assert_eq!(ats.len(), 10);
        assert_eq!(ats, (1..=10).map(|k| k * 10 * MS).collect::<Vec<_>>());
        assert_eq!(link.counters().dropped_queue, 90);
        // Once drained the queue accepts again.
        let out = link.transmit(100 * MS, pkt.clone());
        assert_eq!(out.deliveries[0].at_us, 110 * MS);
        // A paced sender under the rate never queues.
        let mut link = Link::new(Impairment::parse("rate=800kbps").unwrap(), 0);
        for i in 0..100 {
            let now = i * 20 * MS;
            let out = link.transmit(now, pkt.clone());
            assert_eq!(out.deliveries[0].at_us, now + 10 * MS);
        }
    }

    #[test]
    fn blackout_drops_everything_inside_window_only() {
        let cfg = Impairment::parse("blackout=10ms-20ms,blackout=30ms-31ms").unwrap();
        let mut link = Link::new(cfg, 0);
        for t in 0..40u64 {
            let out = link.transmit(t * MS, payload(t as u32));
            let inside = (10..20).contains(&t) || t == 30;
            assert_eq!(out.is_dropped(), inside, "t={t}ms");
            if inside {
                assert_eq!(out.dropped, Some(DropReason::Blackout));
            }
        }
        assert_eq!(link.counters().dropped_blackout, 11);
    }

    #[test]
    fn parse_full_example() {
        let cfg = Impairment::parse(
            "loss=0.1,burst=0.05:0.3,delay=50ms,jitter=10ms,reorder=0.02,dup=0.05,corrupt=0.001,rate=1mbps,blackout=10s-12s",
        )
        .unwrap();
        assert_eq!(cfg.loss, 0.1);
        assert_eq!(cfg.burst, Some(GilbertElliott::new(0.05, 0.3)));
        assert_eq!(cfg.delay, Duration::from_millis(50));
        assert_eq!(cfg.jitter, Duration::from_millis(10));
        assert_eq!(cfg.jitter_dist, JitterDist::Uniform);
        assert_eq!(cfg.reorder, 0.02);
        assert_eq!(cfg.reorder_delay, DEFAULT_REORDER_DELAY);
        assert_eq!(cfg.dup, 0.05);
        assert_eq!(cfg.corrupt, 0.001);
        assert_eq!(cfg.rate, Some(125_000));
        assert_eq!(
            cfg.blackouts,
            vec![Blackout {
                start: Duration::from_secs(10),
                end: Duration::from_secs(12)
            }]
        );
        // Display gives a spec that parses back to the same value.
        let again = Impairment::parse(&cfg.to_string()).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn parse_variants() {
        assert!(Impairment::parse("").unwrap().is_perfect());
        assert!(Impairment::parse(" none ").unwrap().is_perfect());
        assert_eq!(Impairment::default().to_string(), "none");
        let c = Impairment::parse(
            " loss = 10% , jitter=2ms:normal, reorder=0.5:7ms, burst=0.1:0.2:0.8:0.01, queue=16KiB, rate=64KB/s ",
        )
        .unwrap();
        assert_eq!(c.loss, 0.1);
        assert_eq!(c.jitter_dist, JitterDist::Normal);
        assert_eq!(c.reorder_delay, Duration::from_millis(7));
        let ge = c.burst.unwrap();
        assert_eq!((ge.loss_bad, ge.loss_good), (0.8, 0.01));
        assert_eq!(c.queue_limit, 16 * 1024);
        assert_eq!(c.rate, Some(64_000));
        assert_eq!(Impairment::parse(&c.to_string()).unwrap(), c);
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_rate("1mbps"), Some(125_000));
        assert_eq!(parse_rate("8Kbit"), Some(1_000));
        assert_eq!(parse_rate("1MB/s"), Some(1_000_000));
        assert_eq!(parse_rate("0bps"), None);
        assert_eq!(parse_size("1500"), Some(1500));
    }

    #[test]
    fn parse_errors_are_typed() {
        use ImpairmentError::*;
        let err = |s: &str| Impairment::parse(s).unwrap_err();
        assert!(matches!(err("loss"), Syntax(_)));
        assert!(matches!(err("loss=0.1,,dup=0.1"), Syntax(_)));
        assert!(matches!(err("los=0.1"), UnknownKey(k) if k == "los"));
        assert!(matches!(err("loss=0.1,loss=0.2"), DuplicateKey(k) if k == "loss"));
        assert!(matches!(err("loss=1.5"), BadValue { key, .. } if key == "loss"));
        assert!(matches!(err("loss=abc"), BadValue { .. }));
        assert!(matches!(err("loss=-0.1"), BadValue { .. }));
        assert!(matches!(err("delay=50"), BadValue { key, .. } if key == "delay"));
        assert!(matches!(err("delay=50 parsecs"), BadValue { .. }));
        assert!(matches!(err("burst=0.1"), BadValue { .. }));
        assert!(matches!(err("jitter=1ms:cauchy"), BadValue { .. }));
        assert!(matches!(err("rate=fast"), BadValue { .. }));
        assert!(matches!(err("queue=0"), BadValue { .. }));
        assert!(matches!(err("blackout=10s"), BadValue { .. }));
        assert!(matches!(
            err("blackout=12s-10s"),
            Invalid {
                key: "blackout",
                ..
            }
        ));
        // Messages are readable.
        assert_eq!(err("los=1").to_string(), "unknown key `los`");
        let bad_cfg = Impairment {
            loss: 2.0,
            ..Default::default()
        };
        assert!(Link::try_new(bad_cfg, 0).is_err());
    }
}
