//! Statement latencies: how long each upstream takes to answer a request cycle, by
//! upstream, by role (answering the client as its *primary*, or replaying mirrored units
//! as its *secondary*) and by kind (the first statement's classification: read, write,
//! transaction, session; `other` when there is none, e.g. a FunctionCall, or when the
//! session has no tracker to classify it).
//!
//! This module owns the numbers and their two views: the Prometheus histogram
//! (`switchyard_statement_duration_seconds`, computed from HDR histograms when `/metrics` is
//! scraped) and the JSON the admin API serves (`/status` percentiles, `/history` time
//! series for the dashboard).
//!
//! Each key keeps a lifetime HDR histogram and a ring of per-[`SLOT_SECONDS`] histograms
//! covering the last [`SLOTS`] slots (five minutes), which the dashboard charts as
//! statements/s, p50 and p99. A slot is reset and reused when the clock enters it again, so
//! once a key exists recording allocates nothing: it is a map read, an uncontended mutex
//! and two histogram increments. Values are microseconds, clamped to [`MAX_MICROS`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::classify::{Classification, Kind};

/// Width of one slot of the recent window.
pub const SLOT_SECONDS: u64 = 10;
/// Slots kept in the recent window (5 minutes).
pub const SLOTS: u64 = 30;
/// The span of "recent" percentiles and rates in `/status`.
const RECENT_SLOTS: u64 = 6;
/// The ring holds one more slot than the window: the one being filled.
const RING: usize = SLOTS as usize + 1;
/// Longer answers are recorded as this long (one hour).
pub const MAX_MICROS: u64 = 3_600_000_000;
/// Two significant digits: 1% resolution, a few KiB per histogram.
const SIGFIG: u8 = 2;
const SLOT_MS: u64 = SLOT_SECONDS * 1000;

/// Bucket bounds of the Prometheus histogram, in seconds: fine below a millisecond, where a
/// proxy in front of a healthy database lives.
const BUCKETS: [(&str, u64); 16] = [
    ("0.00005", 50),
    ("0.0001", 100),
    ("0.00025", 250),
    ("0.0005", 500),
    ("0.001", 1_000),
    ("0.0025", 2_500),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("10", 10_000_000),
];

/// Which side of a session the upstream was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    const ALL: [Role; 2] = [Role::Primary, Role::Secondary];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

/// What a request cycle did, from its first statement's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Read,
    Write,
    Transaction,
    Session,
    /// Unclassified: no statement (FunctionCall, a lone Parse) or no tracker.
    Other,
}

impl StatementKind {
    const ALL: [StatementKind; 5] = [
        StatementKind::Read,
        StatementKind::Write,
        StatementKind::Transaction,
        StatementKind::Session,
        StatementKind::Other,
    ];

    /// The kind of a unit: its first executed statement's, else its first parsed one's
    /// (a prepare round trip), else `Other`.
    pub fn of_unit(executed: &[Arc<Classification>], parsed: Option<StatementKind>) -> Self {
        executed
            .first()
            .map(|c| Self::from(c.kind))
            .or(parsed)
            .unwrap_or(StatementKind::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Read => "read",
            StatementKind::Write => "write",
            StatementKind::Transaction => "transaction",
            StatementKind::Session => "session",
            StatementKind::Other => "other",
        }
    }
}

impl From<Kind> for StatementKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Read => StatementKind::Read,
            Kind::Write => StatementKind::Write,
            Kind::Transaction => StatementKind::Transaction,
            Kind::Session => StatementKind::Session,
        }
    }
}

/// Index of a (role, kind) cell in an upstream's row.
fn cell_index(role: Role, kind: StatementKind) -> usize {
    role as usize * StatementKind::ALL.len() + kind as usize
}

const CELLS: usize = Role::ALL.len() * StatementKind::ALL.len();

