//! Prometheus text exposition (format 0.0.4), written by hand: a handful of
//! counters and gauges do not need a metrics framework.

use std::fmt::Write;

/// Builds one exposition.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    fn metric(&mut self, kind: &str, name: &str, help: &str, value: f64) {
        let _ = write!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }

    /// A counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.metric("counter", name, help, value as f64);
        self
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.metric("gauge", name, help, value);
        self
    }

    /// A histogram from cumulative bucket counts (`le` in seconds).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: &[(f64, u64)],
        count: u64,
        sum_seconds: f64,
    ) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (le, n) in buckets {
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.out, "{name}_sum {sum_seconds}\n{name}_count {count}");
        self
    }

    /// The text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// The response for `GET /metrics`.
pub fn response(text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
