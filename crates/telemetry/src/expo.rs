//! The text exposition format: `# HELP` and `# TYPE` lines, then one sample per line.

use std::fmt::Write;
use std::sync::Arc;

use crate::Histogram;

/// A scrape's text, built metric by metric.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.counters(name, help, &[(&[], value)]);
    }

    /// A counter with one sample per label set.
    pub fn counters(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, v) in samples {
            self.sample(name, labels, *v as f64);
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.gauges(name, help, &[(&[], value)]);
    }

    /// A gauge with one sample per label set.
    pub fn gauges(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, v) in samples {
            self.sample(name, labels, *v);
        }
    }

    /// A histogram family: `label_names` name the values of each series' key.
    pub fn histograms(
        &mut self,
        name: &str,
        help: &str,
        label_names: &[&str],
        series: &[(Vec<String>, Arc<Histogram>)],
    ) {
        self.header(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        for (values, h) in series {
            let base: Vec<(&str, &str)> = label_names
                .iter()
                .zip(values.iter())
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let with_le = |le: &str| -> Vec<(String, String)> {
                base.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .chain([("le".to_string(), le.to_string())])
                    .collect()
            };
            let mut buckets: Vec<(Vec<(String, String)>, u64)> = h
                .cumulative()
                .into_iter()
                .map(|(le, n)| (with_le(&number(le)), n))
                .collect();
            buckets.push((with_le("+Inf"), h.count()));
            for (labels, n) in &buckets {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.sample(&bucket, &labels, *n as f64);
            }
            self.sample(&format!("{name}_sum"), &base, h.sum());
            self.sample(&format!("{name}_count"), &base, h.count() as f64);
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Arc<Histogram>) {
        self.histograms(name, help, &[], &[(Vec::new(), h.clone())]);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_print_as_prometheus_reads_them() {
        let mut e = Exposition::new();
        e.counter("oneha_x_total", "Things.", 3);
        e.gauges("oneha_lag", "Lag.", &[(&[("peer", "a\"b")], 2.5)]);
        let h = Arc::new(Histogram::new(&[0.5, 1.0]));
        h.observe(0.25);
        h.observe(2.0);
        e.histograms(
            "oneha_t_seconds",
            "T.",
            &["method"],
            &[(vec!["one.user.info".into()], h)],
        );
        assert_eq!(
            e.finish(),
            "# HELP oneha_x_total Things.\n# TYPE oneha_x_total counter\noneha_x_total 3\n\
             # HELP oneha_lag Lag.\n# TYPE oneha_lag gauge\noneha_lag{peer=\"a\\\"b\"} 2.5\n\
             # HELP oneha_t_seconds T.\n# TYPE oneha_t_seconds histogram\n\
             oneha_t_seconds_bucket{method=\"one.user.info\",le=\"0.5\"} 1\n\
             oneha_t_seconds_bucket{method=\"one.user.info\",le=\"1\"} 1\n\
             oneha_t_seconds_bucket{method=\"one.user.info\",le=\"+Inf\"} 2\n\
             oneha_t_seconds_sum{method=\"one.user.info\"} 2.25\n\
             oneha_t_seconds_count{method=\"one.user.info\"} 2\n"
        );
    }
}
