//! The decisions of the Job controller, on plain values so they can be tested alone: whether a
//! Job has failed or met its success criteria, how many pods it should have running, and how
//! long a retry must wait after a failure.
//!
//! They follow Kubernetes' job controller (`job_controller.go`, `backoff_utils.go`) for
//! NonIndexed Jobs.

use std::time::Duration;

/// Kubernetes' `DefaultJobPodFailureBackOff`: the delay before re-creating a failed pod, which
/// doubles with each further failure since the last success…
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// …up to this cap (six minutes, as the Kubernetes documentation states).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(6 * 60);

/// What the decisions need of a Job's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub parallelism: i32,
    /// Absent: the Job is done once any pod succeeded and none is still running.
    pub completions: Option<i32>,
    pub backoff_limit: i32,
    /// `restartPolicy: OnFailure`: container restarts count toward the backoff limit.
    pub restarts_count_as_failures: bool,
    pub active_deadline_seconds: Option<i64>,
    /// `podReplacementPolicy: Failed`: a terminating pod is replaced only once it has finished.
    pub replace_only_failed: bool,
}

/// What the controller observed of a Job's pods, with the counts already made monotonic (never
/// below what the Job's status says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Pods neither finished nor being deleted.
    pub active: i32,
    /// Pods being deleted that have not finished yet.
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    /// Container restarts of the active pods.
    pub restarts: i32,
}

/// Why a Job failed: the reason and message of its FailureTarget and Failed conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BackoffLimitExceeded,
    DeadlineExceeded,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Failure::BackoffLimitExceeded => "BackoffLimitExceeded",
            Failure::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Failure::BackoffLimitExceeded => "Job has reached the specified backoff limit",
            Failure::DeadlineExceeded => "Job was active longer than specified deadline",
        }
    }

    pub fn from_reason(reason: &str) -> Option<Failure> {
        match reason {
            "BackoffLimitExceeded" => Some(Failure::BackoffLimitExceeded),
            "DeadlineExceeded" => Some(Failure::DeadlineExceeded),
            _ => None,
        }
    }
}

/// Whether the Job has failed, checked before success as Kubernetes does. `active_for` is how
/// long it has been running since `status.startTime` (None while suspended or not started).
pub fn failure(spec: &Spec, observed: &Observed, active_for: Option<Duration>) -> Option<Failure> {
    if past_backoff_limit(spec, observed) {
        return Some(Failure::BackoffLimitExceeded);
    }
    if let (Some(deadline), Some(active_for)) = (spec.active_deadline_seconds, active_for)
        && active_for >= Duration::from_secs(u64::try_from(deadline).unwrap_or(0))
    {
        return Some(Failure::DeadlineExceeded);
    }
    None
}

/// More failed pods than the limit allows, or (restartPolicy OnFailure) as many container
/// restarts in running pods as the limit (Kubernetes' `pastBackoffLimitOnFailure`: one restart
/// already fails a Job whose limit is 0).
pub fn past_backoff_limit(spec: &Spec, observed: &Observed) -> bool {
    if observed.failed > spec.backoff_limit {
        return true;
    }
    spec.restarts_count_as_failures
        && observed.restarts > 0
        && observed.restarts >= spec.backoff_limit
}

/// Whether the Job met its success criteria: `completions` pods succeeded, or, without
/// `completions`, some pod succeeded and none is still running.
pub fn succeeded(spec: &Spec, observed: &Observed) -> bool {
    match spec.completions {
        Some(completions) => observed.succeeded >= completions,
        None => observed.succeeded > 0 && observed.active == 0,
    }
}

/// How many pods should be active now: at most `parallelism`, never more than the completions
/// still missing, and, without `completions`, no new ones once a pod has succeeded.
pub fn wanted_active(spec: &Spec, observed: &Observed) -> i32 {
    let parallelism = spec.parallelism.max(0);
    match spec.completions {
        None if observed.succeeded > 0 => observed.active,
        None => parallelism,
        Some(completions) => (completions - observed.succeeded).clamp(0, parallelism),
    }
}

/// Pods to start now (positive) or surplus active pods to delete (negative), e.g. after
/// `parallelism` was lowered.
pub fn pods_to_start(spec: &Spec, observed: &Observed) -> i32 {
    let wanted = wanted_active(spec, observed);
    if observed.active > wanted {
        return wanted - observed.active;
    }
    // Terminating pods still hold their slot until they finish when only failed pods are
    // replaced.
    let occupied = observed.active
        + if spec.replace_only_failed {
            observed.terminating
        } else {
            0
        };
    (wanted - occupied).max(0)
}