/// Milliseconds since the recorder started: real, or set by a test.
enum Clock {
    Real(Instant),
    #[cfg(test)]
    Manual(Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            Clock::Real(start) => start.elapsed().as_millis() as u64,
            #[cfg(test)]
            Clock::Manual(ms) => ms.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// One slot of the recent window.
struct Slot {
    /// Which slot (milliseconds since start / [`SLOT_MS`]) the histogram holds; `u64::MAX`
    /// before first use.
    number: u64,
    hist: Histogram<u32>,
}

/// The numbers of one (upstream, role, kind).
struct Series {
    lifetime: Histogram<u64>,
    /// Exact sum of the recorded values (HDR histograms only keep their buckets).
    sum_micros: u64,
    ring: Vec<Slot>,
}

fn histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    // The bounds are constants that hdrhistogram accepts; a failure here is a bug in them.
    Histogram::new_with_bounds(1, MAX_MICROS, SIGFIG).expect("valid histogram bounds")
}

impl Series {
    fn new() -> Self {
        Self {
            lifetime: histogram(),
            sum_micros: 0,
            ring: (0..RING)
                .map(|_| Slot {
                    number: u64::MAX,
                    hist: histogram(),
                })
                .collect(),
        }
    }

    fn record(&mut self, now_ms: u64, micros: u64) {
        let micros = micros.clamp(1, MAX_MICROS);
        self.lifetime.saturating_record(micros);
        self.sum_micros = self.sum_micros.saturating_add(micros);
        let number = now_ms / SLOT_MS;
        let slot = &mut self.ring[(number % RING as u64) as usize];
        if slot.number != number {
            slot.hist.reset();
            slot.number = number;
        }
        slot.hist.saturating_record(micros);
    }

    /// The histogram of slot `number`, if the ring still holds it.
    fn slot(&self, number: u64) -> Option<&Histogram<u32>> {
        let slot = &self.ring[(number % RING as u64) as usize];
        (slot.number == number).then_some(&slot.hist)
    }
}

/// The cells of one upstream, each allocated on its first record.
type Row = [OnceLock<Mutex<Series>>; CELLS];

/// Every latency recorded since start. See the module docs.
pub struct Latencies {
    clock: Clock,
    started_unix_ms: u64,
    upstreams: DashMap<String, Box<Row>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::with_clock(Clock::Real(Instant::now()), crate::clock::unix_ms())
    }
}

fn lock(series: &Mutex<Series>) -> std::sync::MutexGuard<'_, Series> {
    series.lock().unwrap_or_else(|e| e.into_inner())
}

impl Latencies {
    fn with_clock(clock: Clock, started_unix_ms: u64) -> Self {
        Self {
            clock,
            started_unix_ms,
            upstreams: DashMap::new(),
        }
    }

    /// Records one request cycle's duration.
    pub fn record(&self, upstream: &str, role: Role, kind: StatementKind, elapsed: Duration) {
        let now = self.clock.now_ms();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(MAX_MICROS);
        let row = match self.upstreams.get(upstream) {
            Some(row) => row,
            None => self
                .upstreams
                .entry(upstream.to_owned())
                .or_insert_with(|| Box::new(std::array::from_fn(|_| OnceLock::new())))
                .downgrade(),
        };
        let series = row[cell_index(role, kind)].get_or_init(|| Mutex::new(Series::new()));
        lock(series).record(now, micros);
    }

    /// Calls `f` for every key with numbers, sorted by upstream, role, kind.
    fn each(&self, mut f: impl FnMut(&str, Role, StatementKind, &Series)) {
        let mut names: Vec<String> = self.upstreams.iter().map(|e| e.key().clone()).collect();
        names.sort();
        for name in names {
            let Some(row) = self.upstreams.get(&name) else {
                continue;
            };
            for role in Role::ALL {
                for kind in StatementKind::ALL {
                    if let Some(series) = row[cell_index(role, kind)].get() {
                        f(&name, role, kind, &lock(series));
                    }
                }
            }
        }
    }

