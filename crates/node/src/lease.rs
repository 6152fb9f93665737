//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node lifecycle controller
//! watches to tell a live node from a dead one, renewed as the kubelet renews it.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::Duration;

/// The namespace that holds one Lease per node.
pub const NAMESPACE: &str = "kube-node-lease";

/// How long a renewal claims the Lease for, as the kubelet's `nodeLeaseDurationSeconds`.
pub const DURATION_SECONDS: i32 = 40;

/// The Lease as this node writes it: held by the node, renewed now, owned by the Node object
/// (so it goes when the Node goes).
fn desired(node: &str, node_uid: Option<&str>, now: jiff::Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.into(),
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Renews the Lease once, creating it if it does not exist yet.
async fn renew(leases: &Api<Lease>, node: &str, node_uid: Option<&str>) -> kube::Result<()> {
    let lease = desired(node, node_uid, jiff::Timestamp::now());
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&lease))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // Created between our patch and create: the next renewal patches it.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// Renews the Lease now and then every `every`. A failed renewal is logged and retried at the
/// next tick: a node that cannot reach the API for a while is exactly what the Lease reports.
pub async fn keep_renewed(client: Client, node: String, node_uid: Option<String>, every: Duration) {
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        match renew(&leases, &node, node_uid.as_deref()).await {
            Ok(()) if failing => {
                tracing::info!(node = %node, "lease renewed again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(node = %node, %error, "could not renew the node lease; will retry");
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_held_by_and_owned_by_its_node() {
        let now: jiff::Timestamp = "2026-01-02T03:04:05.123456Z".parse().unwrap();
        let lease = serde_json::to_value(desired("node-a", Some("uid-1"), now)).unwrap();
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(lease["spec"]["holderIdentity"], "node-a");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["spec"]["renewTime"], "2026-01-02T03:04:05.123456Z");
        let owner = &lease["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Node");
        assert_eq!(owner["name"], "node-a");
        assert_eq!(owner["uid"], "uid-1");
    }
}
