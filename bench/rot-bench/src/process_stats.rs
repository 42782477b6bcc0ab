//! What Linux's `/proc` tells about a running process: its peak resident memory (the
//! kernel's high-water mark, so no sample can miss a short peak) and the CPU time it used.

use std::sync::OnceLock;

use anyhow::{Context, anyhow};

/// Resource use of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessStats {
    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// User plus system CPU seconds used so far.
    pub cpu_secs: f64,
}

impl ProcessStats {
    /// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        Ok(Self {
            peak_rss_kib: status_kib(&status, "VmHWM:")?,
            rss_kib: status_kib(&status, "VmRSS:")?,
            cpu_secs: cpu_secs(&stat)?,
        })
    }
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`.
fn status_kib(status: &str, name: &str) -> anyhow::Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| anyhow!("no {name} in /proc status"))
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`, in seconds. The command name
/// (field 2) may contain spaces, so fields are counted after its closing parenthesis.
fn cpu_secs(stat: &str) -> anyhow::Result<f64> {
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("malformed /proc stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field N is index N - 3.
    let ticks = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("no field {n} in /proc stat"))
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / clock_ticks_per_sec())
}

/// `sysconf(_SC_CLK_TCK)`, which is 100 on every Linux platform Rust supports; read once from
/// `getconf` when available.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let stats = ProcessStats::of(std::process::id()).unwrap();
        assert!(stats.peak_rss_kib >= stats.rss_kib && stats.rss_kib > 0);
        assert!(stats.cpu_secs >= 0.0);
    }

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(cpu_secs(stat).unwrap() * clock_ticks_per_sec(), 300.0);
    }
}