    /// Percentiles, counts and rates per key, for `/status`.
    pub fn summary(&self) -> Vec<KeySummary> {
        let now = self.clock.now_ms();
        let current = now / SLOT_MS;
        let first = current.saturating_sub(RECENT_SLOTS - 1);
        // The recent span: the full slots before the current one, plus its elapsed part;
        // never more than the recorder has been running.
        let span_ms = ((current - first) * SLOT_MS + now % SLOT_MS)
            .min(now)
            .max(1);
        let mut out = Vec::new();
        self.each(|upstream, role, kind, s| {
            let mut recent = histogram::<u32>();
            for number in first..=current {
                if let Some(h) = s.slot(number) {
                    // Same bounds and counter type: cannot fail.
                    let _ = recent.add(h);
                }
            }
            let l = &s.lifetime;
            out.push(KeySummary {
                upstream: upstream.to_owned(),
                role,
                kind,
                count: l.len(),
                sum_seconds: s.sum_micros as f64 / 1e6,
                p50_us: l.value_at_quantile(0.5),
                p99_us: l.value_at_quantile(0.99),
                p999_us: l.value_at_quantile(0.999),
                max_us: l.max(),
                recent: Recent {
                    seconds: span_ms as f64 / 1000.0,
                    count: recent.len(),
                    per_second: recent.len() as f64 * 1000.0 / span_ms as f64,
                    p50_us: recent.value_at_quantile(0.5),
                    p99_us: recent.value_at_quantile(0.99),
                },
            });
        });
        out
    }

    /// The recent window per upstream and role (all kinds together), one point per slot,
    /// oldest first, for the dashboard's charts. The last point is the slot being filled.
    pub fn history(&self) -> History {
        let now = self.clock.now_ms();
        let current = now / SLOT_MS;
        let first = current.saturating_sub(SLOTS - 1);
        let mut merged: Vec<(String, Role, Vec<Histogram<u32>>)> = Vec::new();
        self.each(|upstream, role, _kind, s| {
            let index = match merged
                .iter()
                .position(|(u, r, _)| u == upstream && *r == role)
            {
                Some(i) => i,
                None => {
                    let slots = (first..=current).map(|_| histogram()).collect();
                    merged.push((upstream.to_owned(), role, slots));
                    merged.len() - 1
                }
            };
            for (i, number) in (first..=current).enumerate() {
                if let Some(h) = s.slot(number) {
                    let _ = merged[index].2[i].add(h);
                }
            }
        });
        let series = merged
            .into_iter()
            .map(|(upstream, role, slots)| HistorySeries {
                upstream,
                role,
                points: (first..=current)
                    .zip(slots)
                    .map(|(number, h)| {
                        let span_ms = if number == current {
                            (now % SLOT_MS).max(1)
                        } else {
                            SLOT_MS
                        };
                        let any = !h.is_empty();
                        Point {
                            at_unix_ms: self.started_unix_ms + number * SLOT_MS,
                            count: h.len(),
                            per_second: h.len() as f64 * 1000.0 / span_ms as f64,
                            p50_us: any.then(|| h.value_at_quantile(0.5)),
                            p99_us: any.then(|| h.value_at_quantile(0.99)),
                        }
                    })
                    .collect(),
            })
            .collect();
        History {
            slot_seconds: SLOT_SECONDS,
            now_unix_ms: self.started_unix_ms + now,
            series,
        }
    }

