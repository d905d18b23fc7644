//! The platform under test of S6 and S7: started in the bench's own process, or in a process of its
//! own (`cityops bench-platform`, hidden) so that its memory is measured apart from the load
//! generator and the websocket clients, and read through `/metrics` as an operator would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::io::{BufRead, BufReader, Read};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::report::proc_status_kb;
use super::s5_fanout::{Clients, connect_clients};
use super::s6_e2e::{decode, start_platform};
use crate::app::App;

/// Where the platform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In the bench's process: its memory includes the load generator and the clients.
    InProcess,
    /// In a child process: its memory is the platform's alone (embedded broker included).
    Child,
}

/// The ingest and store counters a scenario reads, cumulative since the platform started.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub received: u64,
    pub accepted: u64,
    pub shed: u64,
    pub rejected: u64,
    /// Incidents opened plus cleared: one event each.
    pub events: u64,
    pub store_batches: u64,
    pub store_commit_us: u64,
    /// Gauges, now: events in the bus ring and waiting for the event log writer.
    pub bus_depth: u64,
    pub log_queue: u64,
}

pub(crate) enum Platform {
    /// Boxed: an `App` is several hundred bytes, a child's handle a few words.
    InProcess(Box<App>),
    Child(ChildPlatform),
}

pub(crate) struct ChildPlatform {
    child: std::process::Child,
    pid: u32,
    http_addr: SocketAddr,
    mqtt_addr: (String, u16),
}

impl Platform {
    /// Starts the platform as S6 and S7 run it (see [`start_platform`]) with the bench user created.
    pub(crate) async fn start(
        placement: Placement,
        data_dir: &Path,
        devices: usize,
        client_id: &str,
    ) -> anyhow::Result<Self> {
        match placement {
            Placement::InProcess => {
                let app = start_platform(data_dir, devices, client_id).await?;
                ensure_bench_user(&app.store).await?;
                Ok(Self::InProcess(Box::new(app)))
            }
            Placement::Child => Ok(Self::Child(
                ChildPlatform::spawn(data_dir, devices, client_id).await?,
            )),
        }
    }

    pub(crate) fn http_addr(&self) -> SocketAddr {
        match self {
            Self::InProcess(app) => app.http_addr,
            Self::Child(child) => child.http_addr,
        }
    }

    pub(crate) fn mqtt_addr(&self) -> (String, u16) {
        match self {
            Self::InProcess(app) => app.mqtt_addr.clone(),
            Self::Child(child) => child.mqtt_addr.clone(),
        }
    }

    /// `n` dashboard clients of `/ws` taking incident events, logged in over HTTP as the bench user
    /// (as a dashboard would); S6's publish times ride in the events' values.
    pub(crate) async fn connect_incident_dashboards(
        &self,
        n: usize,
        epoch: std::time::Instant,
    ) -> anyhow::Result<Clients> {
        let token = login(self.http_addr()).await?;
        let url = format!(
            "ws://{}/ws?types=incident.opened,incident.cleared&token={token}",
            self.http_addr()
        );
        connect_clients(&url, n, epoch, decode).await
    }

    pub(crate) async fn counters(&self) -> anyhow::Result<Counters> {
        match self {
            Self::InProcess(app) => {
                let s = &app.ingest_stats;
                Ok(Counters {
                    received: s.messages_received.get(),
                    accepted: s.messages_accepted.get(),
                    shed: s.shed_total(),
                    rejected: s.rejected.iter().map(|c| c.get()).sum(),
                    events: s.incidents_opened.get() + s.incidents_cleared.get(),
                    store_batches: s.store_batches.get(),
                    store_commit_us: s.store_commit_micros.get(),
                    bus_depth: app.bus.depth() as u64,
                    log_queue: app.bus.log_queue_len(),
                })
            }
            Self::Child(child) => {
                let text = http_request(child.http_addr, "GET", "/metrics", None).await?;
                Ok(Counters::from_prometheus(&text))
            }
        }
    }

