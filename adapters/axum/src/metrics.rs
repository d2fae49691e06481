//! The Prometheus endpoint: [`ResetMetrics`] as text, with the queue
//! gauges read just before. Mount it behind your own guard or on a
//! separate listener ([`metrics_router`]), or behind the operator
//! console's guard ([`AdminConsole::metrics_router`](crate::AdminConsole::metrics_router)).
//!
//! ```no_run
//! # async fn demo(service: resetkit::ResetService, outbox: std::sync::Arc<resetkit::memory::InMemoryOutbox>) -> Result<(), Box<dyn std::error::Error>> {
//! use resetkit::metrics::ResetMetrics;
//! // The service was built with `.metrics(metrics.clone())`.
//! let metrics = service.metrics().cloned().unwrap_or_default();
//! // A listener only the monitoring network reaches:
//! let app = resetkit_axum::metrics_router(metrics, Some(outbox), "/metrics")?;
//! let listener = tokio::net::TcpListener::bind("10.0.0.5:9464").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resetkit::activity::QueueAge;
use resetkit::metrics::{self, ResetMetrics};

use crate::BuildError;

/// What the endpoint reads.
#[derive(Clone)]
pub(crate) struct MetricsSource {
    pub(crate) metrics: ResetMetrics,
    pub(crate) queue: Option<Arc<dyn QueueAge>>,
}

/// A router serving `metrics` at `path` (the mount paths' rule:
/// `/segment...`, ASCII letters, digits, `-`, `_`), with the queue gauges read from `queue` at each scrape. No
/// guard: mount it behind yours, or on a listener only Prometheus reaches.
pub fn metrics_router(
    metrics: ResetMetrics,
    queue: Option<Arc<dyn QueueAge>>,
    path: &str,
) -> Result<Router, BuildError> {
    check_path(path)?;
    Ok(Router::new()
        .route(path, get(scrape))
        .with_state(MetricsSource { metrics, queue }))
}

pub(crate) fn check_path(path: &str) -> Result<(), BuildError> {
    crate::page::check_mount_path(path, false)
}

/// `GET`: the metrics text. A failed queue read leaves the gauges as they
/// were (logged): the counters are still worth scraping.
pub(crate) async fn scrape(State(source): State<MetricsSource>) -> Response {
    if let Some(queue) = &source.queue {
        let read = async {
            let depth = queue.counts().await?.waiting;
            let oldest = queue.oldest_waiting().await?;
            Ok::<_, resetkit::error::StoreError>((depth, oldest))
        };
        match read.await {
            Ok((depth, oldest)) => {
                let age = oldest.map(|o| SystemTime::now().duration_since(o).unwrap_or_default());
                source.metrics.set_queue(depth, age);
            }
            Err(error) => tracing::warn!(%error, "metrics: reading the delivery queue failed"),
        }
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        source.metrics.render(),
    )
        .into_response()
}
