//! The order of mirrored units across sessions. Every unit the primary acknowledged gets
//! a sequence number (`seq`, the acknowledgement order, also the journal's order). Each
//! session's worker replays its own units in order; this module keeps the workers from
//! reordering *causally related* units of different sessions: a unit is not applied on the
//! secondary before the units that the primary had acknowledged when the client sent it
//! (its *floor*). That is what an application sees: request 2 on another connection of its
//! pool, sent after request 1 was answered, must not reach the secondary first (an order
//! line before its order, a row before its table).
//!
//! Only a worker whose secondary connection is outside a transaction waits (see
//! `mirror.rs`): it holds no locks there, so whatever it waits for never waits for it,
//! and workers inside a transaction always go on. Waiting is also bounded so that one slow
//! unit cannot stall every session: a unit that has been running on its secondary for
//! more than [`MAX_IN_PROGRESS`] is no longer waited for, and no unit waits longer than
//! [`MAX_WAIT`] in all (both counted in `expired`). Units that were acknowledged
//! concurrently (neither was answered before the other was sent) are not ordered: their
//! order on the primary came from locks, and a conflict between them is not prevented
//! here (see the README).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a unit may run on its secondary before later units stop waiting for it.
pub const MAX_IN_PROGRESS: Duration = Duration::from_secs(1);
/// How long a unit waits for others at most.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Pending {
    session: u64,
    /// It ended outside a transaction on the primary. A unit inside a transaction is
    /// invisible to other sessions until its COMMIT (a later unit, waited for instead).
    visible: bool,
    /// When its worker started applying it.
    started: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    next: u64,
    pending: BTreeMap<u64, Pending>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Order {
    inner: Mutex<Inner>,
    changed: Notify,
    /// Units that had to wait for another session's unit.
    pub waits: AtomicU64,
    /// Waits given up because the awaited unit ran longer than [`MAX_IN_PROGRESS`].
    pub expired: AtomicU64,
}

impl Order {
    /// Sequence numbers start at `first` (microseconds since the epoch at start, so that a
    /// later run continues the order of the journal an earlier one left).
    pub fn new(first: u64) -> Self {
        Order {
            inner: Mutex::new(Inner {
                next: first,
                pending: BTreeMap::new(),
            }),
            changed: Notify::new(),
            waits: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The floor of a request sent now: every unit below it was acknowledged already.
    pub fn floor(&self) -> u64 {
        self.lock().next
    }

    /// Numbers a unit of `session` that the primary has just acknowledged; `visible` as
    /// in [`Pending`].
    pub fn assign(&self, session: u64, visible: bool) -> u64 {
        let mut inner = self.lock();
        let seq = inner.next;
        inner.next += 1;
        inner.pending.insert(
            seq,
            Pending {
                session,
                visible,
                started: None,
            },
        );
        seq
    }

    /// The worker is applying these units now.
    pub fn started(&self, seqs: &[u64]) {
        let now = Instant::now();
        let mut inner = self.lock();
        for s in seqs {
            if let Some(p) = inner.pending.get_mut(s) {
                p.started.get_or_insert(now);
            }
        }
    }

    /// These units are applied, journaled or given up: nobody waits for them any more.
    pub fn done(&self, seqs: &[u64]) {
        {
            let mut inner = self.lock();
            for s in seqs {
                inner.pending.remove(s);
            }
        }
        self.changed.notify_waiters();
    }

    /// The first unit of another session, below `floor`, still worth waiting for; and
    /// whether one was passed over because it runs too long.
    fn blocker(&self, floor: u64, session: u64) -> (Option<u64>, bool) {
        let inner = self.lock();
        let mut expired = false;
        for (seq, p) in inner.pending.range(..floor) {
            if p.session == session || !p.visible {
                continue;
            }
            match p.started {
                Some(t) if t.elapsed() > MAX_IN_PROGRESS => expired = true,
                _ => return (Some(*seq), expired),
            }
        }
        (None, expired)
    }

    /// Whether a unit of `session` with `floor` may be applied now.
    pub fn ready(&self, floor: u64, session: u64) -> bool {
        self.blocker(floor, session).0.is_none()
    }

    /// Waits until a unit of `session` with `floor` may be applied.
    pub async fn wait(&self, floor: u64, session: u64) {
        let mut waited = false;
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (blocker, expired) = self.blocker(floor, session);
            if blocker.is_none() {
                if expired {
                    self.expired.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
            if Instant::now() >= deadline {
                self.expired.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Woken when a unit is done; the timer re-checks expiry.
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Units acknowledged and not yet applied or journaled.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit waits for the units of other sessions acknowledged before its request was
    /// sent, never for its own session's or for later ones.
    #[tokio::test]
    async fn waits_for_earlier_units_of_other_sessions_only() {
        let order = Order::new(100);
        let a1 = order.assign(1, true);
        let a_open = order.assign(1, false);
        let b_floor = order.floor();
        let b1 = order.assign(2, true);
        let a2 = order.assign(1, true);
        assert!(!order.ready(b_floor, 2), "b1 waits for a1");
        assert!(order.ready(b_floor, 1), "a session never waits for itself");
        let floor_before_a1 = a1;
        assert!(order.ready(floor_before_a1, 2), "nothing below the floor");
        let waiter = {
            let order = std::sync::Arc::new(order);
            let o = order.clone();
            let h = tokio::spawn(async move { o.wait(b_floor, 2).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!h.is_finished());
            order.done(&[a1]);
            // a_open (inside a transaction, not committed) is not waited for.
            h.await.expect("released once a1 is done");
            assert_eq!(order.waits.load(Ordering::Relaxed), 1);
            order.done(&[a_open, b1, a2]);
            assert_eq!(order.pending(), 0);
            order
        };
        drop(waiter);
    }

    /// A unit running longer than MAX_IN_PROGRESS on its secondary is no longer waited
    /// for, and that is counted.
    #[tokio::test]
    async fn a_long_running_unit_stops_being_waited_for() {
        let order = Order::new(1);
        let slow = order.assign(1, true);
        let floor = order.floor();
        order.started(&[slow]);
        assert!(!order.ready(floor, 2));
        order.wait(floor, 2).await;
        assert_eq!(order.expired.load(Ordering::Relaxed), 1);
    }
}
