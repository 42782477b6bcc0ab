//! The benchmark's report: a Markdown table with rot-server's and ElectrumX's figures side
//! by side and their ratios, plus the machine, chain and command that produced it. The same
//! text is printed and written into docs/benchmarks.md between fixed markers.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::comparison::{Comparison, IndexResult};
use crate::load::LoadResult;

/// Marks the start of the generated part of the docs section.
pub const BEGIN_MARKER: &str = "<!-- rot-bench index: begin generated results -->";
/// Marks its end.
pub const END_MARKER: &str = "<!-- rot-bench index: end generated results -->";

/// Where and how the run happened.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The command that produced the figures.
    pub command: String,
    /// The commit benchmarked, if known.
    pub commit: Option<String>,
}

/// The report as Markdown.
pub fn render(run: &Comparison, context: &RunContext) -> String {
    let mut out = String::new();
    let chain = &run.chain.manifest;
    let (rot, ex) = (fastest(&run.rot_index), fastest(&run.electrumx_index));
    let (rot_rss, ex_rss) = (
        highest_rss(&run.rot_index),
        highest_rss(&run.electrumx_index),
    );
    let _ = writeln!(out, "Command: `{}`", context.command);
    let _ = writeln!(out);
    let _ = writeln!(out, "- Machine: {}", machine());
    if let Some(commit) = &context.commit {
        let _ = writeln!(out, "- rot-server: release build of commit `{commit}`");
    }
    let _ = writeln!(
        out,
        "- Peer: {} (`COIN=Litecoin NET=regtest DB_ENGINE=leveldb`, default cache; request cost limits off: `COST_SOFT_LIMIT=0 COST_HARD_LIMIT=0`). Query rows compare with its TCP send hold off (see below); the \"as shipped\" rows with it on",
        run.electrumx_version
    );
    let _ = writeln!(
        out,
        "- Node: {} regtest, both servers over the same node, one after the other",
        chain.node_version
    );
    let _ = writeln!(
        out,
        "- Chain: {} transactions in {} blocks over {} addresses ({} unspent outputs of the builder's; node data dir {}; built in {:.0} s, {})",
        chain.transactions,
        chain.height + 1,
        chain.spec.addresses,
        chain.utxos,
        mib(chain.datadir_bytes),
        chain.build_secs,
        if run.chain.built_now {
            "by this run"
        } else {
            "reused from the cache"
        }
    );
    let _ = writeln!(
        out,
        "- Queries: {} funded addresses ({} UTXOs in all, identical answers from both servers), {} s per level and server in two alternating stretches, one connection per client, one request in flight each",
        run.sample,
        run.sample_utxos,
        run.duration.as_secs()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| measure | rot-server | ElectrumX | rot-server / ElectrumX | target |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- |");
    let _ = writeln!(
        out,
        "| initial indexing time, best of {} | {} | {} | {:.2}× faster | ≥ 3× faster |",
        run.rot_index.len().min(run.electrumx_index.len()),
        secs(rot.elapsed),
        secs(ex.elapsed),
        ex.elapsed.as_secs_f64() / rot.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| indexing time of each run | {} | {} | | |",
        all_times(&run.rot_index),
        all_times(&run.electrumx_index)
    );
    let _ = writeln!(
        out,
        "| peak RSS while indexing, highest run | {} | {} | {:.2}× | lower |",
        kib(rot_rss),
        kib(ex_rss),
        rot_rss as f64 / ex_rss as f64
    );
    let _ = writeln!(
        out,
        "| server CPU while indexing (best run) | {:.1} s | {:.1} s | {:.2}× | |",
        rot.server.cpu_secs,
        ex.server.cpu_secs,
        rot.server.cpu_secs / ex.server.cpu_secs
    );
    let _ = writeln!(
        out,
        "| node CPU while indexing (best run) | {:.1} s | {:.1} s | {:.2}× | |",
        rot.node_cpu_secs,
        ex.node_cpu_secs,
        rot.node_cpu_secs / ex.node_cpu_secs
    );
    let _ = writeln!(
        out,
        "| index size on disk | {} | {} | {:.2}× | |",
        mib(rot.disk_bytes),
        mib(ex.disk_bytes),
        rot.disk_bytes as f64 / ex.disk_bytes as f64
    );
    for level in &run.loads {
        load_row(&mut out, "", &level.rot, &level.electrumx, "≥ 5×");
    }
    for level in &run.loads {
        let (ours, theirs) = (
            level.rot.server_cpu_per_request(),
            level.electrumx.server_cpu_per_request(),
        );
        let _ = writeln!(
            out,
            "| server CPU per UTXO query, {} client(s) | {} | {} | {:.2}× less | |",
            level.rot.clients,
            micros(ours),
            micros(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64().max(f64::EPSILON)
        );
    }
    for level in &run.loads {
        load_row(
            &mut out,
            ", ElectrumX as shipped (send hold on)",
            &level.rot,
            &level.electrumx_shipped,
            "",
        );
    }
    let _ = writeln!(
        out,
        "| peak RSS at the end | {} | {} | {:.2}× | |",
        kib(run.final_peak_rss_kib.0),
        kib(run.final_peak_rss_kib.1),
        run.final_peak_rss_kib.0 as f64 / run.final_peak_rss_kib.1 as f64
    );
    let errors: u64 = run
        .loads
        .iter()
        .map(|l| l.rot.errors + l.electrumx.errors + l.electrumx_shipped.errors)
        .sum();
    if errors > 0 {
        let _ = writeln!(out, "\n{errors} requests failed during the load levels.");
    }
    out
}

/// The run that indexed fastest.
fn fastest(runs: &[IndexResult]) -> &IndexResult {
    runs.iter()
        .min_by_key(|r| r.elapsed)
        .expect("at least one indexing run")
}

/// The highest peak memory of all runs.
fn highest_rss(runs: &[IndexResult]) -> u64 {
    runs.iter()
        .map(|r| r.server.peak_rss_kib)
        .max()
        .unwrap_or(0)
}

/// Every run's time, e.g. `27.8 s, 40.7 s`.
fn all_times(runs: &[IndexResult]) -> String {
    runs.iter()
        .map(|r| secs(r.elapsed))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table row comparing a load level.
fn load_row(out: &mut String, label: &str, ours: &LoadResult, theirs: &LoadResult, target: &str) {
    let rate = |r: &LoadResult| {
        format!(
            "{:.0} req/s (p50 {}, p99 {}; cores: server {:.1}, clients {:.1})",
            r.rate(),
            ms(r.p50),
            ms(r.p99),
            r.server_cores,
            r.client_cores
        )
    };
    let _ = writeln!(
        out,
        "| UTXO queries, {} client(s){label} | {} | {} | {:.2}× | {target} |",
        ours.clients,
        rate(ours),
        rate(theirs),
        ours.rate() / theirs.rate()
    );
}

/// Replaces the generated part of `doc` (between the markers) with `report`, or appends the
/// markers and the report under `heading` when the doc has no such part yet.
pub fn write_into_doc(doc: &Path, heading: &str, report: &str) -> anyhow::Result<()> {
    let current = match std::fs::read_to_string(doc) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", doc.display())),
    };
    let generated = format!("{BEGIN_MARKER}\n{report}{END_MARKER}");
    let updated = match (current.find(BEGIN_MARKER), current.find(END_MARKER)) {
        (Some(begin), Some(end)) if begin < end => format!(
            "{}{generated}{}",
            &current[..begin],
            &current[end + END_MARKER.len()..]
        ),
        _ => {
            let separator = if current.is_empty() || current.ends_with("\n\n") {
                ""
            } else if current.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{current}{separator}{heading}\n\n{generated}\n")
        }
    };
    std::fs::write(doc, updated).with_context(|| format!("writing {}", doc.display()))
}

/// CPU model, cores and memory from `/proc`.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores ({model}), {:.0} GiB RAM, shared by the node, both servers and the load generator",
        memory_kib as f64 / 1024.0 / 1024.0
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn kib(value: u64) -> String {
    format!("{:.0} MiB", value as f64 / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_section_is_appended_then_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("rot-bench-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("benchmarks.md");
        std::fs::write(&doc, "# Benchmarks\n\n## Other\n\ntext\n").unwrap();
        write_into_doc(&doc, "## Mine", "first\n").unwrap();
        let once = std::fs::read_to_string(&doc).unwrap();
        assert!(once.starts_with("# Benchmarks\n\n## Other\n\ntext\n\n## Mine\n\n"));
        assert!(once.contains("first\n"));
        std::fs::write(&doc, format!("{once}\n## After\n\nkept\n")).unwrap();
        write_into_doc(&doc, "## Mine", "second\n").unwrap();
        let twice = std::fs::read_to_string(&doc).unwrap();
        assert!(!twice.contains("first") && twice.contains("second\n"));
        assert!(twice.contains("## Other\n\ntext") && twice.ends_with("## After\n\nkept\n"));
        assert_eq!(twice.matches(BEGIN_MARKER).count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