    /// Appends the Prometheus text of `switchyard_statement_duration_seconds` (a histogram)
    /// and `switchyard_statements_total` to `out`.
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let mut histograms = String::new();
        let mut totals = String::new();
        self.each(|upstream, role, kind, s| {
            let labels = format!(
                "upstream=\"{}\",role=\"{}\",kind=\"{}\"",
                escape_label(upstream),
                role.as_str(),
                kind.as_str()
            );
            let l = &s.lifetime;
            for (le, micros) in BUCKETS {
                let n = l.count_between(0, micros);
                let _ = writeln!(
                    histograms,
                    "switchyard_statement_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                histograms,
                "switchyard_statement_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                l.len()
            );
            let _ = writeln!(
                histograms,
                "switchyard_statement_duration_seconds_sum{{{labels}}} {}",
                s.sum_micros as f64 / 1e6
            );
            let _ = writeln!(
                histograms,
                "switchyard_statement_duration_seconds_count{{{labels}}} {}",
                l.len()
            );
            let _ = writeln!(
                totals,
                "switchyard_statements_total{{{labels}}} {}",
                l.len()
            );
        });
        if histograms.is_empty() {
            return;
        }
        out.push_str("# HELP switchyard_statement_duration_seconds Time from a request's first message to the upstream's ReadyForQuery, by upstream, role (primary: answering the client; secondary: replaying mirrored units) and kind.\n");
        out.push_str("# TYPE switchyard_statement_duration_seconds histogram\n");
        out.push_str(&histograms);
        out.push_str("# HELP switchyard_statements_total Request cycles answered, by upstream, role and kind.\n");
        out.push_str("# TYPE switchyard_statements_total counter\n");
        out.push_str(&totals);
    }
}

/// Escapes a Prometheus label value.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One key's numbers in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub upstream: String,
    pub role: Role,
    pub kind: StatementKind,
    /// Since start.
    pub count: u64,
    pub sum_seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Over the last minute.
    pub recent: Recent,
}

/// Numbers over the last minute (less just after start).
#[derive(Debug, Clone, Serialize)]
pub struct Recent {
    pub seconds: f64,
    pub count: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// `GET /history`.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub slot_seconds: u64,
    pub now_unix_ms: u64,
    pub series: Vec<HistorySeries>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistorySeries {
    pub upstream: String,
    pub role: Role,
    /// Oldest first; the last one is the slot being filled.
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Start of the slot.
    pub at_unix_ms: u64,
    pub count: u64,
    /// Over the slot, or over its elapsed part for the current one.
    pub per_second: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// Where one session's primary-side times go. Cloned between the session and its tracker;
/// the upstream changes when the session moves to the other primary.
#[derive(Clone)]
pub struct SessionTimer(Arc<TimerInner>);

struct TimerInner {
    latencies: Arc<Latencies>,
    upstream: arc_swap::ArcSwap<String>,
    /// For sessions without a tracker: when the current busy period began.
    busy_since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SessionTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionTimer")
            .field(&self.0.upstream.load())
            .finish()
    }
}

impl SessionTimer {
    pub fn new(latencies: Arc<Latencies>, upstream: &str) -> Self {
        Self(Arc::new(TimerInner {
            latencies,
            upstream: arc_swap::ArcSwap::from_pointee(upstream.to_owned()),
            busy_since: Mutex::new(None),
        }))
    }

    /// The session now answers from `upstream`.
    pub fn moved_to(&self, upstream: &str) {
        self.0.upstream.store(Arc::new(upstream.to_owned()));
    }

    /// A unit that began at `started` got its ReadyForQuery now.
    pub fn unit(&self, kind: StatementKind, started: Option<Instant>) {
        if let Some(started) = started {
            let upstream = self.0.upstream.load();
            self.0
                .latencies
                .record(&upstream, Role::Primary, kind, started.elapsed());
        }
    }

