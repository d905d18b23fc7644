//! The live websocket `/ws`: bus events as JSON text frames, replay with `?since=N`, filters with
//! `?types=a,b`, and a `resync` message instead of a silent drop when a client falls behind.
//!
//! Every client reads the shared bus ring with its own cursor, so a slow client costs only itself.
//! Replay takes what the ring still holds; anything older comes from the store's event log first.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::response::Response;
use chrono::Utc;
use cityops_bus::{Filter, Published, Recv, Subscription};
use futures_util::SinkExt;
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::{ApiError, AppState};
use cityops_auth::Permission;

/// Frames are written to the socket once this many bytes are queued (and at every flush). It bounds
/// what a client that reads slowly holds in the server: with the library's default (128 KiB) a
/// lagging client kept a batch of up to 256 frames (~90 KB) queued: bench S6 with 1,000 dashboards
/// measured the platform at 230 MB, 116 MB after this; 16 KiB still carries ~40 incident frames per write.
const WRITE_BUFFER: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WsParams {
    /// Replay every event with a sequence number above this one.
    since: Option<u64>,
    /// Comma-separated event types; all when absent.
    types: Option<String>,
    /// The bearer token, for clients that cannot set headers (browsers); read by [`Authenticated`].
    #[allow(dead_code)]
    token: Option<String>,
}

pub(crate) async fn handler(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    auth.require(Permission::IncidentsRead)?;
    let Query(params) = params.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let filter = match &params.types {
        Some(types) => Filter::types(types.split(',')).map_err(ApiError::Invalid)?,
        None => Filter::all(),
    };
    Ok(upgrade
        .max_message_size(64 * 1024)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            state.api_stats.ws_connections.inc();
            state.api_stats.ws_clients.inc();
            let mut client = Client {
                state: state.clone(),
                socket,
            };
            let end = client.serve(params.since, filter).await;
            state.api_stats.ws_clients.dec();
            tracing::debug!(?end, "websocket client left");
        }))
}

#[derive(Debug)]
enum End {
    ClientClosed,
    SendFailed,
    SendTimeout,
    Shutdown,
}

struct Client {
    state: AppState,
    socket: WebSocket,
}

impl Client {
    async fn serve(&mut self, since: Option<u64>, filter: Filter) -> End {
        let bus = self.state.bus.clone();
        let mut sub = match since {
            None => bus.subscribe(filter.clone()),
            Some(since) if since > bus.last_seq() => {
                // A sequence number from the future (a client of another database): start afresh.
                if let Err(end) = self.resync("unknown_seq", 0, bus.last_seq() + 1).await {
                    return end;
                }
                bus.subscribe(filter.clone())
            }
            Some(since) => match self.replay_from_store(since, &filter).await {
                Ok(cursor) => bus.subscribe_after(cursor, filter.clone()),
                Err(end) => return end,
            },
        };
        self.live(&mut sub).await
    }

    /// Sends logged events the ring no longer holds; returns the cursor to continue from in the ring.
    async fn replay_from_store(&mut self, since: u64, filter: &Filter) -> Result<u64, End> {
        let mut cursor = since;
        while cursor + 1 < self.state.bus.first_seq_in_memory() {
            let rows = Self::logged_after(&self.state, cursor).await;
            let Some(first) = rows.first() else {
                // Neither the log nor the ring has what follows `cursor`: say so and go on from the ring.
                let resume = self.state.bus.first_seq_in_memory();
                self.resync("gap", resume - cursor - 1, resume).await?;
                return Ok(resume - 1);
            };
            if first.seq > cursor + 1 {
                self.resync("gap", first.seq - cursor - 1, first.seq)
                    .await?;
            }
            for row in rows {
                cursor = row.seq;
                if filter.matches_type(&row.event_type) {
                    self.state.api_stats.ws_replayed_from_store.inc();
                    self.send(row.json).await?;
                }
            }
        }
        Ok(cursor)
    }