/// How long pod creation must still wait after `failures_since_success` failures, the last of
/// which was `since_last_failure` ago: 10 s, doubling per failure, capped at 6 minutes.
pub fn backoff_remaining(failures_since_success: u32, since_last_failure: Duration) -> Duration {
    if failures_since_success == 0 {
        return Duration::ZERO;
    }
    let exponent = (failures_since_success - 1).min(16);
    let delay = POD_FAILURE_BACKOFF
        .saturating_mul(1 << exponent)
        .min(MAX_POD_FAILURE_BACKOFF);
    delay.saturating_sub(since_last_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(parallelism: i32, completions: Option<i32>) -> Spec {
        Spec {
            parallelism,
            completions,
            backoff_limit: 6,
            restarts_count_as_failures: false,
            active_deadline_seconds: None,
            replace_only_failed: false,
        }
    }

    fn observed(active: i32, succeeded: i32) -> Observed {
        Observed {
            active,
            succeeded,
            ..Default::default()
        }
    }

    #[test]
    fn starts_up_to_parallelism_but_never_past_the_missing_completions() {
        let job = spec(2, Some(3));
        assert_eq!(pods_to_start(&job, &observed(0, 0)), 2);
        assert_eq!(pods_to_start(&job, &observed(1, 0)), 1);
        assert_eq!(pods_to_start(&job, &observed(2, 0)), 0);
        // Two succeeded: one completion is missing, one pod is enough.
        assert_eq!(pods_to_start(&job, &observed(0, 2)), 1);
        assert_eq!(pods_to_start(&job, &observed(1, 2)), 0);
        assert_eq!(pods_to_start(&job, &observed(0, 3)), 0);
        // Parallelism lowered to 1 while two run: one is surplus.
        assert_eq!(pods_to_start(&spec(1, Some(3)), &observed(2, 0)), -1);
        // Suspension-like parallelism 0 deletes every active pod.
        assert_eq!(pods_to_start(&spec(0, Some(3)), &observed(2, 0)), -2);
    }

    #[test]
    fn without_completions_one_success_stops_new_pods_and_leaves_the_rest_running() {
        let job = spec(3, None);
        assert_eq!(pods_to_start(&job, &observed(0, 0)), 3);
        assert_eq!(pods_to_start(&job, &observed(2, 1)), 0);
        assert!(!succeeded(&job, &observed(2, 1)));
        assert!(succeeded(&job, &observed(0, 1)));
        assert!(!succeeded(&job, &observed(0, 0)));
    }

    #[test]
    fn terminating_pods_are_replaced_at_once_unless_only_failed_ones_may_be() {
        let mut job = spec(2, Some(4));
        let with_terminating = Observed {
            active: 1,
            terminating: 1,
            ..Default::default()
        };
        assert_eq!(pods_to_start(&job, &with_terminating), 1);
        job.replace_only_failed = true;
        assert_eq!(pods_to_start(&job, &with_terminating), 0);
    }

    #[test]
    fn completions_reached_means_success() {
        let job = spec(2, Some(3));
        assert!(!succeeded(&job, &observed(1, 2)));
        assert!(succeeded(&job, &observed(0, 3)));
        assert!(
            succeeded(&job, &observed(1, 3)),
            "a surplus running pod is deleted"
        );
    }

    #[test]
    fn the_backoff_limit_counts_failed_pods_and_on_failure_restarts() {
        let mut job = spec(1, Some(1));
        job.backoff_limit = 1;
        let failed = |failed| Observed {
            failed,
            ..Default::default()
        };
        assert_eq!(failure(&job, &failed(1), None), None);
        assert_eq!(
            failure(&job, &failed(2), None),
            Some(Failure::BackoffLimitExceeded)
        );
        let restarts = |restarts| Observed {
            active: 1,
            restarts,
            ..Default::default()
        };
        assert_eq!(
            failure(&job, &restarts(1), None),
            None,
            "Never: restarts do not count"
        );
        job.restarts_count_as_failures = true;
        assert_eq!(
            failure(&job, &restarts(1), None),
            Some(Failure::BackoffLimitExceeded)
        );
        job.backoff_limit = 0;
        assert_eq!(failure(&job, &restarts(0), None), None);
        assert_eq!(
            failure(&job, &restarts(1), None),
            Some(Failure::BackoffLimitExceeded)
        );
    }

    #[test]
    fn the_deadline_runs_from_the_start_time() {
        let mut job = spec(1, Some(1));
        job.active_deadline_seconds = Some(2);
        let running = observed(1, 0);
        assert_eq!(failure(&job, &running, None), None, "not started");
        assert_eq!(
            failure(&job, &running, Some(Duration::from_millis(1999))),
            None
        );
        assert_eq!(
            failure(&job, &running, Some(Duration::from_secs(2))),
            Some(Failure::DeadlineExceeded)
        );
    }

    #[test]
    fn retries_back_off_exponentially_from_the_last_failure() {
        assert_eq!(backoff_remaining(0, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            backoff_remaining(1, Duration::from_secs(3)),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff_remaining(3, Duration::from_secs(10)),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff_remaining(30, Duration::ZERO),
            MAX_POD_FAILURE_BACKOFF
        );
        assert_eq!(
            backoff_remaining(1, Duration::from_secs(60)),
            Duration::ZERO
        );
    }
}