    /// A session without a tracker sent a request with nothing in flight.
    pub fn busy(&self) {
        *self.0.busy_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// ... and got the ReadyForQuery that leaves nothing in flight: one `other` sample per
    /// busy period (per request for a client that does not pipeline).
    pub fn idle(&self) {
        let started = self
            .0
            .busy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.unit(StatementKind::Other, started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn manual() -> (Latencies, Arc<AtomicU64>) {
        let ms = Arc::new(AtomicU64::new(0));
        (
            Latencies::with_clock(Clock::Manual(ms.clone()), 1_000_000),
            ms,
        )
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// The Prometheus histogram is cumulative, ends with +Inf = count, and its sum is exact.
    #[test]
    fn prometheus_buckets_are_cumulative_with_exact_sum_and_count() {
        let (l, _) = manual();
        for v in [40, 90, 90, 300, 2_000, 2_000_000] {
            l.record("blue", Role::Primary, StatementKind::Read, us(v));
        }
        let mut text = String::new();
        l.render_prometheus(&mut text);
        let line = |le: &str| {
            let key = format!(
                "switchyard_statement_duration_seconds_bucket{{upstream=\"blue\",role=\"primary\",kind=\"read\",le=\"{le}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .unwrap_or_else(|| panic!("no bucket {le} in {text}"))
                .to_owned()
        };
        assert_eq!(line("0.00005"), "1");
        assert_eq!(line("0.0001"), "3");
        assert_eq!(line("0.00025"), "3");
        assert_eq!(line("0.0005"), "4");
        assert_eq!(line("0.0025"), "5");
        assert_eq!(line("1"), "5");
        assert_eq!(line("2.5"), "6");
        assert_eq!(line("+Inf"), "6");
        assert!(text.contains("# TYPE switchyard_statement_duration_seconds histogram"));
        assert!(text.contains(
            "switchyard_statement_duration_seconds_sum{upstream=\"blue\",role=\"primary\",kind=\"read\"} 2.00252\n"
        ), "{text}");
        assert!(text.contains(
            "switchyard_statements_total{upstream=\"blue\",role=\"primary\",kind=\"read\"} 6\n"
        ));
    }

    /// Nothing recorded, nothing rendered (no empty TYPE lines).
    #[test]
    fn nothing_recorded_renders_nothing() {
        let (l, _) = manual();
        let mut text = String::new();
        l.render_prometheus(&mut text);
        assert_eq!(text, "");
        assert!(l.summary().is_empty());
        assert!(l.history().series.is_empty());
    }

    /// Percentiles come from the recorded distribution, within the 1% resolution, and keys
    /// are kept apart.
    #[test]
    fn percentiles_per_key() {
        let (l, _) = manual();
        for v in 1..=1000 {
            l.record("green", Role::Secondary, StatementKind::Write, us(v * 10));
        }
        l.record("blue", Role::Primary, StatementKind::Other, us(5));
        let s = l.summary();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].upstream.as_str(), s[0].count), ("blue", 1));
        let g = &s[1];
        assert_eq!(
            (g.role, g.kind, g.count),
            (Role::Secondary, StatementKind::Write, 1000)
        );
        let near = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
        assert!(near(g.p50_us, 5_000), "{g:?}");
        assert!(near(g.p99_us, 9_900), "{g:?}");
        assert!(near(g.p999_us, 9_990), "{g:?}");
        assert!(near(g.max_us, 10_000), "{g:?}");
    }

    /// The recent window forgets slots older than five minutes and reuses their memory;
    /// the last-minute rate counts only the last minute.
    #[test]
    fn window_rolls_over() {
        let (l, clock) = manual();
        let at = |ms: u64| clock.store(ms, Ordering::Relaxed);
        // 100 statements in the first slot.
        for _ in 0..100 {
            l.record("blue", Role::Primary, StatementKind::Read, us(100));
        }
        at(5_000);
        let s = &l.summary()[0];
        assert_eq!(s.recent.count, 100);
        assert!((s.recent.per_second - 20.0).abs() < 1e-9, "{s:?}");

        // Two minutes later, 30 more, each 1 ms: the first slot is out of the last minute.
        at(120_000);
        for _ in 0..30 {
            l.record("blue", Role::Primary, StatementKind::Read, us(1_000));
        }
        at(125_000);
        let s = &l.summary()[0];
        assert_eq!((s.count, s.recent.count), (130, 30));
        // Slots 7..=11 whole and 5 s of slot 12: 55 s.
        assert!((s.recent.seconds - 55.0).abs() < 1e-9, "{s:?}");
        assert!((s.recent.per_second - 30.0 / 55.0).abs() < 1e-9, "{s:?}");
        assert!(s.recent.p50_us.abs_diff(1_000) <= 10, "{s:?}");

        let h = l.history();
        assert_eq!(h.series.len(), 1);
        let points = &h.series[0].points;
        assert_eq!(points.len(), 13, "slots 0..=12 since start");
        assert_eq!(points[0].count, 100);
        assert_eq!(points[0].at_unix_ms, 1_000_000);
        assert!((points[0].per_second - 10.0).abs() < 1e-9);
        assert_eq!(points[12].count, 30);
        assert!(
            (points[12].per_second - 6.0).abs() < 1e-9,
            "current slot: 30 in 5 s"
        );
        assert!(points[1..12]
            .iter()
            .all(|p| p.count == 0 && p.p50_us.is_none()));

        // Five and a half minutes after start: the first slot has left the window.
        at(330_000);
        l.record("blue", Role::Primary, StatementKind::Read, us(100));
        let points = &l.history().series[0].points;
        assert_eq!(points.len(), SLOTS as usize);
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 31);
        assert_eq!(points[0].at_unix_ms, 1_000_000 + 40_000);
        // The ring slot the first 100 were in was reused, not added to.
        at(330_000 + SLOT_MS * (RING as u64));
        l.record("blue", Role::Primary, StatementKind::Read, us(100));
        let points = &l.history().series[0].points;
        assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 1);
        assert_eq!(
            l.summary()[0].count,
            132,
            "the lifetime histogram keeps everything"
        );
    }

