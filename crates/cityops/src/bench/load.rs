//! The benchmarks' MQTT load generator, shared by S1, S6 and S7: paced publishes over several
//! connections, in phases of a rate and a count per connection, waiting for every QoS 1
//! acknowledgement before it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// One phase of one connection: `count` messages at `per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub per_sec: f64,
    pub count: u64,
}

/// What the load generator did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// Messages handed to the MQTT clients.
    pub published: u64,
    /// QoS 1 acknowledgements received (equal to `published` at QoS 0).
    pub acked: u64,
    /// From the first publish to the last one handed over, slowest connection: when it is well over
    /// the phases' planned time, the broker pushed back and the offered rate was not reached.
    pub secs: f64,
}

/// The message a connection publishes: `(connection, index within the connection)` → topic and body.
pub type MakeMessage = dyn Fn(usize, u64) -> (String, Bytes) + Send + Sync;

/// Publishes `phases` on each of `connections` connections (client ids `{name}-{pid}-{c}`) and waits
/// (at most 60 s) for every acknowledgement at QoS 1.
pub async fn publish(
    host: &str,
    port: u16,
    name: &str,
    connections: usize,
    qos: QoS,
    phases: &[Phase],
    make: Arc<MakeMessage>,
) -> anyhow::Result<Sent> {
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let host = host.to_string();
        let id = format!("{name}-{}-{c}", std::process::id());
        let phases = phases.to_vec();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            publish_connection(&host, port, id, c, qos, &phases, make.as_ref()).await
        }));
    }
    let mut sent = Sent::default();
    for task in tasks {
        let one = task.await??;
        sent.published += one.published;
        sent.acked += one.acked;
        sent.secs = sent.secs.max(one.secs);
    }
    Ok(sent)
}

/// [`publish`] with owned arguments, for a task on another runtime.
pub async fn publish_owned(
    host: String,
    port: u16,
    name: String,
    connections: usize,
    qos: QoS,
    phases: Vec<Phase>,
    make: Arc<MakeMessage>,
) -> anyhow::Result<Sent> {
    publish(&host, port, &name, connections, qos, &phases, make).await
}

async fn publish_connection(
    host: &str,
    port: u16,
    client_id: String,
    connection: usize,
    qos: QoS,
    phases: &[Phase],
    make: &MakeMessage,
) -> anyhow::Result<Sent> {
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let started = Instant::now();
    let mut j = 0u64;
    for phase in phases {
        let phase_start = tokio::time::Instant::now();
        for k in 0..phase.count {
            // Paced against the phase's start, not tick by tick: a late wake-up (timers have 1 ms
            // granularity) is caught up at once, so the count and the mean rate stay as asked.
            let due = phase_start + Duration::from_secs_f64(k as f64 / phase.per_sec.max(1e-9));
            if due > tokio::time::Instant::now() + Duration::from_micros(500) {
                tokio::time::sleep_until(due).await;
            }
            let (topic, body) = make(connection, j);
            client.publish_bytes(topic, qos, false, body).await?;
            j += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if qos == QoS::AtMostOnce {
        // Give QoS 0 writes time to leave the client before disconnecting.
        tokio::time::sleep(Duration::from_millis(200)).await;
    } else {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < j && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    Ok(Sent {
        published: j,
        acked: if qos == QoS::AtMostOnce {
            j
        } else {
            acked.load(Ordering::Relaxed)
        },
        secs,
    })
}

/// Notes a reading of a count: `seen` holds its last value and when that value changed.
pub fn observe(seen: &mut (u64, Instant), now: u64) {
    if now != seen.0 {
        *seen = (now, Instant::now());
    }
}

/// Waits until `count()` reaches `target` or has not changed for `quiet`, going on from `seen` (the
/// count's last value and when it changed, as watched so far); returns the last value and when it
/// last changed (to the 5 ms the count is read at).
pub async fn settle(
    target: u64,
    quiet: Duration,
    mut seen: (u64, Instant),
    count: impl Fn() -> u64,
) -> (u64, Instant) {
    loop {
        observe(&mut seen, count());
        if seen.0 >= target || seen.1.elapsed() > quiet {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
