//! Prometheus metrics in the text format that node_exporter's textfile
//! collector reads (`--collector.textfile.directory`): a [`Metrics`] set is
//! filled with gauges and counters, encoded by the `prometheus` crate (HELP
//! and TYPE lines, escaped label values, families sorted by name) and written
//! atomically ([`Metrics::write_file`]).
//!
//! Conventions: every name starts with `regsweep_` and carries its unit
//! (`_bytes`, `_seconds`); counters end in `_total`. A command's own metrics
//! have names that no other command writes (`regsweep_verify_…`,
//! `regsweep_sweep_…`), so that the files of several commands can share a
//! textfile directory; the two run metrics ([`Metrics::run`]) are labelled
//! with the command instead.

use prometheus::core::Collector;
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every metric name starts with this.
pub const PREFIX: &str = "regsweep_";

/// A metric family: its label names and the collector holding its samples.
enum Family {
    Gauge(Vec<String>, GaugeVec),
    Counter(Vec<String>, CounterVec),
}

/// A set of metrics to write as one textfile.
pub struct Metrics {
    registry: Registry,
    families: HashMap<String, Family>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.families.keys().collect();
        names.sort();
        f.debug_struct("Metrics").field("families", &names).finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A metric that cannot be added: a bad name, or a family first made with
/// other label names or another type. These are programming errors in a
/// command's output code, reported as such.
#[derive(Debug, thiserror::Error)]
#[error("metric {name}: {message}")]
pub struct MetricError {
    name: String,
    message: String,
}

impl Metrics {
    /// An empty set.
    pub fn new() -> Self {
        Metrics {
            registry: Registry::new(),
            families: HashMap::new(),
        }
    }

    fn err(name: &str, message: impl std::fmt::Display) -> MetricError {
        MetricError {
            name: name.to_string(),
            message: message.to_string(),
        }
    }

    /// Sets the gauge `name{labels}` to `value`; `help` describes the family
    /// (the first call's help and label names are kept).
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricError> {
        if name.ends_with("_total") {
            return Err(Self::err(name, "only counters end in _total"));
        }
        let fam = self.family(name, help, labels, false)?;
        let Family::Gauge(names, g) = fam else {
            return Err(Self::err(name, "already a counter"));
        };
        let values = label_values(name, names, labels)?;
        g.with_label_values(&values).set(value);
        Ok(())
    }

    /// Adds `value` (not negative) to the counter `name{labels}`; `name`
    /// ends in `_total`.
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricError> {
        if !name.ends_with("_total") {
            return Err(Self::err(name, "a counter's name ends in _total"));
        }
        if value.is_nan() || value < 0.0 {
            return Err(Self::err(name, "a counter cannot go down"));
        }
        let fam = self.family(name, help, labels, true)?;
        let Family::Counter(names, c) = fam else {
            return Err(Self::err(name, "already a gauge"));
        };
        let values = label_values(name, names, labels)?;
        c.with_label_values(&values).inc_by(value);
        Ok(())
    }

    /// The two metrics every run writes, labelled with `command`: when it
    /// ended (`regsweep_last_run_timestamp_seconds`) and how long it took
    /// (`regsweep_run_duration_seconds`).
    pub fn run(
        &mut self,
        command: &str,
        ended: SystemTime,
        duration: Duration,
    ) -> Result<(), MetricError> {
        let ts = ended
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.gauge(
            "regsweep_last_run_timestamp_seconds",
            "When the last successful run of the command ended (Unix time).",
            &[("command", command)],
            ts.floor(),
        )?;
        self.gauge(
            "regsweep_run_duration_seconds",
            "How long the last successful run of the command took.",
            &[("command", command)],
            duration.as_secs_f64(),
        )
    }