    /// History merges the kinds of an upstream and role into one series.
    #[test]
    fn history_merges_kinds_per_upstream_and_role() {
        let (l, clock) = manual();
        l.record("blue", Role::Primary, StatementKind::Read, us(100));
        l.record("blue", Role::Primary, StatementKind::Write, us(300));
        l.record("green", Role::Secondary, StatementKind::Write, us(400));
        clock.store(1_000, Ordering::Relaxed);
        let h = l.history();
        let names: Vec<(&str, Role)> = h
            .series
            .iter()
            .map(|s| (s.upstream.as_str(), s.role))
            .collect();
        assert_eq!(names, [("blue", Role::Primary), ("green", Role::Secondary)]);
        assert_eq!(h.series[0].points[0].count, 2);
        assert_eq!(h.now_unix_ms, 1_001_000);
    }

    /// A session timer follows its session to the other upstream.
    #[test]
    fn session_timer_follows_moves_and_times_busy_periods() {
        let l = Arc::new(Latencies::default());
        let timer = SessionTimer::new(l.clone(), "blue");
        timer.unit(StatementKind::Read, Some(Instant::now()));
        timer.moved_to("green");
        timer.unit(StatementKind::Write, Some(Instant::now()));
        timer.unit(StatementKind::Write, None);
        timer.idle(); // no busy period: nothing
        timer.busy();
        timer.idle();
        let keys: Vec<(String, StatementKind, u64)> = l
            .summary()
            .into_iter()
            .map(|s| (s.upstream, s.kind, s.count))
            .collect();
        assert_eq!(
            keys,
            [
                ("blue".to_owned(), StatementKind::Read, 1),
                ("green".to_owned(), StatementKind::Write, 1),
                ("green".to_owned(), StatementKind::Other, 1),
            ]
        );
    }

    /// Out-of-range values are clamped, not dropped or panicking.
    #[test]
    fn extreme_values_are_clamped() {
        let (l, _) = manual();
        l.record("blue", Role::Primary, StatementKind::Read, Duration::ZERO);
        l.record(
            "blue",
            Role::Primary,
            StatementKind::Read,
            Duration::from_secs(1 << 40),
        );
        let s = &l.summary()[0];
        assert_eq!(s.count, 2);
        assert!(s.max_us >= MAX_MICROS);
    }
}
