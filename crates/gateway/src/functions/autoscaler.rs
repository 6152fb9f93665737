//! Concurrency-based autoscaling, as Knative's KPA does it in spirit: the gateway sees every
//! request of a Function, so it counts how many are in flight, averages that over a short
//! window, and wants `ceil(average / concurrency)` instances between `minScale` and
//! `maxScale`. It scales up at once and down only after the load has stayed lower for the
//! scale-down delay; with `minScale: 0` a Function with no request for that long goes to
//! zero instances.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flotilla_api::function::FunctionSpec;
use flotilla_controllers::informer::ObjectKey;

/// How many samples the average covers: with the default 200 ms interval, six seconds.
const WINDOW_SAMPLES: usize = 30;

/// One Function's load and decision.
struct Load {
    in_flight: Arc<AtomicUsize>,
    samples: VecDeque<usize>,
    desired: i32,
    /// The last time the load needed at least `desired` instances.
    last_needed: Instant,
    /// The last time a request arrived, if one has since the gateway started.
    last_request: Option<Instant>,
    /// When the gateway started following the Function.
    created: Instant,
}

impl Load {
    /// A Function first seen now, wanting `initial` instances, with no request yet.
    fn new(initial: i32, now: Instant) -> Load {
        Load {
            in_flight: Arc::default(),
            samples: VecDeque::new(),
            desired: initial,
            last_needed: now,
            last_request: None,
            created: now,
        }
    }
}

/// Counts a request as in flight while it lives.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct Autoscaler {
    loads: std::sync::Mutex<HashMap<ObjectKey, Load>>,
}

impl Autoscaler {
    /// Counts a request for the Function; at least one instance is wanted from now on (the
    /// activator's scale from zero). Returns whether that raised the desired count.
    pub(crate) fn arrive(
        &self,
        key: &ObjectKey,
        spec: &FunctionSpec,
        initial: i32,
    ) -> (InFlight, bool) {
        let mut loads = self.loads.lock().expect("autoscaler lock");
        let now = Instant::now();
        let load = loads
            .entry(key.clone())
            .or_insert_with(|| Load::new(initial, now));
        load.last_request = Some(now);
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        let raised = load.desired < 1 && spec.max_scale() >= 1;
        if raised {
            load.desired = 1;
            load.last_needed = now;
        }
        (InFlight(load.in_flight.clone()), raised)
    }

    /// The instances wanted for the Function: the autoscaler's decision once it has one,
    /// else `initial` (what the Function's status last said), within its bounds.
    pub(crate) fn desired(&self, key: &ObjectKey, spec: &FunctionSpec, initial: i32) -> i32 {
        let mut loads = self.loads.lock().expect("autoscaler lock");
        let now = Instant::now();
        let load = loads
            .entry(key.clone())
            .or_insert_with(|| Load::new(initial, now));
        load.desired = load.desired.clamp(spec.min_scale(), spec.max_scale());
        load.desired
    }

    /// Forgets a deleted Function.
    pub(crate) fn forget(&self, key: &ObjectKey) {
        self.loads.lock().expect("autoscaler lock").remove(key);
    }

    /// Samples every Function's load and decides again; returns the Functions whose desired
    /// count changed. `spec_of` gives a Function's spec, `None` once it is gone.
    pub(crate) fn tick(
        &self,
        scale_down_delay: Duration,
        spec_of: impl Fn(&ObjectKey) -> Option<FunctionSpec>,
    ) -> Vec<ObjectKey> {
        let mut changed = Vec::new();
        let now = Instant::now();
        let mut loads = self.loads.lock().expect("autoscaler lock");
        loads.retain(|key, _| spec_of(key).is_some());
        for (key, load) in loads.iter_mut() {
            let Some(spec) = spec_of(key) else { continue };
            load.samples
                .push_back(load.in_flight.load(Ordering::Relaxed));
            while load.samples.len() > WINDOW_SAMPLES {
                load.samples.pop_front();
            }
            let average =
                load.samples.iter().sum::<usize>() as f64 / load.samples.len().max(1) as f64;
            // Idle: nothing in flight and no request for the whole delay. Only then may the
            // last instance go; otherwise the load decides, with at least one instance once
            // the Function has been asked for.
            let last_activity = load.last_request.unwrap_or(load.created);
            let idle = load.in_flight.load(Ordering::Relaxed) == 0
                && now.duration_since(last_activity) >= scale_down_delay;
            let by_load = (average / f64::from(spec.concurrency())).ceil() as i32;
            let want = match load.last_request {
                _ if idle => 0,
                Some(_) => by_load.max(1),
                None => by_load,
            };
            let want = want.clamp(spec.min_scale(), spec.max_scale());
            if want >= load.desired {
                load.last_needed = now;
            }
            // Up at once; down when idle, or after the load has stayed lower for the delay.
            let down = want < load.desired
                && (idle || now.duration_since(load.last_needed) >= scale_down_delay);
            let next = if want > load.desired || down {
                want
            } else {
                load.desired
            };
            if next != load.desired {
                tracing::info!(function = %key, from = load.desired, to = next, average, "autoscaling");
                load.desired = next;
                changed.push(key.clone());
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: i32, max: i32, concurrency: i32) -> FunctionSpec {
        FunctionSpec {
            image: "x".into(),
            min_scale: Some(min),
            max_scale: Some(max),
            concurrency: Some(concurrency),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_scales_from_zero_and_idleness_back_to_zero() {
        let scaler = Autoscaler::default();
        let key = ObjectKey::new("default", "hello");
        let spec = spec(0, 5, 10);
        assert_eq!(scaler.desired(&key, &spec, 0), 0);
        let (request, raised) = scaler.arrive(&key, &spec, 0);
        assert!(raised, "the first request raises the count from zero");
        assert_eq!(scaler.desired(&key, &spec, 0), 1);
        drop(request);
        // Within the delay the instance stays; with a zero delay it goes at once.
        let long = Duration::from_secs(3600);
        assert!(scaler.tick(long, |_| Some(spec.clone())).is_empty());
        assert_eq!(scaler.desired(&key, &spec, 0), 1);
        assert_eq!(
            scaler.tick(Duration::ZERO, |_| Some(spec.clone())),
            vec![key.clone()]
        );
        assert_eq!(scaler.desired(&key, &spec, 0), 0);
    }

    #[test]
    fn load_scales_out_by_concurrency_within_the_bounds() {
        let scaler = Autoscaler::default();
        let key = ObjectKey::new("default", "busy");
        let spec = spec(1, 3, 2);
        let held: Vec<InFlight> = (0..9).map(|_| scaler.arrive(&key, &spec, 1).0).collect();
        let long = Duration::from_secs(3600);
        assert_eq!(scaler.tick(long, |_| Some(spec.clone())), vec![key.clone()]);
        // 9 in flight at 2 each wants 5, capped at maxScale 3.
        assert_eq!(scaler.desired(&key, &spec, 1), 3);
        drop(held);
        // The window still remembers the load, and the delay holds the count anyway.
        assert!(scaler.tick(long, |_| Some(spec.clone())).is_empty());
        assert_eq!(scaler.desired(&key, &spec, 1), 3);
        // A gone Function is forgotten.
        assert!(scaler.tick(long, |_| None).is_empty());
    }
}
