//! The arithmetic of a rolling update, on plain numbers so it can be tested alone.
//!
//! It follows Kubernetes' deployment controller (`rolling.go`): scale the new ReplicaSet up as
//! far as `maxSurge` allows, then scale old ReplicaSets down as far as `maxUnavailable` allows,
//! first taking away their unavailable pods, then the oldest ReplicaSets' available ones.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the rollout needs to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsView {
    pub name: String,
    /// `spec.replicas`: what it has been asked for.
    pub replicas: i32,
    /// Pods it can count on: `status.availableReplicas`, but never more than `spec.replicas`,
    /// since a ReplicaSet just scaled down still reports the pods it is about to delete.
    pub available: i32,
}

/// Resolves `maxSurge`/`maxUnavailable`: an absolute number, or a percentage of `replicas`
/// rounded up (surge) or down (unavailable), as Kubernetes does.
pub fn resolve(value: Option<&IntOrString>, replicas: i32, round_up: bool, default: &str) -> i32 {
    let text = match value {
        Some(IntOrString::Int(n)) => return (*n).max(0),
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    match text.strip_suffix('%').map(str::parse::<i64>) {
        Some(Ok(percent)) => {
            let scaled = i64::from(replicas) * percent.max(0);
            let value = if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
        _ => text.parse().unwrap_or(0),
    }
}

/// `maxSurge` and `maxUnavailable` resolved against `replicas`. Both zero would deadlock the
/// rollout, so unavailable becomes 1 then (as in Kubernetes).
pub fn surge_and_unavailable(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let surge = resolve(max_surge, replicas, true, "25%");
    let unavailable = resolve(max_unavailable, replicas, false, "25%").min(replicas);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The replica count the new ReplicaSet should have now.
pub fn new_rs_replicas(desired: i32, max_surge: i32, new_rs: &RsView, all: &[RsView]) -> i32 {
    if new_rs.replicas >= desired {
        return desired;
    }
    let current: i32 = all.iter().map(|rs| rs.replicas).sum();
    let max_total = desired + max_surge;
    if current >= max_total {
        return new_rs.replicas;
    }
    let scale_up = (max_total - current).min(desired - new_rs.replicas);
    new_rs.replicas + scale_up
}

/// New replica counts for old ReplicaSets (`old` is ordered oldest first), as
/// `(name, replicas)` for those that change.
pub fn scale_down_old(
    desired: i32,
    max_unavailable: i32,
    new_rs: Option<&RsView>,
    old: &[RsView],
) -> Vec<(String, i32)> {
    let old_count: i32 = old.iter().map(|rs| rs.replicas).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let new_replicas = new_rs.map_or(0, |rs| rs.replicas);
    let new_available = new_rs.map_or(0, |rs| rs.available);
    let all_count = old_count + new_replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = new_replicas - new_available;
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut old: Vec<RsView> = old.to_vec();
    let mut changes: Vec<(String, i32)> = Vec::new();
    let record = |changes: &mut Vec<(String, i32)>, rs: &RsView| match changes
        .iter_mut()
        .find(|(name, _)| *name == rs.name)
    {
        Some(change) => change.1 = rs.replicas,
        None => changes.push((rs.name.clone(), rs.replicas)),
    };
    // Unavailable pods of old ReplicaSets help nobody: take them away first.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unavailable = rs.replicas - rs.available;
        if rs.replicas == 0 || unavailable <= 0 {
            continue;
        }
        let step = unavailable.min(max_scaled_down - cleaned);
        rs.replicas -= step;
        cleaned += step;
        record(&mut changes, rs);
    }
    // Then available pods, as long as enough stay available overall.
    let available: i32 = old
        .iter()
        .map(|rs| rs.available.min(rs.replicas))
        .sum::<i32>()
        + new_available;
    let mut budget = (available - min_available).max(0);
    for rs in old.iter_mut() {
        if budget == 0 {
            break;
        }
        if rs.replicas == 0 {
            continue;
        }
        let step = rs.replicas.min(budget);
        rs.replicas -= step;
        budget -= step;
        record(&mut changes, rs);
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, replicas: i32, available: i32) -> RsView {
        RsView {
            name: name.into(),
            replicas,
            available,
        }
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve(Some(&pct("25%")), 10, true, "0"), 3);
        assert_eq!(resolve(Some(&pct("25%")), 10, false, "0"), 2);
        assert_eq!(resolve(Some(&IntOrString::Int(4)), 10, false, "0"), 4);
        assert_eq!(resolve(None, 4, true, "25%"), 1);
        assert_eq!(
            surge_and_unavailable(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let new = rs("new", 0, 0);
        let old = rs("old", 10, 10);
        assert_eq!(new_rs_replicas(10, 3, &new, &[new.clone(), old.clone()]), 3);
        let new = rs("new", 3, 0);
        assert_eq!(
            new_rs_replicas(10, 3, &new, &[new.clone(), old]),
            3,
            "no room above 13"
        );
        let new = rs("new", 12, 12);
        assert_eq!(
            new_rs_replicas(10, 3, &new, std::slice::from_ref(&new)),
            10,
            "scaled down to desired"
        );
    }

    #[test]
    fn old_replica_sets_shrink_only_as_new_pods_become_available() {
        // 10 desired, maxUnavailable 2: the new ReplicaSet's 3 pods are not available yet.
        let new = rs("new", 3, 0);
        let old = [rs("old", 10, 10)];
        assert_eq!(
            scale_down_old(10, 2, Some(&new), &old),
            vec![("old".into(), 8)]
        );
        let old = [rs("old", 8, 8)];
        assert!(
            scale_down_old(10, 2, Some(&new), &old).is_empty(),
            "8 available is the floor"
        );
        let new = rs("new", 3, 3);
        assert_eq!(
            scale_down_old(10, 2, Some(&new), &old),
            vec![("old".into(), 5)]
        );
    }

    #[test]
    fn unavailable_old_pods_go_first() {
        let new = rs("new", 2, 0);
        let old = [rs("older", 4, 1), rs("old", 6, 6)];
        // all 12, minAvailable 8, new unavailable 2: 2 may go, both from older's unavailable 3.
        assert_eq!(
            scale_down_old(10, 2, Some(&new), &old),
            vec![("older".into(), 2)]
        );
    }
}
