//! Prometheus metrics, one registry per server instance (so tests can run several servers in one
//! process), rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub frames_refused: Counter,
    pub acks: Counter,
    /// Device changes the server kept but repaired (contract or role).
    pub repairs: Counter,
    /// Fields two writers set concurrently to different values (recorded, flagged).
    pub conflicts: Counter,
    /// From a sync frame's arrival to its ack being sent, in seconds.
    pub ack_latency: Histogram,
    /// Store append latency (waiting for the group commit included), in seconds.
    pub store_latency: Histogram,
    /// Appends per change-log commit (group commit).
    pub commit_batch_size: Histogram,
    pub cache_documents: Gauge,
    pub cache_bytes: Gauge,
    /// Quiet documents loaded afresh from their own save ([`crate::sync::docs`]).
    pub documents_settled: Counter,
    /// Password checks running, and waiting for their memory ([`crate::passwords`]).
    pub password_checks_running: Gauge,
    pub password_checks_waiting: Gauge,
    pub password_memory_budget_bytes: Gauge,
    /// Blob bytes received by the upload endpoint.
    pub upload_bytes: Counter,
    /// Uploads created on this node and not yet finished, terminated or expired.
    pub uploads_in_progress: Gauge,
    /// Refused or failed uploads, by reason (the error code the client got).
    pub upload_failures: Family<Vec<(String, String)>, Counter>,
    /// Making one photo's thumbnails, in seconds.
    pub thumbnail_seconds: Histogram,
    /// From a change's commit (here, or its notice from another node) to its rows being
    /// updated, in seconds.
    pub projection_lag: Histogram,
    /// Changes projected by this node.
    pub projected_changes: Counter,
    /// Steps (transactions) that projected changes on this node.
    pub projection_steps: Counter,
    /// The log position the projection reached (as last seen by this node).
    pub projection_position: Gauge,
    /// Projection transactions that failed (retried with backoff).
    pub projection_failures: Counter,
    /// Documents whose state did not decode, so their rows were left as they were.
    pub projection_skipped: Counter,
    /// Documents the projection read from the store and rebuilt (those it read in place, loaded
    /// on this node and holding every change of the step, are not counted).
    pub projection_docs_read: Counter,
    /// SLA clocks that went over their limit, by kind (`acknowledge`, `resolve`), counted by the
    /// node that recorded each (once across nodes).
    pub sla_breaches: Family<Vec<(String, String)>, Counter>,
    /// SLA clocks that passed the approaching threshold, by kind.
    pub sla_approaching: Family<Vec<(String, String)>, Counter>,
    /// SLA events the webhook took, and attempts it did not (retried).
    pub sla_webhook_deliveries: Counter,
    pub sla_webhook_failures: Counter,
    /// Sensor readings and the jobs their rules opened (`iot/`).
    pub sensors: crate::iot::SensorMetrics,
}

