//! Counters and gauges, served as Prometheus text on `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use social_sync_protocol::ErrorCode;

/// Label of a refusal.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The [`ErrorCode`] name.
    pub reason: String,
}

/// The relay's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Distinct authenticated users connected.
    pub users: Gauge,
    /// Presence entries (one per connected device).
    pub presence_entries: Gauge,
    /// Frames received from clients.
    pub messages_in: Counter,
    /// Frames sent to clients.
    pub messages_out: Counter,
    /// Bytes received.
    pub bytes_in: Counter,
    /// Bytes sent.
    pub bytes_out: Counter,
    /// Stored documents (read at scrape time).
    pub documents: Gauge,
    /// Documents with news for offline devices, one entry each (read at scrape time).
    pub inbox_entries: Gauge,
    /// Stored bytes of the documents held in memory (see `--document-cache-bytes`).
    pub document_cache_bytes: Gauge,
    /// Refused messages and connections, by reason.
    pub rejected: Family<Reason, Counter>,
    /// Images refused because they would take their uploader over the image quota.
    pub images_over_quota: Counter,
    /// Accepted sockets still open, HTTP heads not yet complete included.
    pub sockets: Gauge,
    /// Bytes queued for clients and not yet written to their sockets.
    pub outbound_bytes: Gauge,
    /// Document subscriptions of all connections.
    pub subscriptions: Gauge,
    /// Automerge sync states held for all connections.
    pub sync_states: Gauge,
    /// Sync states dropped because a connection reached `--max-sync-states`.
    pub sync_states_evicted: Counter,
    /// 1 while this node listens on the cluster's bus.
    pub bus_connected: Gauge,
    /// Messages this node published on the bus.
    pub bus_published: Counter,
    /// Messages from other nodes taken from the bus.
    pub bus_received: Counter,
    /// Documents pushed afresh after a gap in the bus.
    pub bus_caught_up: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("social_sync_relay");
        let m = Self {
            connections: Gauge::default(),
            users: Gauge::default(),
            presence_entries: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            documents: Gauge::default(),
            inbox_entries: Gauge::default(),
            document_cache_bytes: Gauge::default(),
            rejected: Family::default(),
            images_over_quota: Counter::default(),
            sockets: Gauge::default(),
            outbound_bytes: Gauge::default(),
            subscriptions: Gauge::default(),
            sync_states: Gauge::default(),
            sync_states_evicted: Counter::default(),
            bus_connected: Gauge::default(),
            bus_published: Counter::default(),
            bus_received: Counter::default(),
            bus_caught_up: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "authenticated_users",
            "Distinct authenticated users connected",
            m.users.clone(),
        );
        registry.register(
            "presence_entries",
            "Connected devices",
            m.presence_entries.clone(),
        );
        registry.register(
            "messages_in",
            "Frames received from clients",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Frames sent to clients",
            m.messages_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register("bytes_out", "Bytes sent to clients", m.bytes_out.clone());
        registry.register("documents", "Stored documents", m.documents.clone());
        registry.register(
            "document_cache_bytes",
            "Stored bytes of the documents held in memory",
            m.document_cache_bytes.clone(),
        );
        registry.register(
            "inbox_entries",
            "Documents with news for offline devices (one entry per document)",
            m.inbox_entries.clone(),
        );
        registry.register(
            "rejected",
            "Refused messages and connections, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "images_over_quota",
            "Images refused because they would take their uploader over the image quota",
            m.images_over_quota.clone(),
        );
        registry.register(
            "sockets",
            "Accepted sockets still open, unfinished HTTP heads included",
            m.sockets.clone(),
        );
        registry.register(
            "outbound_bytes",
            "Bytes queued for clients, not yet written to their sockets",
            m.outbound_bytes.clone(),
        );
        registry.register(
            "subscriptions",
            "Document subscriptions of all connections",
            m.subscriptions.clone(),
        );
        registry.register(
            "sync_states",
            "Automerge sync states held for all connections",
            m.sync_states.clone(),
        );
        registry.register(
            "sync_states_evicted",
            "Sync states dropped at the per-connection limit (that document's sync restarts)",
            m.sync_states_evicted.clone(),
        );
        registry.register(
            "bus_connected",
            "1 while this node listens on the cluster's bus (--bus)",
            m.bus_connected.clone(),
        );
        registry.register(
            "bus_published",
            "Messages published on the cluster's bus",
            m.bus_published.clone(),
        );
        registry.register(
            "bus_received",
            "Messages from other nodes taken from the cluster's bus",
            m.bus_received.clone(),
        );
        registry.register(
            "bus_caught_up",
            "Documents pushed afresh from the store after a gap in the bus",
            m.bus_caught_up.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts one refusal.
    pub fn reject(&self, code: ErrorCode) {
        self.rejected
            .get_or_create(&Reason {
                reason: code.as_str().to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