    /// Logged events after `cursor`. The log writer trails the bus by a few milliseconds, so when the
    /// next event is not logged yet this waits for it (up to 2 s) rather than report a gap.
    async fn logged_after(state: &AppState, cursor: u64) -> Vec<cityops_store::StoredEvent> {
        for _ in 0..40 {
            match state.store.events_after(cursor, 500).await {
                Ok(rows) if rows.first().is_some_and(|r| r.seq == cursor + 1) => return rows,
                Ok(rows) if rows.len() >= 500 => return rows,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "event log read failed during replay"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        state
            .store
            .events_after(cursor, 500)
            .await
            .unwrap_or_default()
    }

    async fn live(&mut self, sub: &mut Subscription) -> End {
        let mut shutdown = self.state.shutdown.clone();
        let mut batch = Vec::with_capacity(256);
        let mut ping = tokio::time::interval(Duration::from_secs(30));
        ping.reset();
        // Replay of a backlog is allowed to be long; once a client has caught up, falling too far
        // behind again means it is too slow, and it is resynchronised.
        let mut caught_up = false;
        loop {
            if *shutdown.borrow() {
                let _ = self.socket.send(Message::Close(None)).await;
                return End::Shutdown;
            }
            batch.clear();
            let received = tokio::select! {
                r = sub.recv_many(&mut batch, 256) => r,
                incoming = self.socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::ClientClosed,
                    Some(Ok(_)) => continue, // pings are answered by the library; text from clients is ignored
                },
                _ = shutdown.changed() => continue,
                _ = ping.tick() => {
                    if let Err(end) = self.send_message(Message::Ping(Vec::new())).await {
                        return end;
                    }
                    continue;
                }
            };
            match received {
                None => {
                    if let Err(end) = self.send_batch(&mut batch).await {
                        return end;
                    }
                    let behind = self.state.bus.last_seq().saturating_sub(sub.cursor());
                    if behind == 0 {
                        caught_up = true;
                    } else if caught_up && behind > self.state.ws.max_lag {
                        let resume = self.state.bus.last_seq() + 1;
                        if let Err(end) = self.resync("lagged", behind, resume).await {
                            return end;
                        }
                        sub.seek(resume - 1);
                    }
                }
                Some(Recv::Lagged {
                    missed,
                    resume_seq: _,
                }) => {
                    // Fell out of the ring: skip to now; the client refetches its state.
                    let resume = self.state.bus.last_seq() + 1;
                    let missed = missed + (resume - 1).saturating_sub(sub.cursor());
                    if let Err(end) = self.resync("lagged", missed, resume).await {
                        return end;
                    }
                    sub.seek(resume - 1);
                }
                Some(Recv::Closed) => {
                    let _ = self.socket.send(Message::Close(None)).await;
                    return End::Shutdown;
                }
                Some(Recv::Event(_)) => unreachable!("recv_many appends events to the batch"),
            }
        }
    }

    async fn resync(&mut self, reason: &str, missed: u64, resume_seq: u64) -> Result<(), End> {
        if reason == "gap" {
            self.state.api_stats.ws_resyncs_gap.inc();
        } else {
            self.state.api_stats.ws_resyncs_lagged.inc();
        }
        tracing::debug!(
            reason,
            missed,
            resume_seq,
            "websocket client resynchronised"
        );
        let frame = serde_json::json!({
            "type": "resync",
            "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": { "reason": reason, "missed": missed, "resume_seq": resume_seq },
        });
        self.send_message(Message::Text(frame.to_string())).await
    }

    async fn send(&mut self, json: String) -> Result<(), End> {
        self.send_message(Message::Text(json)).await?;
        self.state.api_stats.ws_frames_sent.inc();
        Ok(())
    }

    /// Sends a batch of events as frames written together and flushed once: one write for the batch
    /// instead of one per frame (the socket has TCP_NODELAY, so each flush goes out at once).
    async fn send_batch(&mut self, batch: &mut Vec<Arc<Published>>) -> Result<(), End> {
        let frames = batch.len() as u64;
        if frames == 0 {
            return Ok(());
        }
        let socket = &mut self.socket;
        let sent = within(self.state.ws.send_timeout, async {
            for event in batch.drain(..) {
                socket.feed(Message::Text(event.json.to_string())).await?;
            }
            socket.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {
                self.state.api_stats.ws_frames_sent.add(frames);
                Ok(())
            }
            Ok(Err(_)) => Err(End::SendFailed),
            Err(_) => {
                self.state.api_stats.ws_send_timeouts.inc();
                Err(End::SendTimeout)
            }
        }
    }

    async fn send_message(&mut self, message: Message) -> Result<(), End> {
        match within(self.state.ws.send_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::SendFailed),
            Err(_) => {
                self.state.api_stats.ws_send_timeouts.inc();
                Err(End::SendTimeout)
            }
        }
    }
}

/// `tokio::time::timeout`, except that a send the socket takes at once (the usual case: its buffer
/// has room) never arms a timer: registering and cancelling one per send in every client's task
/// cost more than the send itself when one event fans out to many clients. Only a send that has to
/// wait is bounded by `limit`, counted from then.
async fn within<T>(
    limit: Duration,
    send: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    let mut send = std::pin::pin!(send);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(send.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => tokio::time::timeout(limit, send).await,
    }
}
