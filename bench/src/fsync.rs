//! The disk's flush latency: every durable reply waits for at least one, so it bounds latency.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Appends 4 KiB and `fdatasync`s, `rounds` times, in a file under `dir`; latencies in µs.
pub fn measure(dir: &Path, rounds: usize) -> anyhow::Result<Histogram<u64>> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let block = [0x5au8; 4096];
    let mut histogram = crate::client::histogram();
    for _ in 0..rounds {
        file.write_all(&block)?;
        let started = Instant::now();
        file.sync_data()?;
        histogram.record(started.elapsed().as_micros().max(1) as u64)?;
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(histogram)
}
