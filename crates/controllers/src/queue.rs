//! A rate-limited work queue of object keys, with client-go's guarantees:
//! - a key waiting in the queue is held once however often it is added (changes coalesce);
//! - a key is never handed to two workers at once: added while being processed, it is queued
//!   again when that processing is done;
//! - a key whose reconcile failed comes back after a per-key exponential back-off, so one
//!   broken object neither spins a worker nor delays the others.

use crate::informer::QueueKey;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Back-off of a failing key: 5 ms doubling per failure up to this cap (client-go uses 5 ms to
/// 1000 s; a minute keeps a broken object visible without hammering the API).
const FAILURE_BACKOFF_BASE: Duration = Duration::from_millis(5);
const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(60);

struct State<T> {
    queue: VecDeque<T>,
    /// Keys that need processing: queued, or added again while being processed.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
}

impl<T: QueueKey> WorkQueue<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            }),
            ready: Notify::new(),
        })
    }

    /// Marks `key` as needing a reconcile.
    pub fn add(&self, key: T) {
        let mut state = self.state.lock().expect("queue lock");
        if state.shut_down || !state.dirty.insert(key.clone()) {
            return;
        }
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(queue) = queue.upgrade() {
                queue.add(key);
            }
        });
    }

    /// Adds `key` after its failure back-off, which doubles with each call until [`forget`].
    ///
    /// [`forget`]: WorkQueue::forget
    pub fn add_rate_limited(self: &Arc<Self>, key: T) {
        let delay = {
            let mut state = self.state.lock().expect("queue lock");
            let failures = state.failures.entry(key.clone()).or_insert(0);
            *failures += 1;
            failure_backoff(*failures)
        };
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key` (its reconcile succeeded).
    pub fn forget(&self, key: &T) {
        self.state.lock().expect("queue lock").failures.remove(key);
    }

    /// Takes the next key to process; `None` once the queue is shut down.
    pub async fn next(&self) -> Option<T> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue lock");
                if state.shut_down {
                    return None;
                }
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    // Another key may be waiting for another idle worker.
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Ends the processing of `key`; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &T) {
        let mut state = self.state.lock().expect("queue lock");
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Wakes every waiting worker with `None`.
    pub fn shut_down(&self) {
        self.state.lock().expect("queue lock").shut_down = true;
        self.ready.notify_waiters();
    }

    /// Keys waiting, not counting those being processed.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn failure_backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
    FAILURE_BACKOFF_BASE
        .saturating_mul(factor)
        .min(FAILURE_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_added_twice_is_processed_once() {
        let queue = WorkQueue::new();
        queue.add("a".to_string());
        queue.add("a".to_string());
        queue.add("b".to_string());
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        assert_eq!(queue.next().await.as_deref(), Some("b"));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_processing_waits_until_done() {
        let queue = WorkQueue::new();
        queue.add("a".to_string());
        let key = queue.next().await.unwrap();
        queue.add("a".to_string());
        assert!(
            queue.is_empty(),
            "a key in processing must not be handed out twice"
        );
        queue.done(&key);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next().await.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn shut_down_wakes_waiting_workers() {
        let queue: Arc<WorkQueue<String>> = WorkQueue::new();
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_until_forgotten() {
        assert_eq!(failure_backoff(1), Duration::from_millis(5));
        assert_eq!(failure_backoff(4), Duration::from_millis(40));
        assert_eq!(failure_backoff(40), FAILURE_BACKOFF_MAX);
        let queue = WorkQueue::new();
        queue.add_rate_limited("a".to_string());
        queue.add_rate_limited("a".to_string());
        tokio::time::sleep(Duration::from_millis(6)).await;
        assert_eq!(queue.len(), 1, "the first retry is due after 5 ms");
        queue.forget(&"a".to_string());
        assert!(queue.state.lock().unwrap().failures.is_empty());
    }
}
