//! `/metrics` in the Prometheus text format: requests and latencies per route, the
//! writer's queue, PostgreSQL's read connections, the API tokens kept, the log's size
//! and the age of the newest checkpoint.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

use axum::{extract::State, http::header, response::IntoResponse};

use super::{ApiError, AppState};

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics(Mutex<BTreeMap<(String, String, u16), Series>>);

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let s = all
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                s.buckets[i] += 1;
            }
        }
    }
}

pub async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let db = state.ledger.db();
    let size = crate::store::audit_log::size(db).await?;
    let newest = crate::store::audit_log::checkpoints(db, 1).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP keeptrack_http_requests_total Requests answered."
    );
    let _ = writeln!(out, "# TYPE keeptrack_http_requests_total counter");
    let _ = writeln!(
        out,
        "# HELP keeptrack_http_request_seconds Time to answer a request."
    );
    let _ = writeln!(out, "# TYPE keeptrack_http_request_seconds histogram");
    {
        let all = state.metrics.0.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), s) in all.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            let _ = writeln!(out, "keeptrack_http_requests_total{{{labels}}} {}", s.count);
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "keeptrack_http_request_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "keeptrack_http_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "keeptrack_http_request_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "keeptrack_http_request_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
    let (batches, commands) = state.ledger.batch_stats();
    let (hearing, kept) = state.tokens.stats();
    let gauges = [
        (
            "keeptrack_writer_queue_depth",
            "gauge",
            "Commands waiting for the writer.",
            state.ledger.queue_depth() as f64,
        ),
        (
            "keeptrack_writer_batches_total",
            "counter",
            "Transactions the writer committed.",
            batches as f64,
        ),
        (
            "keeptrack_writer_commands_total",
            "counter",
            "Commands the writer ran (batch size = commands / batches).",
            commands as f64,
        ),
        (
            "keeptrack_writer_batches_retried_total",
            "counter",
            "Batches run again: with a savepoint per command after one failed part-way, or under the lock after another writer overtook one begun without it.",
            state.ledger.batches_retried() as f64,
        ),
        (
            "keeptrack_access_notices_heard",
            "gauge",
            "1 while this server hears PostgreSQL's notices of changes to tokens, users and \
             groups, and so keeps the API tokens it looked up; 0 on SQLite.",
            f64::from(u8::from(hearing)),
        ),
        (
            "keeptrack_token_requests_kept_total",
            "counter",
            "Requests whose API token this server had kept, so it was not looked up.",
            kept as f64,
        ),
        (
            "keeptrack_audit_log_size",
            "gauge",
            "Entries in the audit log.",
            size as f64,
        ),
    ];
    let pool = db.read_pool().map(|(busy, max)| {
        [
            (
                "keeptrack_db_read_connections_busy",
                "gauge",
                "PostgreSQL connections running a read now.",
                f64::from(busy),
            ),
            (
                "keeptrack_db_read_connections_max",
                "gauge",
                "The most PostgreSQL connections reads may use (--database-pool); busy at \
                 this for long means requests wait for one.",
                f64::from(max),
            ),
        ]
    });
    for (name, ty, help, value) in gauges.into_iter().chain(pool.into_iter().flatten()) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {ty}\n{name} {value}"
        );
    }
    if let Some((_, ts, _)) = newest.first() {
        let age = (crate::clock::now().as_microsecond() - ts) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP keeptrack_checkpoint_age_seconds Age of the newest signed checkpoint.\n\
             # TYPE keeptrack_checkpoint_age_seconds gauge\nkeeptrack_checkpoint_age_seconds {age}"
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