    fn family(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        counter: bool,
    ) -> Result<&Family, MetricError> {
        if !name.starts_with(PREFIX) {
            return Err(Self::err(name, format!("names start with {PREFIX}")));
        }
        if !self.families.contains_key(name) {
            let names: Vec<String> = labels.iter().map(|(k, _)| k.to_string()).collect();
            let label_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let opts = Opts::new(name, help);
            let fam = if counter {
                let c = CounterVec::new(opts, &label_refs).map_err(|e| Self::err(name, e))?;
                self.register(name, c.clone())?;
                Family::Counter(names, c)
            } else {
                let g = GaugeVec::new(opts, &label_refs).map_err(|e| Self::err(name, e))?;
                self.register(name, g.clone())?;
                Family::Gauge(names, g)
            };
            self.families.insert(name.to_string(), fam);
        }
        Ok(&self.families[name])
    }

    fn register(&self, name: &str, c: impl Collector + 'static) -> Result<(), MetricError> {
        self.registry
            .register(Box::new(c))
            .map_err(|e| Self::err(name, e))
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Writes the metrics to `path` atomically (see
    /// [`super::write_atomic`]). Name it `*.prom` in the collector's directory.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let text = self.encode();
        super::write_atomic(path, |w| w.write_all(text.as_bytes()))
    }
}

fn label_values<'a>(
    name: &str,
    names: &[String],
    labels: &[(&'a str, &'a str)],
) -> Result<Vec<&'a str>, MetricError> {
    let same = names.len() == labels.len() && names.iter().zip(labels).all(|(n, (k, _))| n == k);
    if !same {
        return Err(Metrics::err(
            name,
            format!(
                "labels {:?}, but the family has {names:?}",
                labels.iter().map(|(k, _)| k).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(labels.iter().map(|(_, v)| *v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_counters_have_help_type_and_escaped_labels() {
        let mut m = Metrics::new();
        m.gauge(
            "regsweep_reclaimable_bytes",
            "Bytes a sweep would free.",
            &[("repository", "a\"b\\c\nd")],
            42.0,
        )
        .unwrap();
        m.gauge(
            "regsweep_reclaimable_bytes",
            "ignored",
            &[("repository", "x")],
            1.0,
        )
        .unwrap();
        m.counter("regsweep_removed_bytes_total", "Removed.", &[], 7.0)
            .unwrap();
        let t = m.encode();
        assert!(t.contains("# HELP regsweep_reclaimable_bytes Bytes a sweep would free.\n"));
        assert!(t.contains("# TYPE regsweep_reclaimable_bytes gauge\n"));
        assert!(t.contains(r#"regsweep_reclaimable_bytes{repository="a\"b\\c\nd"} 42"#));
        assert!(t.contains("regsweep_reclaimable_bytes{repository=\"x\"} 1\n"));
        assert!(t.contains("# TYPE regsweep_removed_bytes_total counter\n"));
        assert!(t.contains("regsweep_removed_bytes_total 7\n"));
    }

    #[test]
    fn mismatched_labels_types_and_names_are_errors() {
        let mut m = Metrics::new();
        m.gauge("regsweep_x_bytes", "x", &[("a", "1")], 1.0)
            .unwrap();
        assert!(m
            .gauge("regsweep_x_bytes", "x", &[("b", "1")], 1.0)
            .is_err());
        assert!(m.gauge("regsweep_x_bytes", "x", &[], 1.0).is_err());
        assert!(m.counter("regsweep_x_bytes", "x", &[], 1.0).is_err());
        assert!(m.gauge("other_bytes", "x", &[], 1.0).is_err());
        assert!(m.gauge("regsweep_y_total", "x", &[], 1.0).is_err());
        assert!(m.counter("regsweep_y", "x", &[], 1.0).is_err());
        assert!(m.counter("regsweep_y_total", "x", &[], -1.0).is_err());
        assert!(m.gauge("regsweep_bad-name", "x", &[], 1.0).is_err());
    }

    #[test]
    fn run_metrics_are_labelled_with_the_command() {
        let mut m = Metrics::new();
        m.run(
            "report",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Duration::from_millis(1500),
        )
        .unwrap();
        let t = m.encode();
        assert!(t.contains("regsweep_last_run_timestamp_seconds{command=\"report\"} 1700000000\n"));
        assert!(t.contains("regsweep_run_duration_seconds{command=\"report\"} 1.5\n"));
    }
}