    /// Resident memory of the platform's process now (MB): the whole bench process when in-process.
    pub(crate) fn rss_mb(&self) -> f64 {
        match self {
            Self::InProcess(_) => super::report::rss_mb(),
            Self::Child(child) => proc_status_kb(&child.pid.to_string(), "VmRSS:") / 1024.0,
        }
    }

    /// Peak resident memory of the platform's process so far (MB).
    pub(crate) fn peak_rss_mb(&self) -> f64 {
        match self {
            Self::InProcess(_) => super::report::peak_rss_mb(),
            Self::Child(child) => proc_status_kb(&child.pid.to_string(), "VmHWM:") / 1024.0,
        }
    }

    pub(crate) async fn shutdown(self) -> anyhow::Result<()> {
        match self {
            Self::InProcess(app) => (*app).shutdown().await,
            Self::Child(child) => child.shutdown().await,
        }
    }
}

impl Counters {
    fn from_prometheus(text: &str) -> Self {
        let mut c = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = value as u64;
            // Labelled families are summed over their labels.
            let family = name.split('{').next().unwrap_or(name);
            match family {
                "cityops_ingest_messages_received_total" => c.received += value,
                "cityops_ingest_messages_accepted_total" => c.accepted += value,
                "cityops_ingest_shed_total" => c.shed += value,
                "cityops_ingest_rejected_total" => c.rejected += value,
                "cityops_incidents_opened_total" | "cityops_incidents_cleared_total" => {
                    c.events += value
                }
                "cityops_store_batches_total" => c.store_batches += value,
                "cityops_store_commit_microseconds_total" => c.store_commit_us += value,
                "cityops_bus_depth_events" => c.bus_depth = value,
                "cityops_bus_log_queue_events" => c.log_queue = value,
                _ => {}
            }
        }
        c
    }

    /// What happened between `before` and `self`.
    pub(crate) fn since(&self, before: &Self) -> Self {
        Self {
            received: self.received - before.received,
            accepted: self.accepted - before.accepted,
            shed: self.shed - before.shed,
            rejected: self.rejected - before.rejected,
            events: self.events - before.events,
            store_batches: self.store_batches - before.store_batches,
            store_commit_us: self.store_commit_us - before.store_commit_us,
            bus_depth: self.bus_depth,
            log_queue: self.log_queue,
        }
    }
}

/// The first line the child prints once it serves; the parent waits for it.
const READY: &str = "cityops-bench-platform ready";

impl ChildPlatform {
    async fn spawn(data_dir: &Path, devices: usize, client_id: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        // A profiler may wrap the platform, e.g. CITYOPS_BENCH_PLATFORM_WRAPPER=heaptrack.
        let wrapper = std::env::var("CITYOPS_BENCH_PLATFORM_WRAPPER")
            .ok()
            .filter(|w| !w.trim().is_empty());
        let mut command = match &wrapper {
            Some(wrapper) => {
                let mut words = wrapper.split_whitespace();
                let mut command = std::process::Command::new(words.next().unwrap_or_default());
                command.args(words).arg(&exe);
                command
            }
            None => std::process::Command::new(&exe),
        };
        let mut child = command
            .arg("bench-platform")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--devices")
            .arg(devices.to_string())
            .arg("--client-id")
            .arg(client_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("bench platform: no stdout"))?;
        // The child is killed (Drop) if anything below fails, which also ends the blocking read.
        let mut child = Self {
            child,
            pid,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mqtt_addr: (String::new(), 0),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Blocking reads on a thread of their own: the first line is handed over, the rest drained
        // so the child never blocks on a full pipe.
        std::thread::Builder::new()
            .name("bench-platform-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                // A wrapper (a profiler) may print lines of its own first.
                let ready = lines
                    .by_ref()
                    .find(|line| line.as_ref().map_or(true, |l| l.starts_with(READY)));
                let _ = tx.send(ready);
                for _ in lines.by_ref() {}
            })?;
        let line = tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .map_err(|_| anyhow::anyhow!("bench platform: not ready within 120 s"))?
            .map_err(|_| anyhow::anyhow!("bench platform: its output was lost"))?
            .ok_or_else(|| anyhow::anyhow!("bench platform exited before it was ready"))??;
        // "<READY> http=ADDR mqtt=HOST:PORT"
        let rest = line
            .strip_prefix(READY)
            .ok_or_else(|| anyhow::anyhow!("bench platform: unexpected first line {line:?}"))?;
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .ok_or_else(|| anyhow::anyhow!("bench platform: no {key} in {line:?}"))
        };
        let http_addr: SocketAddr = field("http=")?.parse()?;
        let mqtt = field("mqtt=")?;
        let (host, port) = mqtt
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("bench platform: bad mqtt address {mqtt:?}"))?;
        child.mqtt_addr = (host.to_string(), port.parse()?);
        child.http_addr = http_addr;
        Ok(child)
    }

    /// Closing the child's stdin asks it to stop cleanly; it is killed if it has not within 30 s.
    async fn shutdown(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "bench platform exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "bench platform did not stop within 30 s of being asked; killed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildPlatform {
    /// Never leaves a platform running behind the bench (after an error, or a stop that timed out).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child's side (`cityops bench-platform`): start the platform, create the bench user, print the
/// ready line with the addresses, serve until standard input closes (the parent is done or gone).
pub async fn serve_child(data_dir: PathBuf, devices: usize, client_id: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)?;
    let app = start_platform(&data_dir, devices, client_id).await?;
    ensure_bench_user(&app.store).await?;
    let (host, port) = &app.mqtt_addr;
    println!("{READY} http={} mqtt={host}:{port}", app.http_addr);
    tokio::task::spawn_blocking(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while stdin.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    })
    .await?;
    app.shutdown().await
}

