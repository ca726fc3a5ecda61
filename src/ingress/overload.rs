//! Load shedding: at most `listener.max_in_flight` requests are being handled at once (from
//! their head until their answer's head; a stream's body does not hold a slot). One more is
//! answered at once with 503 and `Retry-After: 1`, in its protocol's shape, instead of queueing
//! behind the others without bound, so a client or a load balancer can go elsewhere. The count
//! lives here; `admission.rs` takes and refuses the slots.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Requests being handled.
#[derive(Debug, Default)]
pub(super) struct InFlight(AtomicUsize);

/// Holds one slot until dropped.
pub(super) struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// Takes a slot if fewer than `limit` are taken (0: no limit).
    pub(super) fn enter(&self, limit: usize) -> Option<Slot<'_>> {
        let before = self.0.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.0);
        (limit == 0 || before < limit).then_some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let in_flight = InFlight::default();
        let a = in_flight.enter(2).expect("first");
        let b = in_flight.enter(2).expect("second");
        assert!(in_flight.enter(2).is_none(), "third over the limit");
        assert_eq!(in_flight.0.load(Ordering::Acquire), 2, "a refused request holds nothing");
        drop(a);
        let c = in_flight.enter(2).expect("a slot came back");
        drop((b, c));
        assert_eq!(in_flight.0.load(Ordering::Acquire), 0);
        let many: Vec<_> = (0..1000).map(|_| in_flight.enter(0).expect("no limit")).collect();
        assert_eq!(many.len(), 1000);
    }
}
