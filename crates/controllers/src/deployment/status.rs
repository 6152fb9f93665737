//! A Deployment's status: counts summed over its ReplicaSets, and the Available and
//! Progressing conditions, computed as Kubernetes does so `kubectl rollout status` can tell a
//! finished rollout from one in progress or stuck.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use std::time::Duration;

pub struct Computed {
    pub status: DeploymentStatus,
    /// Whether it differs from the status stored now.
    pub changed: bool,
    /// Every replica updated and available.
    pub complete: bool,
    /// When to look again even if nothing changes: the progress deadline.
    pub recheck_after: Option<Duration>,
}

pub fn compute(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    max_unavailable: i32,
    new_rs_created: bool,
    now: jiff::Timestamp,
) -> Computed {
    let desired = deployment.spec.replicas.unwrap_or(1).max(0);
    let all = || new_rs.into_iter().chain(old.iter());
    let sum = |field: fn(&ReplicaSet) -> i32| all().map(field).sum::<i32>();
    let replicas = sum(|rs| rs.status.as_ref().map_or(0, |s| s.replicas));
    let ready = sum(|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    });
    let available = sum(|rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    });
    let updated = new_rs
        .and_then(|rs| rs.status.as_ref())
        .map_or(0, |s| s.replicas);
    let previous = deployment.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone().unwrap_or_default();

    let minimum_available = available >= desired - max_unavailable;
    set_condition(
        &mut conditions,
        "Available",
        if minimum_available { "True" } else { "False" },
        if minimum_available {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if minimum_available {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        },
        now,
        false,
    );

    let rs_name = new_rs.map(|rs| rs.name_any()).unwrap_or_default();
    let complete = updated == desired
        && replicas == desired
        && available == desired
        && (new_rs.is_some() || desired == 0);
    let current = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .cloned();
    let current_reason = current.as_ref().and_then(|c| c.reason.clone());
    let paused = deployment.spec.paused == Some(true);
    let progressed = updated > previous.updated_replicas.unwrap_or(0)
        || ready > previous.ready_replicas.unwrap_or(0)
        || available > previous.available_replicas.unwrap_or(0)
        || replicas - updated
            < previous.replicas.unwrap_or(0) - previous.updated_replicas.unwrap_or(0);
    let deadline = deployment
        .spec
        .progress_deadline_seconds
        .unwrap_or(600)
        .max(0);
    let since_progress = current
        .as_ref()
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| now.duration_since(t.0).as_secs_f64())
        .unwrap_or(0.0);
    let mut recheck_after = None;
    if paused {
        set_condition(
            &mut conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            now,
            true,
        );
    } else if current_reason.as_deref() == Some("DeploymentPaused") {
        set_condition(
            &mut conditions,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
            now,
            true,
        );
    } else if complete {
        let message = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &message,
            now,
            current_reason.as_deref() != Some("NewReplicaSetAvailable"),
        );
    } else if new_rs_created {
        let message = format!("Created new replica set \"{rs_name}\"");
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &message,
            now,
            true,
        );
        recheck_after = Some(Duration::from_secs(deadline as u64 + 1));
    } else if progressed
        || current.is_none()
        || current_reason.as_deref() == Some("NewReplicaSetAvailable")
    {
        let message = format!("ReplicaSet \"{rs_name}\" is progressing.");
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &message,
            now,
            true,
        );
        recheck_after = Some(Duration::from_secs(deadline as u64 + 1));
    } else if since_progress > f64::from(deadline) {
        let message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
        set_condition(
            &mut conditions,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &message,
            now,
            current_reason.as_deref() != Some("ProgressDeadlineExceeded"),
        );
    } else {
        let remaining = f64::from(deadline) - since_progress;
        recheck_after = Some(Duration::from_secs_f64(remaining.max(0.0) + 1.0));
    }

    let status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        collision_count: previous.collision_count,
        conditions: Some(conditions),
        terminating_replicas: previous.terminating_replicas,
    };
    Computed {
        changed: deployment.status.as_ref() != Some(&status),
        status,
        complete,
        recheck_after,
    }
}

/// Sets a condition. Its lastTransitionTime moves only when its status changes; its
/// lastUpdateTime moves when `touch` is set (progress was made) or the condition is new.
fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
    touch: bool,
) {
    let existing = conditions
        .iter()
        .position(|c| c.type_.as_deref() == Some(type_));
    let now = Time(now);
    match existing {
        Some(index) => {
            let condition = &mut conditions[index];
            if condition.status.as_deref() != Some(status) {
                condition.last_transition_time = Some(now.clone());
                condition.last_update_time = Some(now);
            } else if touch || condition.reason.as_deref() != Some(reason) {
                condition.last_update_time = Some(now);
            }
            condition.status = Some(status.into());
            condition.reason = Some(reason.into());
            condition.message = Some(message.into());
        }
        None => conditions.push(DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(now.clone()),
            last_update_time: Some(now),
        }),
    }
}
