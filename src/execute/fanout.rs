//! Coalescing identical streams: the first subscriber to a key opens the source, later ones join
//! it, and every item goes to all of them through a bounded broadcast. The source is dropped
//! (cancelling its backend call) when its last subscriber leaves, and the key is freed when the
//! source ends. A subscriber that falls more than the buffer behind is told how many items it
//! missed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// What a subscriber receives: an item, or how many it missed by falling behind.
pub type Fanned<T> = Result<T, u64>;

/// Streams by key, shared by their subscribers.
pub struct Fanout<T, E> {
    channels: Mutex<HashMap<String, Arc<Channel<T, E>>>>,
    capacity: usize,
}

struct Channel<T, E> {
    /// Weak, so the pump's sender is the only strong one: when the pump ends, subscribers see
    /// the end.
    sender: broadcast::WeakSender<T>,
    /// None until the source is open; then whether it opened.
    opened: watch::Receiver<Option<Result<(), E>>>,
    /// Woken when a subscriber leaves, to check whether any remain.
    left: Notify,
}

impl<T, E> std::fmt::Debug for Fanout<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.channels.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Fanout").field("open", &open).field("capacity", &self.capacity).finish()
    }
}

impl<T, E> Fanout<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Shared streams whose subscribers may each fall `capacity` items behind.
    pub fn new(capacity: usize) -> Self {
        Fanout { channels: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// How many sources are open.
    pub fn open_sources(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Joins the stream for `key`, opening it with `open` if nobody has. Resolves once the
    /// source is open, with its items from then on, or with the error it failed to open with.
    pub async fn join<F, Fut>(self: &Arc<Self>, key: String, open: F) -> Result<BoxStream<'static, Fanned<T>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BoxStream<'static, T>, E>> + Send + 'static,
    {
        let (channel, receiver, opener) = {
            let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let joined = channels.get(&key).and_then(|c| Some((c.clone(), c.sender.upgrade()?.subscribe())));
            match joined {
                Some((channel, receiver)) => (channel, receiver, None),
                None => {
                    let (sender, receiver) = broadcast::channel(self.capacity);
                    let (opened_tx, opened) = watch::channel(None);
                    let channel = Arc::new(Channel { sender: sender.downgrade(), opened, left: Notify::new() });
                    channels.insert(key.clone(), channel.clone());
                    (channel, receiver, Some((open(), opened_tx, sender)))
                }
            }
        };
        if let Some((opening, opened_tx, sender)) = opener {
            tokio::spawn(pump(self.clone(), key, channel.clone(), sender, opening, opened_tx));
        }
        let mut opened = channel.opened.clone();
        let outcome = match opened.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        outcome?;
        Ok(Box::pin(Subscriber { items: Some(BroadcastStream::new(receiver)), channel: Some(channel) }))
    }
}

/// Runs a source: opens it, then forwards its items until it ends or nobody listens.
async fn pump<T, E, Fut>(
    fanout: Arc<Fanout<T, E>>,
    key: String,
    channel: Arc<Channel<T, E>>,
    sender: broadcast::Sender<T>,
    opening: Fut,
    opened: watch::Sender<Option<Result<(), E>>>,
) where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<'static, T>, E>> + Send + 'static,
{
    match opening.await {
        Err(error) => {
            opened.send_replace(Some(Err(error)));
        }
        Ok(mut source) => {
            opened.send_replace(Some(Ok(())));
            loop {
                if sender.receiver_count() == 0 {
                    break;
                }
                tokio::select! {
                    item = source.next() => match item {
                        Some(item) => {
                            if sender.send(item).is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    () = channel.left.notified() => {}
                }
            }
        }
    }
    let mut channels = fanout.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if channels.get(&key).is_some_and(|c| Arc::ptr_eq(c, &channel)) {
        channels.remove(&key);
    }
    drop(channels);
    // Dropping the only strong sender ends every subscriber's stream.
    drop(sender);
}

/// One subscriber's view; leaving wakes the source's pump so it can stop when nobody is left.
struct Subscriber<T, E> {
    items: Option<BroadcastStream<T>>,
    channel: Option<Arc<Channel<T, E>>>,
}

impl<T: Clone + Send + 'static, E> Stream for Subscriber<T, E> {
    type Item = Fanned<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(items) = self.items.as_mut() else { return Poll::Ready(None) };
        match items.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(Ok(item))),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => Poll::Ready(Some(Err(missed))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T, E> Drop for Subscriber<T, E> {
    fn drop(&mut self) {
        // Drop the receiver first, so the pump counts one fewer when it wakes.
        self.items = None;
        if let Some(channel) = self.channel.take() {
            channel.left.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_source_feeds_every_subscriber_and_stops_when_they_leave() {
        let fanout: Arc<Fanout<u32, String>> = Arc::new(Fanout::new(16));
        let opened = Arc::new(AtomicUsize::new(0));
        let (feed, source) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let source = Arc::new(Mutex::new(Some(source)));
        let open = || {
            let opened = opened.clone();
            let source = source.clone();
            async move {
                opened.fetch_add(1, Ordering::SeqCst);
                let receiver = source.lock().expect("lock").take().expect("opened once");
                Ok::<_, String>(tokio_stream::wrappers::UnboundedReceiverStream::new(receiver).boxed())
            }
        };
        let mut first = fanout.join("k".into(), open).await.expect("opens");
        let mut second = fanout
            .join("k".into(), || async { Err::<BoxStream<'static, u32>, _>("not again".to_owned()) })
            .await
            .expect("joins");
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        feed.send(7).expect("send");
        assert_eq!(first.next().await, Some(Ok(7)));
        assert_eq!(second.next().await, Some(Ok(7)));
        drop(first);
        drop(second);
        // Nobody listens: the pump stops and frees the key, dropping the source.
        for _ in 0..100 {
            if fanout.open_sources() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(fanout.open_sources(), 0);
        assert!(feed.send(8).is_err(), "the source was dropped");
    }

    #[tokio::test]
    async fn a_source_that_fails_to_open_fails_its_subscribers_and_a_slow_one_learns_what_it_missed() {
        let fanout: Arc<Fanout<u32, String>> = Arc::new(Fanout::new(2));
        let failed =
            fanout.join("bad".into(), || async { Err::<BoxStream<'static, u32>, _>("refused".to_owned()) }).await;
        assert_eq!(failed.err(), Some("refused".to_owned()));
        assert_eq!(fanout.open_sources(), 0);
        let source = futures_util::stream::iter(0..5u32).boxed();
        let slot = Arc::new(Mutex::new(Some(source)));
        let mut slow = fanout
            .join("fast".into(), move || {
                let source = slot.lock().expect("lock").take().expect("once");
                async move { Ok::<_, String>(source) }
            })
            .await
            .expect("opens");
        // The source ran ahead of this subscriber (the test runtime has one thread): the two
        // newest items are kept, and the subscriber first learns it missed three.
        let mut seen = Vec::new();
        while let Some(item) = slow.next().await {
            seen.push(item);
        }
        assert_eq!(seen, [Err(3), Ok(3), Ok(4)]);
    }
}
