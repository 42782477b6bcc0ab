//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
//! text exposition format for a `/metrics` endpoint.
//!
//! Each service instance owns its [`Registry`] rather than a process-global recorder (as the
//! `metrics` facade has): the demo ring and the tests run several servers and proxies in one
//! process, and each must report its own numbers. Updates are lock-free atomics once a label
//! set has been seen; a new label set takes a short write lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Latency buckets in seconds, from a cache hit to a request near its timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metrics of one service instance. Cheap to clone; clones share the metrics.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<Family>>>>,
}

impl Registry {
    /// A registry without metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a counter named `name` (by convention ending in `_total`) with these labels.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter(self.register(name, help, Kind::Counter, labels, Vec::new()))
    }

    /// Registers a gauge.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Gauge {
        Gauge(self.register(name, help, Kind::Gauge, labels, Vec::new()))
    }

    /// Registers a histogram with the given upper bounds (ascending; `+Inf` is implied).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &[f64],
    ) -> Histogram {
        Histogram(self.register(name, help, Kind::Histogram, labels, buckets.to_vec()))
    }

    fn register(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        label_names: &'static [&'static str],
        buckets: Vec<f64>,
    ) -> Arc<Family> {
        let family = Arc::new(Family {
            name,
            help,
            kind,
            label_names,
            buckets,
            series: RwLock::default(),
        });
        self.families
            .lock()
            .expect("registry lock")
            .push(family.clone());
        family
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().expect("registry lock").clone();
        let mut out = String::new();
        for family in families {
            family.render(&mut out);
        }
        out
    }
}

/// The content type of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A count that only goes up, per label set.
#[derive(Debug, Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    /// Adds one for the label values given (in the order of the registered label names).
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    /// Adds `n`.
    pub fn add(&self, labels: &[&str], n: u64) {
        self.0.series(labels).value.fetch_add(n, Ordering::Relaxed);
    }
}

/// A value that goes up and down, per label set.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    /// Sets the value for the label values given.
    pub fn set(&self, labels: &[&str], value: f64) {
        self.0
            .series(labels)
            .value
            .store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A distribution of observations (e.g. latencies) in cumulative buckets, per label set.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Family>);

impl Histogram {
    /// Records one observation for the label values given.
    pub fn observe(&self, labels: &[&str], value: f64) {
        let family = &self.0;
        let series = family.series(labels);
        let slot = family
            .buckets
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(family.buckets.len());
        series.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let _ = series
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    label_names: &'static [&'static str],
    /// Histogram upper bounds; empty for counters and gauges.
    buckets: Vec<f64>,
    series: RwLock<BTreeMap<Vec<String>, Arc<Series>>>,
}

/// One label set's numbers. `value` is the count of a counter, the f64 bits of a gauge, or
/// the f64 bits of a histogram's sum; `buckets` holds a histogram's per-bucket (not
/// cumulative) counts, the last one for `+Inf`, so the count is their sum.
#[derive(Debug)]
struct Series {
    value: AtomicU64,
    buckets: Vec<AtomicU64>,
}

impl Family {
    fn series(&self, labels: &[&str]) -> Arc<Series> {
        assert_eq!(
            labels.len(),
            self.label_names.len(),
            "{} takes labels {:?}",
            self.name,
            self.label_names
        );
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        if let Some(series) = self.series.read().expect("metric lock").get(&key) {
            return series.clone();
        }
        let slots = if self.kind == Kind::Histogram {
            self.buckets.len() + 1
        } else {
            0
        };
        self.series
            .write()
            .expect("metric lock")
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Series {
                    value: AtomicU64::new(0),
                    buckets: (0..slots).map(|_| AtomicU64::new(0)).collect(),
                })
            })
            .clone()
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape(self.help, false));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.name());
        let series = self.series.read().expect("metric lock");
        for (values, series) in series.iter() {
            let labels = label_text(self.label_names, values, None);
            match self.kind {
                Kind::Counter => {
                    let count = series.value.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{}{labels} {count}", self.name);
                }
                Kind::Gauge => {
                    let value = f64::from_bits(series.value.load(Ordering::Relaxed));
                    let _ = writeln!(out, "{}{labels} {}", self.name, number(value));
                }
                Kind::Histogram => {
                    let mut cumulative = 0;
                    for (slot, count) in series.buckets.iter().enumerate() {
                        cumulative += count.load(Ordering::Relaxed);
                        let bound = self.buckets.get(slot).copied().unwrap_or(f64::INFINITY);
                        let le = label_text(self.label_names, values, Some(&number(bound)));
                        let _ = writeln!(out, "{}_bucket{le} {cumulative}", self.name);
                    }
                    let sum = f64::from_bits(series.value.load(Ordering::Relaxed));
                    let _ = writeln!(out, "{}_sum{labels} {}", self.name, number(sum));
                    let _ = writeln!(out, "{}_count{labels} {cumulative}", self.name);
                }
            }
        }
    }
}

/// `{a="x",b="y"}`, with `le` last for histogram buckets; empty without labels.
fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value, true)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Escapes backslash and newline (and `"` inside label values), as the format requires.
fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as the format spells it (`+Inf`, `-Inf`, `NaN`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_render_per_label_set() {
        let registry = Registry::new();
        let requests = registry.counter("requests_total", "Requests.", &["route", "status"]);
        let height = registry.gauge("height", "Best height.", &[]);
        requests.inc(&["/a", "200"]);
        requests.add(&["/a", "200"], 2);
        requests.inc(&["/b\"\n", "404"]);
        height.set(&[], 110.0);
        let text = registry.render();
        assert!(text.contains("# TYPE requests_total counter\n"), "{text}");
        assert!(
            text.contains("requests_total{route=\"/a\",status=\"200\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("requests_total{route=\"/b\\\"\\n\",status=\"404\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP height Best height.\n# TYPE height gauge\nheight 110\n"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let registry = Registry::new();
        let latency = registry.histogram("latency_seconds", "Latency.", &["route"], &[0.1, 1.0]);
        for value in [0.0625, 0.5, 0.5, 7.0] {
            latency.observe(&["/x"], value);
        }
        let text = registry.render();
        for line in [
            "latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n",
            "latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n",
            "latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n",
            "latency_seconds_sum{route=\"/x\"} 8.0625\n",
            "latency_seconds_count{route=\"/x\"} 4\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn registries_are_independent() {
        let a = Registry::new();
        let b = Registry::new();
        a.counter("x_total", "X.", &[]).inc(&[]);
        b.counter("x_total", "X.", &[]);
        assert!(a.render().contains("x_total 1\n"));
        assert!(!b.render().contains("x_total 1"));
    }
}
