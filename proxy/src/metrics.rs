//! Prometheus exposition of switchyard's state. The numbers live where they are produced
//! (atomic counters in [`Shared`], the mirror's stats, the journal); this module reads them
//! when `/metrics` is scraped and renders them with `metrics-exporter-prometheus`, so the
//! hot path pays for an atomic add and nothing else.

use std::sync::atomic::Ordering;

use metrics::{counter, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::state::Shared;

/// A private recorder (not the process-global one), so that several instances — tests, or
/// a library user — never share counters.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }
}

impl Metrics {
    /// The Prometheus text exposition of `shared`'s current state.
    pub fn render(&self, shared: &Shared) -> String {
        with_local_recorder(&self.recorder, || record(shared));
        let mut text = self.handle.render();
        // A real histogram with sub-millisecond buckets, computed from the HDR histograms.
        shared.latencies.render_prometheus(&mut text);
        text
    }
}

fn record(shared: &Shared) {
    let config = shared.config.load();
    gauge!("switchyard_up").set(1.0);
    for name in config.upstreams.names() {
        let sessions = shared
            .sessions_by_primary
            .get(name)
            .map(|n| *n)
            .unwrap_or(0);
        gauge!("switchyard_sessions", "primary" => name.to_owned()).set(sessions as f64);
        let is_primary = if config.routing.primary == name {
            1.0
        } else {
            0.0
        };
        gauge!("switchyard_routing_primary", "upstream" => name.to_owned()).set(is_primary);
        if let Some(h) = shared.health.of(name) {
            gauge!("switchyard_upstream_up", "upstream" => name.to_owned()).set(if h.ok {
                1.0
            } else {
                0.0
            });
            counter!("switchyard_upstream_connection_failures_total", "upstream" => name.to_owned())
                .absolute(h.failures);
        }
    }
    gauge!("switchyard_routing_canary_percent").set(f64::from(config.routing.canary_percent));
    gauge!("switchyard_clients_max").set(config.limits.max_clients as f64);
    gauge!("switchyard_routing_generation")
        .set(shared.reloads.generation.load(Ordering::Relaxed) as f64);
    counter!("switchyard_reloads_total", "result" => "ok")
        .absolute(shared.reloads.ok.load(Ordering::Relaxed));
    counter!("switchyard_reloads_total", "result" => "error")
        .absolute(shared.reloads.failed.load(Ordering::Relaxed));

    let m = &shared.mirror_stats;
    counter!("switchyard_mirror_units_applied_total").absolute(m.applied.load(Ordering::Relaxed));
    counter!("switchyard_mirror_batches_total").absolute(m.batches.load(Ordering::Relaxed));
    counter!("switchyard_mirror_units_journaled_total")
        .absolute(m.journaled.load(Ordering::Relaxed));
    counter!("switchyard_mirror_journal_fallbacks_total")
        .absolute(m.journal_switches.load(Ordering::Relaxed));
    counter!("switchyard_mirror_units_lost_total").absolute(m.lost.load(Ordering::Relaxed));
    counter!("switchyard_mirror_copies_lost_total").absolute(m.copies_lost.load(Ordering::Relaxed));
    counter!("switchyard_mirror_order_waits_total")
        .absolute(shared.order.waits.load(Ordering::Relaxed));
    counter!("switchyard_mirror_order_waits_expired_total")
        .absolute(shared.order.expired.load(Ordering::Relaxed));
    gauge!("switchyard_mirror_queue_depth").set(m.queue_depth.load(Ordering::Relaxed) as f64);
    gauge!("switchyard_mirror_unsettled_sessions").set(m.unsettled.load(Ordering::Relaxed) as f64);
    counter!("switchyard_divergences_total").absolute(shared.divergences.total());
    gauge!("switchyard_nondeterministic_statements").set(shared.nondeterministic.len() as f64);
    counter!("switchyard_guard_trips_total").absolute(shared.guard.trips.load(Ordering::Relaxed));
    gauge!("switchyard_guard_enabled").set(if config.guard.enabled { 1.0 } else { 0.0 });
    let b = &shared.barrier;
    counter!("switchyard_cutovers_total", "result" => "completed")
        .absolute(b.completed.load(Ordering::Relaxed));
    counter!("switchyard_cutovers_total", "result" => "abandoned")
        .absolute(b.abandoned.load(Ordering::Relaxed));
    counter!("switchyard_cutover_pauses_total").absolute(b.pause_count.load(Ordering::Relaxed));
    counter!("switchyard_cutover_pause_microseconds_total")
        .absolute(b.pause_us_total.load(Ordering::Relaxed));
    gauge!("switchyard_cutover_pause_max_seconds")
        .set(b.pause_max_us.load(Ordering::Relaxed) as f64 / 1e6);
    gauge!("switchyard_cutover_holding").set(if b.is_holding() { 1.0 } else { 0.0 });
    let sh = &shared.mismatches.stats;
    for (result, n) in [
        ("match", &sh.matched),
        ("mismatch", &sh.mismatched),
        ("skipped", &sh.skipped),
        ("error", &sh.errors),
    ] {
        counter!("switchyard_shadow_reads_total", "result" => result)
            .absolute(n.load(Ordering::Relaxed));
    }
    counter!("switchyard_shadow_reads_sampled_total").absolute(sh.sampled.load(Ordering::Relaxed));
    for (status, n) in [
        ("confirmed", &sh.confirmed),
        ("vanished", &sh.vanished),
        ("unverified", &sh.unverified),
    ] {
        counter!("switchyard_shadow_mismatches_settled_total", "status" => status)
            .absolute(n.load(Ordering::Relaxed));
    }
    for entry in sh.skipped_by_reason.iter() {
        counter!("switchyard_shadow_reads_skipped_total", "reason" => *entry.key())
            .absolute(*entry.value());
    }
    gauge!("switchyard_shadow_reads_percent").set(f64::from(config.shadow_reads.percent));
    if let Some(journal) = &shared.journal {
        counter!("switchyard_journal_entries_written_total").absolute(journal.entries_written());
        counter!("switchyard_journal_bytes_written_total").absolute(journal.bytes_written());
    }
}
