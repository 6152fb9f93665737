//! Workers: take keys from a work queue and reconcile them, turning the outcome into what
//! happens to the key next.

use crate::informer::QueueKey;
use crate::queue::WorkQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a reconcile asks for after it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object or something it depends on changes.
    AwaitChange,
    /// Look again after this long even if nothing changes (time-based conditions such as
    /// `minReadySeconds`, deadlines and progress timeouts).
    RequeueAfter(Duration),
}

/// How many reconciles every controller finished: the work-queue throughput figure.
pub static RECONCILES: AtomicU64 = AtomicU64::new(0);

/// Runs `workers` concurrent workers over `queue` until it shuts down.
pub async fn run_workers<T, F, Fut>(
    controller: &'static str,
    queue: Arc<WorkQueue<T>>,
    workers: usize,
    reconcile: F,
) where
    T: QueueKey,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Action>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.next().await {
                let outcome = reconcile(key.clone()).await;
                RECONCILES.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(Action::AwaitChange) => queue.forget(&key),
                    Ok(Action::RequeueAfter(delay)) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), delay);
                    }
                    Err(error) => {
                        tracing::warn!(controller, %key, error = format!("{error:#}"), "reconcile failed; retrying with back-off");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
