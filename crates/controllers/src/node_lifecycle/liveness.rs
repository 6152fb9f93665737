//! Whether a node is silent, judged on this controller's own clock: the signs of life a node
//! posts, and when this controller last saw them change.

use super::node_status::ready_condition;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The signs of life a node posts: its Lease renewal and its Ready heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Probe {
    lease_renewed: Option<jiff::Timestamp>,
    heartbeat: Option<jiff::Timestamp>,
}

impl Probe {
    pub(super) fn of(node: &Node, lease: Option<&Lease>) -> Probe {
        Probe {
            lease_renewed: lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0),
            heartbeat: ready_condition(node)
                .and_then(|c| c.last_heartbeat_time.as_ref())
                .map(|t| t.0),
        }
    }

    /// Whether `self` shows the node did something since `seen`. A Lease that disappears
    /// (e.g. garbage-collected) is no sign of life.
    fn is_newer_than(&self, seen: &Probe) -> bool {
        self.lease_renewed > seen.lease_renewed || self.heartbeat > seen.heartbeat
    }
}

/// What the controller knows of one node, on its own clock.
#[derive(Debug)]
pub(super) struct Health {
    probe: Probe,
    /// When `probe` last changed, as this controller saw it.
    observed_at: Instant,
    /// Since when the node has been silent beyond the grace period.
    pub(super) unreachable_since: Option<Instant>,
    /// Pods whose Ready condition was set to False for this outage.
    pub(super) marked_not_ready: HashSet<String>,
    /// Pods deleted for this outage (until the cache shows their deletionTimestamp).
    pub(super) evicted: HashSet<String>,
}

impl Health {
    pub(super) fn new(probe: Probe, now: Instant) -> Health {
        Health {
            probe,
            observed_at: now,
            unreachable_since: None,
            marked_not_ready: HashSet::new(),
            evicted: HashSet::new(),
        }
    }

    /// Records what the node last posted; returns whether it has been silent for longer than
    /// `grace`.
    pub(super) fn observe(&mut self, probe: Probe, now: Instant, grace: Duration) -> bool {
        if probe.is_newer_than(&self.probe) {
            self.probe = probe;
            self.observed_at = now;
        }
        let silent = now.saturating_duration_since(self.observed_at) > grace;
        if silent {
            self.unreachable_since.get_or_insert(now);
        } else {
            self.unreachable_since = None;
            self.marked_not_ready.clear();
            self.evicted.clear();
        }
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(lease_secs: Option<i64>) -> Probe {
        Probe {
            lease_renewed: lease_secs.map(|s| jiff::Timestamp::from_second(s).unwrap()),
            heartbeat: None,
        }
    }

    #[test]
    fn a_node_is_silent_once_nothing_new_was_seen_for_the_grace_period() {
        let grace = Duration::from_secs(40);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        // First seen: a full grace period, whatever the Lease's timestamp says.
        let mut health = Health::new(probe(Some(1)), start);
        assert!(!health.observe(probe(Some(1)), at(40), grace));
        assert!(health.observe(probe(Some(1)), at(41), grace));
        assert_eq!(health.unreachable_since, Some(at(41)));
        assert!(health.observe(probe(Some(1)), at(50), grace));
        assert_eq!(health.unreachable_since, Some(at(41)), "kept while silent");
        // A renewal, even one stamped long ago by a skewed clock, is new life when it is seen.
        assert!(!health.observe(probe(Some(2)), at(60), grace));
        assert_eq!(health.unreachable_since, None);
        assert!(!health.observe(probe(Some(2)), at(100), grace));
        assert!(health.observe(probe(Some(2)), at(101), grace));
    }

    #[test]
    fn a_vanished_lease_is_no_sign_of_life() {
        let grace = Duration::from_secs(40);
        let start = Instant::now();
        let mut health = Health::new(probe(Some(5)), start);
        assert!(health.observe(probe(None), start + Duration::from_secs(41), grace));
        let heartbeat = Probe {
            heartbeat: Some(jiff::Timestamp::from_second(9).unwrap()),
            ..probe(Some(5))
        };
        assert!(!health.observe(heartbeat, start + Duration::from_secs(42), grace));
    }
}
