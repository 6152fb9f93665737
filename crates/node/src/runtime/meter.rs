//! CPU accounting and CPU limits for a running guest.
//!
//! A guest's CPU time is the time it spends executing WebAssembly: a store's call hook starts
//! the clock when control enters wasm (or returns to it from a host call) and stops it when
//! control leaves, so time blocked in host calls — sleeping, waiting on I/O — is not counted.
//! It is wall time in wasm, so a guest that the OS deschedules is charged for the wait: an
//! upper bound on the CPU it actually used, never less.
//!
//! A CPU limit (`resources.limits.cpu`, e.g. `100m`, a tenth of a core) is enforced at the
//! epoch ticks where every guest yields anyway: a guest that has used more CPU in the current
//! window than its share of the wall time sleeps off the difference before it continues, as
//! the kernel's CFS bandwidth control throttles a container over its quota. A window lasts at
//! least [`WINDOW`], so an idle guest cannot bank credit for a later burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a throttling window lasts at least: CFS's default period.
const WINDOW: Duration = Duration::from_millis(100);

/// What one running guest has used, readable while it runs (for node stats).
#[derive(Debug, Default)]
pub struct Usage {
    cpu_nanos: AtomicU64,
    memory_bytes: AtomicU64,
}

impl Usage {
    /// CPU time spent in wasm so far.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// The size of the guest's linear memory, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    pub(super) fn set_memory(&self, bytes: usize) {
        self.memory_bytes
            .store(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn add_cpu(&self, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Counts one store's time in wasm and decides when a limited guest must pause.
pub(super) struct CpuMeter {
    /// The CPU share allowed, in cores (0.1 for `100m`); `None` is unlimited.
    limit: Option<f64>,
    usage: Arc<Usage>,
    /// When the guest last entered wasm, while it is in wasm.
    in_wasm_since: Option<Instant>,
    window_start: Instant,
    window_used: Duration,
}

impl CpuMeter {
    pub(super) fn new(limit_millicores: Option<u64>, usage: Arc<Usage>) -> Self {
        CpuMeter {
            // A limit of 0 would never let the guest run; treat it as the smallest share.
            limit: limit_millicores.map(|m| m.max(1) as f64 / 1000.0),
            usage,
            in_wasm_since: None,
            window_start: Instant::now(),
            window_used: Duration::ZERO,
        }
    }

    /// Control entered wasm.
    pub(super) fn enter(&mut self, now: Instant) {
        self.in_wasm_since.get_or_insert(now);
    }

    /// Control left wasm: charge the time since it entered.
    pub(super) fn leave(&mut self, now: Instant) {
        if let Some(since) = self.in_wasm_since.take() {
            let spent = now.saturating_duration_since(since);
            self.window_used += spent;
            self.usage.add_cpu(spent);
        }
    }

    /// At an epoch tick, while the guest is in wasm: how long it must pause to stay within its
    /// limit, if at all. The guest is charged up to `now` and counted as back in wasm once the
    /// pause is over.
    pub(super) fn tick(&mut self, now: Instant) -> Option<Duration> {
        self.leave(now);
        let pause = self.limit.and_then(|limit| {
            let elapsed = now.saturating_duration_since(self.window_start);
            // The wall time that the CPU used this window is worth at the limit.
            let earned = self.window_used.div_f64(limit);
            let pause = earned.checked_sub(elapsed).filter(|p| !p.is_zero());
            if pause.is_some() || elapsed >= WINDOW {
                self.window_start = now + pause.unwrap_or_default();
                self.window_used = Duration::ZERO;
            }
            pause
        });
        self.in_wasm_since = Some(now + pause.unwrap_or_default());
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_a_core_pauses_nine_times_as_long_as_it_ran() {
        let usage = Arc::new(Usage::default());
        let mut meter = CpuMeter::new(Some(100), usage.clone());
        let start = meter.window_start;
        meter.enter(start);
        let pause = meter.tick(start + Duration::from_millis(10)).unwrap();
        assert_eq!(pause, Duration::from_millis(90));
        assert_eq!(usage.cpu(), Duration::from_millis(10));
        // The pause is not charged: the next 10 ms of running again earns 90 ms of pause.
        let resumed = start + Duration::from_millis(100);
        assert_eq!(
            meter.tick(resumed + Duration::from_millis(10)),
            Some(Duration::from_millis(90))
        );
        assert_eq!(usage.cpu(), Duration::from_millis(20));
    }

    #[test]
    fn time_in_host_calls_is_not_charged_and_unlimited_guests_never_pause() {
        let usage = Arc::new(Usage::default());
        let mut meter = CpuMeter::new(None, usage.clone());
        let start = Instant::now();
        meter.enter(start);
        meter.leave(start + Duration::from_millis(3));
        // Blocked in the host for a second, then back in wasm for 2 ms.
        meter.enter(start + Duration::from_secs(1));
        assert_eq!(meter.tick(start + Duration::from_millis(1002)), None);
        assert_eq!(usage.cpu(), Duration::from_millis(5));
    }
}