const USER: &str = "bench.viewer";
const PASSWORD: &str = "bench correct horse battery";

/// Creates the bench's dashboard user (an admin) unless it exists.
pub(crate) async fn ensure_bench_user(store: &cityops_store::Store) -> anyhow::Result<()> {
    if store.user_by_name(USER).await?.is_none() {
        let hash = cityops_auth::hash_password(PASSWORD)
            .map_err(|e| anyhow::anyhow!("hash_password: {e:?}"))?;
        let insert = cityops_store::users::UserInsert {
            username: USER,
            display_name: USER,
            role: cityops_auth::Role::Admin,
            department: None,
            password_hash: &hash,
        };
        store.create_user(&insert, chrono::Utc::now()).await?;
    }
    Ok(())
}

/// Logs the bench user in over HTTP, as a dashboard would; returns the bearer token.
pub(crate) async fn login(addr: SocketAddr) -> anyhow::Result<String> {
    let body = serde_json::json!({ "username": USER, "password": PASSWORD }).to_string();
    let body = http_request(addr, "POST", "/api/v1/auth/login", Some(&body)).await?;
    let body: serde_json::Value = serde_json::from_str(&body)?;
    body["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("login: no token in {body}"))
}

/// One plain HTTP/1.1 request over a socket (the binary has no HTTP client, and the bench needs
/// two kinds of request); the body of a 200 answer, or an error naming the status.
async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = json.unwrap_or("");
    let content_type = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{method} {path}: malformed response"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {}",
        head.lines().next().unwrap_or(head)
    );
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{method} {path}: chunked answers are not read by the bench"
    );
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_labelled_families_and_skip_comments() {
        let text = "# HELP cityops_ingest_shed_total x\n\
                    # TYPE cityops_ingest_shed_total counter\n\
                    cityops_ingest_shed_total{reason=\"queue_delay\"} 3\n\
                    cityops_ingest_rejected_total{reason=\"a\"} 1\n\
                    cityops_ingest_rejected_total{reason=\"b\"} 2\n\
                    cityops_incidents_opened_total 10\n\
                    cityops_incidents_cleared_total 7\n\
                    cityops_incidents_open 3\n\
                    cityops_ingest_messages_received_total 20\n";
        let c = Counters::from_prometheus(text);
        assert_eq!((c.shed, c.rejected, c.events, c.received), (3, 3, 17, 20));
    }
}
