//! Sharing one request among callers that ask for the same thing at once.
//!
//! Twenty tasks for one file arriving together would otherwise make twenty
//! hash lookups, each possibly counted against the quota. An actor keeps an
//! [`InFlight`] map: the first caller starts the request, later callers for
//! the same key wait for its answer, and the actor removes the key when the
//! request ends.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use futures_util::future::{LocalBoxFuture, Shared};
use futures_util::FutureExt;

/// A request that several callers can wait for.
pub type SharedRequest<V> = Shared<LocalBoxFuture<'static, V>>;

/// Requests in flight, by key.
pub struct InFlight<K, V: Clone> {
    requests: HashMap<K, SharedRequest<V>>,
}

impl<K: Hash + Eq, V: Clone + 'static> InFlight<K, V> {
    pub fn new() -> InFlight<K, V> {
        InFlight {
            requests: HashMap::new(),
        }
    }

    /// Returns the request in flight for `key`, or starts one with `start`.
    /// The flag is true when the caller joined a request already in flight.
    /// A started request must be passed to [`InFlight::finish`] once it ends.
    pub fn join_or_start<F>(
        &mut self,
        key: K,
        start: impl FnOnce() -> F,
    ) -> (SharedRequest<V>, bool)
    where
        F: Future<Output = V> + 'static,
    {
        if let Some(request) = self.requests.get(&key) {
            return (request.clone(), true);
        }
        let request = start().boxed_local().shared();
        self.requests.insert(key, request.clone());
        (request, false)
    }

    /// Forgets the request of `key`, so the next caller starts a new one.
    pub fn finish(&mut self, key: &K) {
        self.requests.remove(key);
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

impl<K: Hash + Eq, V: Clone + 'static> Default for InFlight<K, V> {
    fn default() -> Self {
        InFlight::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[tokio::test]
    async fn second_caller_joins_first_request() {
        let started = Rc::new(Cell::new(0));
        let mut in_flight: InFlight<&str, u32> = InFlight::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();

        let counter = started.clone();
        let (first, first_joined) = in_flight.join_or_start("sha", move || {
            counter.set(counter.get() + 1);
            async move { rx.await.unwrap_or(0) }
        });
        let counter = started.clone();
        let (second, second_joined) = in_flight.join_or_start("sha", move || {
            counter.set(counter.get() + 1);
            async { 0 }
        });
        tx.send(7).unwrap();

        assert!(!first_joined);
        assert!(second_joined);
        assert_eq!(first.await, 7);
        assert_eq!(second.await, 7);
        assert_eq!(started.get(), 1);
    }

    #[tokio::test]
    async fn finished_key_starts_new_request() {
        let mut in_flight: InFlight<&str, u32> = InFlight::new();
        let (first, _) = in_flight.join_or_start("sha", || async { 1 });
        assert_eq!(first.await, 1);
        in_flight.finish(&"sha");
        let (second, joined) = in_flight.join_or_start("sha", || async { 2 });
        assert!(!joined);
        assert_eq!(second.await, 2);
    }
}
