//! Expectations: what a controller has asked for and not yet seen in its cache.
//!
//! A controller's cache trails its own writes. A ReplicaSet that just created three pods
//! would, reconciled again before the watch delivers them, see three too few and create three
//! more. So a controller records the pods it created or deleted, by name, and does not act on
//! an owner's counts until the cache has caught up (Kubernetes' `ControllerExpectations`).
//! Expectations lapse after a timeout so a lost event cannot wedge an owner forever.

use crate::informer::ObjectKey;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations may stay unmet before the cache is trusted anyway.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Pending {
    creations: HashSet<String>,
    deletions: HashSet<String>,
    since: Option<Instant>,
}

/// How the cache shows a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present,
    /// Present with a deletionTimestamp: its deletion has been observed.
    Terminating,
}

#[derive(Default)]
pub struct Expectations {
    owners: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    /// Records that `owner` is creating pods with these names.
    pub fn expect_creations(&self, owner: &ObjectKey, names: impl IntoIterator<Item = String>) {
        let mut owners = self.owners.lock().expect("expectations lock");
        let pending = owners.entry(owner.clone()).or_default();
        pending.creations.extend(names);
        pending.since = Some(Instant::now());
    }

    /// Records that `owner` is deleting pods with these names.
    pub fn expect_deletions(&self, owner: &ObjectKey, names: impl IntoIterator<Item = String>) {
        let mut owners = self.owners.lock().expect("expectations lock");
        let pending = owners.entry(owner.clone()).or_default();
        pending.deletions.extend(names);
        pending.since = Some(Instant::now());
    }

    /// A creation that failed: the pod will never show up.
    pub fn creation_failed(&self, owner: &ObjectKey, name: &str) {
        if let Some(pending) = self.owners.lock().expect("lock").get_mut(owner) {
            pending.creations.remove(name);
        }
    }

    /// A deletion that failed: the pod will not go away.
    pub fn deletion_failed(&self, owner: &ObjectKey, name: &str) {
        if let Some(pending) = self.owners.lock().expect("lock").get_mut(owner) {
            pending.deletions.remove(name);
        }
    }

    /// Whether the cache has caught up with everything `owner` asked for. `seen` tells how the
    /// cache shows a pod by name. Asking the cache, rather than counting watch events, stays
    /// right when the cache is rebuilt by a relist, which replays no per-object events.
    pub fn satisfied(&self, owner: &ObjectKey, seen: impl Fn(&str) -> Seen) -> bool {
        let mut owners = self.owners.lock().expect("expectations lock");
        let Some(pending) = owners.get_mut(owner) else {
            return true;
        };
        pending.creations.retain(|name| seen(name) == Seen::Absent);
        pending.deletions.retain(|name| seen(name) == Seen::Present);
        let caught_up = pending.creations.is_empty() && pending.deletions.is_empty();
        let lapsed = pending
            .since
            .is_some_and(|since| since.elapsed() > EXPECTATIONS_TIMEOUT);
        if lapsed && !caught_up {
            tracing::warn!(%owner, "expected pod changes never showed up; trusting the cache");
        }
        if caught_up || lapsed {
            owners.remove(owner);
            return true;
        }
        false
    }

    /// Drops everything recorded for `owner` (it was deleted).
    pub fn forget(&self, owner: &ObjectKey) {
        self.owners.lock().expect("expectations lock").remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_the_cache_shows_every_named_change() {
        let expectations = Expectations::default();
        let owner = ObjectKey::new("default", "web");
        assert!(expectations.satisfied(&owner, |_| Seen::Absent));
        expectations.expect_creations(&owner, ["a".to_string(), "b".to_string()]);
        expectations.expect_deletions(&owner, ["old".to_string(), "gone".to_string()]);
        let cache = |present: &'static [&'static str]| {
            move |name: &str| match name {
                "gone" => Seen::Terminating,
                _ if present.contains(&name) => Seen::Present,
                _ => Seen::Absent,
            }
        };
        assert!(!expectations.satisfied(&owner, cache(&["a", "old"])));
        assert!(!expectations.satisfied(&owner, cache(&["a", "b", "old"])));
        expectations.deletion_failed(&owner, "old");
        assert!(expectations.satisfied(&owner, cache(&["a", "b", "old"])));
    }
}
