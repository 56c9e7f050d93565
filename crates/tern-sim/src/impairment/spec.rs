//! The compact text form of an [`Impairment`]: parsing (`FromStr`, and the
//! value parsers the lab's command lines share) and the canonical spec that
//! `Display` writes back.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::config::{
    as_us, Blackout, GilbertElliott, Impairment, ImpairmentError, JitterDist, DEFAULT_QUEUE_LIMIT,
    DEFAULT_REORDER_DELAY,
};

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

#[cfg(test)]
mod tests {
    use super::super::Link;
    use super::*;

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
