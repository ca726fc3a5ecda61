//! Operations running over WebSockets per consumer, so one client cannot take the gateway's
//! whole `max_total` by opening many sockets. A consumer is a verified identity
//! (`provider/subject`), else the client's address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts by consumer; a consumer with none running is not kept.
#[derive(Debug, Default)]
pub(crate) struct ConsumerCounts(Mutex<HashMap<String, usize>>);

/// One running operation of a consumer; dropping it gives the slot back.
pub(crate) struct ConsumerSlot {
    counts: Arc<ConsumerCounts>,
    consumer: String,
}

impl ConsumerCounts {
    /// A slot for `consumer` if it runs fewer than `limit`; else how many it runs.
    pub(crate) fn enter(self: &Arc<Self>, consumer: &str, limit: usize) -> Result<ConsumerSlot, usize> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(consumer.to_owned()).or_insert(0);
        if *count >= limit {
            return Err(*count);
        }
        *count += 1;
        Ok(ConsumerSlot { counts: self.clone(), consumer: consumer.to_owned() })
    }

    /// Operations `consumer` runs now.
    #[cfg(test)]
    fn running(&self, consumer: &str) -> usize {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(consumer).copied().unwrap_or(0)
    }
}

impl Drop for ConsumerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.consumer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.consumer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_has_its_own_limit_and_slots_come_back() {
        let counts = Arc::new(ConsumerCounts::default());
        let a: Vec<_> = (0..3).map(|_| counts.enter("jwt/ada", 3).expect("within")).collect();
        assert_eq!(counts.enter("jwt/ada", 3).err(), Some(3));
        let b = counts.enter("10.0.0.7", 3).expect("another consumer");
        drop(a);
        assert_eq!(counts.running("jwt/ada"), 0);
        assert_eq!(counts.0.lock().expect("lock").len(), 1, "a consumer with nothing running is not kept");
        drop(b);
        assert!(counts.0.lock().expect("lock").is_empty());
    }
}
