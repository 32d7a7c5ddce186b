//! Results: a table for people at the end of a run, and every figure as JSON for scripts.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Figures of one run, in insertion order of scenarios; each figure a named number.
#[derive(Default)]
pub struct Report {
    sections: Vec<(String, BTreeMap<String, Value>)>,
}

impl Report {
    pub fn section(&mut self, name: &str) -> &mut BTreeMap<String, Value> {
        if let Some(index) = self.sections.iter().position(|(n, _)| n == name) {
            return &mut self.sections[index].1;
        }
        self.sections.push((name.to_owned(), BTreeMap::new()));
        let last = self.sections.len() - 1;
        &mut self.sections[last].1
    }

    pub fn print(&self) {
        for (name, figures) in &self.sections {
            println!("\n{name}");
            println!("{}", "-".repeat(name.len()));
            let width = figures.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in figures {
                let shown = match value {
                    Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or_default()),
                    other => other.to_string(),
                };
                println!("  {key:<width$}  {shown}");
            }
        }
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let mut all = serde_json::Map::new();
        for (name, figures) in &self.sections {
            for (key, value) in figures {
                all.insert(key.clone(), value.clone());
            }
            all.insert(format!("{name}_section"), json!(figures));
        }
        std::fs::write(path, serde_json::to_string_pretty(&Value::Object(all))?)?;
        Ok(())
    }
}

/// p50/p90/p99/p99.9/max of a latency histogram (µs), under `prefix`.
pub fn percentiles(figures: &mut BTreeMap<String, Value>, prefix: &str, histogram: &Histogram<u64>) {
    if histogram.is_empty() {
        return;
    }
    for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)] {
        figures.insert(format!("{prefix}_{name}_us"), json!(histogram.value_at_quantile(q)));
    }
    figures.insert(format!("{prefix}_max_us"), json!(histogram.max()));
}

/// Facts every report carries, so numbers are never read without their context.
pub fn machine(figures: &mut BTreeMap<String, Value>) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    figures.insert("cores".into(), json!(cores));
    figures.insert("note".into(), json!("client and server share this machine's cores"));
    if let Some(limit) = open_file_limit() {
        figures.insert("open_file_limit".into(), json!(limit));
    }
}

fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
