//! Leader election over a Lease, as client-go's `leaderelection` does it, so several
//! controller managers can run for availability while exactly one acts.
//!
//! A candidate takes the Lease `kube-system/flotilla-controller-manager` when it is free or its
//! holder has not renewed it for `lease_duration`, measured on the candidate's own clock from
//! when it last saw the record change (so clocks need not agree). Writes are compare-and-swap
//! on the Lease's resourceVersion, so two candidates can never both win. The leader renews
//! every `retry_period`; if it cannot renew for `renew_deadline` it stops its work before
//! anyone else may take over (renew_deadline < lease_duration), then campaigns again.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::{Duration, Instant};

/// Where the controller manager's Lease lives.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "flotilla-controller-manager";

/// Timings of an election (Kubernetes' defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl ElectionConfig {
    /// Timings scaled from a lease duration, keeping Kubernetes' proportions.
    pub fn with_lease_duration(lease_duration: Duration) -> Self {
        ElectionConfig {
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration.mul_f64(2.0 / 15.0),
        }
    }
}

/// What a candidate last saw of the Lease, and when (on its own clock).
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    at: Instant,
}

pub struct Candidate {
    api: Api<Lease>,
    identity: String,
    config: ElectionConfig,
    observed: Option<Observed>,
}

impl Candidate {
    pub fn new(client: Client, identity: impl Into<String>, config: ElectionConfig) -> Self {
        Candidate {
            api: Api::namespaced(client, LEASE_NAMESPACE),
            identity: identity.into(),
            config,
            observed: None,
        }
    }

    /// Runs `work` whenever this candidate leads, until `shutdown` completes. `work` gets a
    /// future that completes when leadership is lost (or at shutdown) and must then stop.
    pub async fn run<W, Fut>(mut self, shutdown: impl Future<Output = ()>, work: W)
    where
        W: Fn(tokio::sync::watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()>,
    {
        futures::pin_mut!(shutdown);
        loop {
            // Campaign.
            loop {
                match self.try_acquire().await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not read or write the leader Lease")
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(self.config.retry_period) => {}
                }
            }
            tracing::info!(identity = %self.identity, "became the leader; starting the controllers");
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let running = work(stopped);
            futures::pin_mut!(running);
            let mut last_renewal = Instant::now();
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    _ = &mut running => break,
                    _ = &mut shutdown, if !shutting_down => {
                        shutting_down = true;
                        let _ = stop.send(true);
                    }
                    _ = tokio::time::sleep(self.config.retry_period), if !shutting_down => {
                        match self.try_acquire().await {
                            Ok(true) => last_renewal = Instant::now(),
                            Ok(false) => {
                                tracing::warn!("another controller manager took the Lease; stopping");
                                let _ = stop.send(true);
                            }
                            Err(error) => tracing::warn!(%error, "could not renew the leader Lease"),
                        }
                        if last_renewal.elapsed() > self.config.renew_deadline {
                            tracing::warn!("could not renew the leader Lease in time; stopping the controllers");
                            let _ = stop.send(true);
                        }
                    }
                }
            }
            if shutting_down {
                self.release().await;
                return;
            }
            tracing::info!("controllers stopped; campaigning again");
        }
    }

    /// Takes or renews the Lease if it is ours to take; true if this candidate now holds it.
    async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let current = self.api.get_opt(LEASE_NAME).await?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() && !self.expired(&spec) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours {
            spec.acquire_time.clone().unwrap_or_else(|| now.clone())
        } else {
            now.clone()
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        // A replace carries the resourceVersion we read: if anyone wrote since, it is a 409.
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the holder has not renewed for a lease duration, as this candidate saw it.
    fn expired(&mut self, spec: &LeaseSpec) -> bool {
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != spec.holder_identity || o.renew_time != spec.renew_time);
        if changed {
            self.observed = Some(Observed {
                holder: spec.holder_identity.clone(),
                renew_time: spec.renew_time.clone(),
                at: Instant::now(),
            });
            return false;
        }
        let duration = spec
            .lease_duration_seconds
            .map_or(self.config.lease_duration, |s| {
                Duration::from_secs(s.max(1) as u64)
            });
        self.observed
            .as_ref()
            .is_some_and(|o| o.at.elapsed() > duration)
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Gives the Lease up at shutdown so another candidate need not wait for it to expire.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released the leader Lease"),
            Err(error) => tracing::warn!(%error, "could not release the leader Lease"),
        }
    }
}