impl Metrics {
    /// Count a recorded SLA breach of the `kind` clock.
    pub fn sla_breached(&self, kind: &str) {
        self.sla_breaches
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    /// Count a recorded approaching SLA breach of the `kind` clock.
    pub fn sla_approaching(&self, kind: &str) {
        self.sla_approaching
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    /// Count an upload refused or failed with `code`.
    pub fn upload_failed(&self, code: &str) {
        self.upload_failures
            .get_or_create(&vec![("reason".to_string(), code.to_string())])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fieldsync");
        let m = Metrics {
            connections: Gauge::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            frames_refused: Counter::default(),
            acks: Counter::default(),
            repairs: Counter::default(),
            conflicts: Counter::default(),
            ack_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            store_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            cache_documents: Gauge::default(),
            cache_bytes: Gauge::default(),
            documents_settled: Counter::default(),
            password_checks_running: Gauge::default(),
            password_checks_waiting: Gauge::default(),
            password_memory_budget_bytes: Gauge::default(),
            upload_bytes: Counter::default(),
            uploads_in_progress: Gauge::default(),
            upload_failures: Family::default(),
            thumbnail_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            projection_lag: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            projected_changes: Counter::default(),
            projection_position: Gauge::default(),
            projection_failures: Counter::default(),
            projection_steps: Counter::default(),
            projection_skipped: Counter::default(),
            projection_docs_read: Counter::default(),
            sla_breaches: Family::default(),
            sla_approaching: Family::default(),
            sla_webhook_deliveries: Counter::default(),
            sla_webhook_failures: Counter::default(),
            sensors: Default::default(),
            registry: Registry::default(),
        };
        m.sensors.register(&mut registry);
        registry.register(
            "sync_connections",
            "Open sync connections",
            m.connections.clone(),
        );
        registry.register(
            "sync_frames_in",
            "Sync frames received",
            m.frames_in.clone(),
        );
        registry.register("sync_frames_out", "Sync frames sent", m.frames_out.clone());
        registry.register(
            "sync_frames_refused",
            "Sync frames refused with an error",
            m.frames_refused.clone(),
        );
        registry.register("sync_acks", "Document acks sent", m.acks.clone());
        registry.register(
            "sync_repairs",
            "Device changes kept and repaired by the server",
            m.repairs.clone(),
        );
        registry.register(
            "sync_conflicts",
            "Fields set concurrently to different values by two writers (kept, recorded in the audit log, flagged)",
            m.conflicts.clone(),
        );
        registry.register(
            "sync_ack_latency_seconds",
            "Frame arrival to ack",
            m.ack_latency.clone(),
        );
        registry.register(
            "store_append_latency_seconds",
            "Change log append",
            m.store_latency.clone(),
        );
        registry.register(
            "store_commit_batch_size",
            "Document appends per change-log commit",
            m.commit_batch_size.clone(),
        );
        registry.register(
            "doc_cache_documents",
            "Documents loaded in memory",
            m.cache_documents.clone(),
        );
        registry.register(
            "doc_cache_bytes",
            "Estimated memory of loaded documents",
            m.cache_bytes.clone(),
        );
        registry.register(
            "doc_cache_settled",
            "Quiet documents loaded afresh from their own save",
            m.documents_settled.clone(),
        );
        registry.register(
            "password_checks_running",
            "Password checks (argon2) running",
            m.password_checks_running.clone(),
        );
        registry.register(
            "password_checks_waiting",
            "Password checks waiting for memory",
            m.password_checks_waiting.clone(),
        );
        registry.register(
            "password_memory_budget_bytes",
            "Memory password checks may use at once",
            m.password_memory_budget_bytes.clone(),
        );
        registry.register(
            "upload_received_bytes",
            "Blob bytes received by the upload endpoint",
            m.upload_bytes.clone(),
        );
        registry.register(
            "uploads_in_progress",
            "Uploads created and not yet finished",
            m.uploads_in_progress.clone(),
        );
        registry.register(
            "projection_lag_seconds",
            "From a change's commit to its relational rows being updated",
            m.projection_lag.clone(),
        );
        registry.register(
            "projected_changes",
            "Changes projected into the relational rows by this node",
            m.projected_changes.clone(),
        );
        registry.register(
            "projection_position",
            "The change-log position the relational rows cover",
            m.projection_position.clone(),
        );
        registry.register(
            "projection_steps",
            "Projection steps (transactions) that projected changes on this node",
            m.projection_steps.clone(),
        );
        registry.register(
            "projection_failures",
            "Projection transactions that failed and were retried",
            m.projection_failures.clone(),
        );
        registry.register(
            "projection_skipped_documents",
            "Documents whose state did not decode, left unprojected",
            m.projection_skipped.clone(),
        );
        registry.register(
            "projection_documents_read",
            "Documents the projection read from the store and rebuilt, not in memory",
            m.projection_docs_read.clone(),
        );
        registry.register(
            "upload_failures",
            "Uploads refused or failed, by reason",
            m.upload_failures.clone(),
        );
        registry.register(
            "thumbnail_seconds",
            "Making one photo's thumbnails",
            m.thumbnail_seconds.clone(),
        );
        registry.register(
            "sla_breaches",
            "SLA clocks over their limit, recorded by this node, by kind",
            m.sla_breaches.clone(),
        );
        registry.register(
            "sla_approaching",
            "SLA clocks past the approaching threshold, recorded by this node, by kind",
            m.sla_approaching.clone(),
        );
        registry.register(
            "sla_webhook_deliveries",
            "SLA events the webhook took",
            m.sla_webhook_deliveries.clone(),
        );
        registry.register(
            "sla_webhook_failures",
            "SLA webhook attempts that failed (retried with backoff)",
            m.sla_webhook_failures.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
