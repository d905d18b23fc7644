//! Benchmark reports: a table on the terminal, JSON results and an SVG chart, all from one struct.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One measured comparison: the platform against its baseline, run in the same process one after the other.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub case: String,
    pub platform: f64,
    pub baseline: f64,
    /// platform / baseline (for throughputs; for latencies the row says so in `unit`).
    pub ratio: f64,
    pub unit: String,
    /// What the issue asks, in words, and whether this run met it.
    pub goal: String,
    pub met: Option<bool>,
    /// Extra figures of this case (lost messages, CPU time per reading, …).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A histogram of latencies in microseconds, in logarithmic buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Histogram {
    pub label: String,
    /// (upper bound in µs, count)
    pub buckets: Vec<(u64, u64)>,
}

/// A figure over time (S7: p99 latency, RSS, shed per second), drawn as a line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub label: String,
    pub unit: String,
    /// (seconds since the start, value)
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub title: String,
    pub commit: String,
    pub machine: String,
    pub started_at: String,
    pub rows: Vec<Row>,
    pub peak_rss_mb: f64,
    pub histograms: Vec<Histogram>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, title: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            title: title.to_string(),
            commit: git_commit(),
            machine: machine(),
            started_at: chrono::Utc::now().to_rfc3339(),
            rows: Vec::new(),
            peak_rss_mb: 0.0,
            histograms: Vec::new(),
            series: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Prints the table and writes `<dir>/<scenario>.json` and `<dir>/<scenario>.svg`.
    pub fn finish(mut self, out_dir: &Path) -> anyhow::Result<Self> {
        self.peak_rss_mb = peak_rss_mb();
        println!("\n{} — {}", self.scenario, self.title);
        println!(
            "{:<44} {:>14} {:>14} {:>7}  {:<10} goal",
            "case", "cityops", "baseline", "ratio", "unit"
        );
        for row in &self.rows {
            let met = match row.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "",
            };
            println!(
                "{:<44} {:>14.1} {:>14.1} {:>7.2}  {:<10} {} {}",
                row.case, row.platform, row.baseline, row.ratio, row.unit, row.goal, met
            );
        }
        println!("peak RSS {:.1} MB", self.peak_rss_mb);
        for note in &self.notes {
            println!("note: {note}");
        }
        std::fs::create_dir_all(out_dir)?;
        std::fs::write(
            out_dir.join(format!("{}.json", self.scenario)),
            serde_json::to_string_pretty(&self)?,
        )?;
        std::fs::write(out_dir.join(format!("{}.svg", self.scenario)), self.svg())?;
        println!(
            "wrote {}/{}.json and .svg",
            out_dir.display(),
            self.scenario
        );
        Ok(self)
    }

    /// Bars of platform and baseline per case (and latency histograms when there are any).
    fn svg(&self) -> String {
        let width = 900.0;
        let bar_h = 16.0;
        let row_h = 44.0;
        let left = 330.0;
        let mut height = 60.0 + row_h * self.rows.len() as f64;
        for h in &self.histograms {
            height += 40.0 + 14.0 * h.buckets.len() as f64;
        }
        const CHART_H: f64 = 120.0;
        height += (CHART_H + 50.0) * self.series.len() as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="10" y="22" font-size="15">{} — {}</text>"#,
            esc(&self.scenario),
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="10" y="40" fill="#555">commit {} · {} · cityops (blue) vs baseline (grey)</text>"##,
            esc(&self.commit),
            esc(&self.machine)
        );
        for (i, row) in self.rows.iter().enumerate() {
            let y = 56.0 + row_h * i as f64;
            let max = row.platform.max(row.baseline).max(f64::MIN_POSITIVE);
            let scale = (width - left - 120.0) / max;
            let _ = writeln!(
                s,
                r#"<text x="10" y="{}">{}</text>"#,
                y + 13.0,
                esc(&row.case)
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{y}" width="{:.1}" height="{bar_h}" fill="#2b6cb0"/><text x="{:.1}" y="{}">{:.0} {}</text>"##,
                row.platform * scale,
                left + row.platform * scale + 4.0,
                y + 12.0,
                row.platform,
                esc(&row.unit)
            );
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{}" width="{:.1}" height="{bar_h}" fill="#a0aec0"/><text x="{:.1}" y="{}">{:.0} (×{:.2})</text>"##,
                y + bar_h + 2.0,
                row.baseline * scale,
                left + row.baseline * scale + 4.0,
                y + bar_h + 14.0,
                row.baseline,
                row.ratio
            );
        }
        let mut y = 60.0 + row_h * self.rows.len() as f64;
        for h in &self.histograms {
            let _ = writeln!(
                s,
                r#"<text x="10" y="{}" font-size="13">{} (µs, count)</text>"#,
                y + 14.0,
                esc(&h.label)
            );
            y += 24.0;
            let max = h.buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
            for (upper, count) in &h.buckets {
                let w = (width - left - 120.0) * (*count as f64) / max;
                let _ = writeln!(
                    s,
                    r##"<text x="10" y="{}">≤ {upper}</text><rect x="{left}" y="{}" width="{w:.1}" height="11" fill="#2b6cb0"/><text x="{:.1}" y="{}">{count}</text>"##,
                    y + 10.0,
                    y,
                    left + w + 4.0,
                    y + 10.0
                );
                y += 14.0;
            }
            y += 16.0;
        }
        for series in &self.series {
            let _ = writeln!(
                s,
                r#"<text x="10" y="{}" font-size="13">{} ({}) per second</text>"#,
                y + 14.0,
                esc(&series.label),
                esc(&series.unit)
            );
            y += 24.0;
            let x_max = series.points.iter().map(|p| p.0).fold(1.0, f64::max);
            let y_max = series
                .points
                .iter()
                .map(|p| p.1)
                .fold(f64::MIN_POSITIVE, f64::max);
            let (x0, w) = (60.0, width - 80.0);
            let _ = writeln!(
                s,
                r##"<rect x="{x0}" y="{y}" width="{w}" height="{CHART_H}" fill="none" stroke="#ccc"/><text x="10" y="{}">{y_max:.1}</text><text x="10" y="{}">0</text><text x="{}" y="{}">{x_max:.0} s</text>"##,
                y + 10.0,
                y + CHART_H,
                x0 + w - 30.0,
                y + CHART_H + 14.0
            );
            let points: Vec<String> = series
                .points
                .iter()
                .map(|(px, py)| {
                    format!(
                        "{:.1},{:.1}",
                        x0 + w * px / x_max,
                        y + CHART_H - CHART_H * py / y_max
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                r##"<polyline fill="none" stroke="#2b6cb0" stroke-width="1.5" points="{}"/>"##,
                points.join(" ")
            );
            y += CHART_H + 26.0;
        }
        s.push_str("</svg>\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Peak resident memory of this process (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    proc_status_kb("self", "VmHWM:") / 1024.0
}

/// Current resident memory (VmRSS), in MB.
pub fn rss_mb() -> f64 {
    proc_status_kb("self", "VmRSS:") / 1024.0
}

/// A `kB` field of `/proc/PROCESS/status` (`self` or a pid), 0 when it cannot be read.
pub(crate) fn proc_status_kb(process: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// CPU time (user + system) of `/proc/PROCESS` (`self`, or the pid of a broker the bench started), in
/// seconds; 0 when it cannot be read.
pub fn process_cpu_seconds(process: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{process}/stat"))
        .ok()
        .and_then(|stat| stat_cpu_seconds(&stat))
        .unwrap_or(0.0)
}

/// CPU time (user + system) of this process's threads whose name starts with one of `prefixes`, in
/// seconds. Only threads alive now count: a difference of two readings is right for threads that
/// live through both (a runtime's workers, a broker's threads).
pub fn thread_cpu_seconds(prefixes: &[&str]) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let name = stat
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map_or("", |(name, _)| name);
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .filter_map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// utime + stime of a `/proc/…/stat` line, in seconds (USER_HZ is 100 on Linux).
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores, {mem_gb:.0} GiB, {cpu}")
}

/// A histogram of microsecond latencies in power-of-two-ish buckets, with percentiles.
pub fn histogram(label: &str, latencies_us: &mut [u64]) -> (Histogram, Percentiles) {
    latencies_us.sort_unstable();
    let bounds = [
        50u64,
        100,
        200,
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        50_000,
        100_000,
        200_000,
        500_000,
        1_000_000,
        u64::MAX,
    ];
    let mut buckets: Vec<(u64, u64)> = bounds.iter().map(|b| (*b, 0)).collect();
    for v in latencies_us.iter() {
        if let Some(b) = buckets.iter_mut().find(|(upper, _)| v <= upper) {
            b.1 += 1;
        }
    }
    while buckets.last().is_some_and(|b| b.1 == 0) {
        buckets.pop();
    }
    let pct = |p: f64| -> u64 {
        if latencies_us.is_empty() {
            return 0;
        }
        latencies_us[((latencies_us.len() as f64 - 1.0) * p).round() as usize]
    };
    (
        Histogram {
            label: label.to_string(),
            buckets,
        },
        Percentiles {
            p50: pct(0.5),
            p99: pct(0.99),
            max: latencies_us.last().copied().unwrap_or(0),
        },
    )
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}
