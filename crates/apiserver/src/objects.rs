//! What each write does to an object: defaults, validation, immutable fields, optimistic
//! concurrency, graceful deletion and binding. Every read-modify-write runs inside the store's
//! writer (`Store::mutate`), so checks and write are atomic.

use crate::ApiState;
use crate::error::{ApiError, Result};
use crate::patching::{self, PatchType};
use crate::path::ResourceRequest;
use crate::propagation;
use flotilla_api::field_manager::{self, Manager};
use flotilla_api::resource::{self, ResourceType};
use flotilla_api::schema::SchemaNode;
use flotilla_api::{ApiStatus, defaults, meta, validation};
use flotilla_store::{Mutation, Written};
use serde_json::{Value, json};

pub(crate) type Rejection = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn reject(status: ApiStatus) -> Rejection {
    Box::new(status)
}

/// The query parameters every write takes.
#[derive(Debug, Default, Clone)]
pub struct WriteOptions {
    /// `dryRun=All`: everything but the write.
    pub dry_run: bool,
    /// Who makes the change, for `managedFields`: the `fieldManager` parameter, else the
    /// client's name from its User-Agent, as Kubernetes does.
    pub manager: String,
    /// Whether the client named the manager. Only then does a create start tracking
    /// managedFields, so objects that controllers write stay small.
    pub manager_named: bool,
    /// `force`: a server-side apply takes the fields other managers own.
    pub force: bool,
}

impl WriteOptions {
    fn manager<'a>(&'a self, api_version: &'a str, time: &'a str) -> Manager<'a> {
        Manager {
            name: &self.manager,
            api_version,
            time,
        }
    }
}

/// Fills `kind`/`apiVersion` and checks that a body's type and namespace fit the URL.
fn check_identity(request: &ResourceRequest, object: &mut Value) -> Result<()> {
    let r = request.resource;
    let api_version = r.api_version();
    let body_kind = object.get("kind").and_then(Value::as_str).unwrap_or(r.kind);
    let body_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(&api_version);
    if body_kind != r.kind || body_version != api_version {
        return Err(ApiError(ApiStatus::bad_request(format!(
            "the object is a {body_kind} of {body_version}, but was sent to the {} endpoint of {api_version}",
            r.plural
        ))));
    }
    object["kind"] = json!(r.kind);
    object["apiVersion"] = json!(api_version);
    match (
        &request.namespace,
        meta::namespace(object).map(str::to_string),
    ) {
        (Some(url_ns), Some(body_ns)) if !body_ns.is_empty() && &body_ns != url_ns => {
            Err(ApiError(ApiStatus::bad_request(format!(
                "the namespace of the object ({body_ns}) does not match the namespace of the request ({url_ns})"
            ))))
        }
        (Some(url_ns), _) => {
            meta::set_meta(object, "namespace", url_ns.clone());
            Ok(())
        }
        (None, _) => {
            meta::metadata_mut(object).remove("namespace");
            Ok(())
        }
    }
}

/// Refuses writes into a namespace that does not exist or is being deleted.
async fn check_namespace_open(state: &ApiState, namespace: &str) -> Result<()> {
    let namespaces = resource::lookup("", "v1", "namespaces").expect("served");
    match state.store().get(&namespaces.key("", namespace)).await? {
        None => Err(ApiError(ApiStatus::not_found("", "namespaces", namespace))),
        Some(ns) if meta::deletion_timestamp(&ns).is_some() => {
            Err(ApiError(ApiStatus::forbidden(format!(
                "namespace {namespace} is being terminated; new objects cannot be created in it"
            ))))
        }
        Some(_) => Ok(()),
    }
}

/// Creates an object (POST to a collection).
pub async fn create(
    state: &ApiState,
    request: &ResourceRequest,
    mut object: Value,
    options: &WriteOptions,
) -> Result<Value> {
    let r = request.resource;
    check_identity(request, &mut object)?;
    if meta::name(&object).is_none_or(str::is_empty)
        && let Some(prefix) =
            meta::str_at(&object, &["metadata", "generateName"]).map(str::to_string)
    {
        meta::set_meta(&mut object, "name", format!("{prefix}{}", random_suffix()));
    }
    let metadata = meta::metadata_mut(&mut object);
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        metadata.remove(server_owned);
    }
    metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    metadata.insert(
        "creationTimestamp".into(),
        json!(flotilla_api::now_rfc3339()),
    );
    metadata.insert("generation".into(), json!(1));
    if r.has_status()
        && let Some(fields) = object.as_object_mut()
    {
        // Kubernetes' create strategies start every such object with a status (`{}` until a
        // controller fills it), and typed clients read through it: the Python client's
        // `deployment.status.ready_replicas` fails on a missing status.
        fields.entry("status").or_insert_with(|| json!({}));
    }
    defaults::apply(r.kind, &mut object);
    validation::validate(r, &object)?;
    if options.manager_named && object.pointer("/metadata/managedFields").is_none() {
        let (api_version, now) = (r.api_version(), flotilla_api::now_rfc3339());
        let manager = options.manager(&api_version, &now);
        field_manager::record_update(None, &mut object, &manager, SchemaNode::of_kind(r));
    }
    if r.namespaced {
        check_namespace_open(state, request.key_namespace()).await?;
    }
    if options.dry_run {
        return Ok(object);
    }
    let name = meta::name(&object).unwrap_or_default().to_string();
    let key = r.key(request.key_namespace(), &name);
    match state.store().create(&key, object).await {
        Ok(written) => Ok(written.object.expect("create stores an object")),
        Err(flotilla_store::Error::AlreadyExists { .. }) => Err(ApiError(
            ApiStatus::already_exists(r.group, r.plural, &name),
        )),
        Err(other) => Err(other.into()),
    }
}

/// Five characters from the alphabet Kubernetes uses for generated names (no vowels, so no words).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself; `status` is kept when the kind has a status subresource.
    Main,
    /// Only `status` (the `/status` subresource).
    Status,
}

/// Turns a desired object into the next stored version of `current`, enforcing
/// resourceVersion preconditions and fields the client may not change. `manager` is credited
/// with what the write changes; `None` when the caller has already updated `managedFields`.
pub(crate) fn next_version(
    r: &ResourceType,
    part: Part,
    current: &Value,
    mut desired: Value,
    manager: Option<&Manager>,
) -> Result<Mutation, ApiStatus> {
    let name = meta::name(current).unwrap_or_default().to_string();
    if let Some(rv) = meta::resource_version(&desired).filter(|rv| !rv.is_empty())
        && Some(rv) != meta::resource_version(current)
    {
        return Err(ApiStatus::conflict(
            r.group,
            r.plural,
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    if let Some(body_name) = meta::name(&desired)
        && body_name != name
    {
        return Err(ApiStatus::bad_request(format!(
            "the name of the object ({body_name}) does not match the name in the URL ({name})"
        )));
    }
    let mut next = match part {
        Part::Status => {
            let mut next = current.clone();
            next["status"] = desired.get("status").cloned().unwrap_or(json!({}));
            next
        }
        Part::Main => {
            desired["kind"] = current["kind"].clone();
            desired["apiVersion"] = current["apiVersion"].clone();
            let metadata = meta::metadata_mut(&mut desired);
            for owned in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match current["metadata"].get(owned) {
                    Some(value) => metadata.insert(owned.into(), value.clone()),
                    None => metadata.remove(owned),
                };
            }
            defaults::apply(r.kind, &mut desired);
            // Binding, not an update, sets a pod's node; a manifest re-applied without it keeps it.
            if r.kind == "Pod"
                && desired["spec"].get("nodeName").is_none()
                && let Some(node) = current["spec"].get("nodeName")
            {
                desired["spec"]["nodeName"] = node.clone();
            }
            if let Some(manager) = manager {
                let schema = SchemaNode::of_kind(r);
                field_manager::record_update(Some(current), &mut desired, manager, schema);
            }
            validation::validate_update(r, current, &desired)?;
            if r.has_status() {
                match current.get("status") {
                    Some(status) => desired["status"] = status.clone(),
                    None => {
                        desired.as_object_mut().expect("object").remove("status");
                    }
                }
            }
            if spec_of(&desired) != spec_of(current) {
                let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
                meta::metadata_mut(&mut desired).insert("generation".into(), json!(generation + 1));
            }
            desired
        }
    };
    meta::set_meta(
        &mut next,
        "resourceVersion",
        meta::resource_version(current).unwrap_or_default(),
    );
    validation::validate(r, &next)?;
    if same_content(&next, current) {
        return Ok(Mutation::Unchanged);
    }
    if meta::deletion_timestamp(&next).is_some() && finalizers(&next).is_empty() && r.kind != "Pod"
    {
        return Ok(Mutation::Delete);
    }
    Ok(Mutation::Put(next))
}

/// Everything but metadata and status: what `generation` counts changes of.
fn spec_of(object: &Value) -> Value {
    let mut spec = object.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    spec
}

fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::metadata_mut(&mut v).remove("resourceVersion");
        v
    };
    strip(a) == strip(b)
}

fn finalizers(object: &Value) -> Vec<Value> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn object_of(written: Written) -> Value {
    written.object.or(written.previous).unwrap_or(Value::Null)
}

pub(crate) fn not_found(request: &ResourceRequest) -> ApiStatus {
    let r = request.resource;
    ApiStatus::not_found(
        r.group,
        r.plural,
        request.name.as_deref().unwrap_or_default(),
    )
}

/// Replaces an object (PUT), or its status.
pub async fn replace(
    state: &ApiState,
    request: &ResourceRequest,
    part: Part,
    mut desired: Value,
    options: &WriteOptions,
) -> Result<Value> {
    if part == Part::Main {
        check_identity(request, &mut desired)?;
    }
    let r = request.resource;
    let missing = not_found(request);
    let options_owned = options.clone();
    write(state, request, options.dry_run, move |current| {
        let current = current.ok_or_else(|| reject(missing))?;
        let (api_version, now) = (r.api_version(), flotilla_api::now_rfc3339());
        let manager = options_owned.manager(&api_version, &now);
        next_version(r, part, current, desired, Some(&manager)).map_err(reject)
    })
    .await
}

/// Runs `decide` on the stored object as one atomic write, or, for a dry run, on a snapshot
/// without writing; either way returns the object as it is (or would be) afterwards.
pub(crate) async fn write(
    state: &ApiState,
    request: &ResourceRequest,
    dry_run: bool,
    decide: impl FnOnce(Option<&Value>) -> Result<Mutation, Rejection> + Send + 'static,
) -> Result<Value> {
    if dry_run {
        let current = state.store().get(&request.key()).await?;
        return match decide(current.as_ref()) {
            Ok(Mutation::Put(next)) => Ok(next),
            Ok(_) => Ok(current.unwrap_or(Value::Null)),
            Err(e) => Err(flotilla_store::Error::Rejected(e).into()),
        };
    }
    let written = state.store().mutate(&request.key(), decide).await?;
    Ok(object_of(written))
}

/// Applies a patch (PATCH) to an object or its status.
pub async fn patch(
    state: &ApiState,
    request: &ResourceRequest,
    part: Part,
    patch_type: PatchType,
    patch: Value,
    options: &WriteOptions,
) -> Result<Value> {
    let r = request.resource;
    let missing = not_found(request);
    let options_owned = options.clone();
    write(state, request, options.dry_run, move |current| {
        let current = current.ok_or_else(|| reject(missing))?;
        let patched =
            patching::apply(current, patch_type, &patch, SchemaNode::of_kind(r)).map_err(reject)?;
        let (api_version, now) = (r.api_version(), flotilla_api::now_rfc3339());
        let manager = options_owned.manager(&api_version, &now);
        next_version(r, part, current, patched, Some(&manager)).map_err(reject)
    })
    .await
}

/// Server-side apply (PATCH with `application/apply-patch+yaml`): merges the applied
/// configuration into the object, or creates it, with the request's manager owning the fields
/// it sets. A field another manager owns with a different value is a 409 conflict, unless the
/// request forces.
pub async fn apply(
    state: &ApiState,
    request: &ResourceRequest,
    mut applied: Value,
    options: &WriteOptions,
) -> Result<Value> {
    if !applied.is_object() {
        return Err(ApiError(ApiStatus::bad_request(
            "the apply configuration must be an object (a YAML mapping)",
        )));
    }
    if !options.manager_named {
        return Err(ApiError(ApiStatus::bad_request(
            "PATCH with application/apply-patch+yaml requires a fieldManager parameter naming who applies",
        )));
    }
    check_identity(request, &mut applied)?;
    let r = request.resource;
    let name = request.name.clone().unwrap_or_default();
    if meta::name(&applied).is_some_and(|n| n != name) {
        return Err(ApiError(ApiStatus::bad_request(format!(
            "the name of the object ({}) does not match the name in the URL ({name})",
            meta::name(&applied).unwrap_or_default()
        ))));
    }
    meta::set_meta(&mut applied, "name", name);
    let (api_version, now) = (r.api_version(), flotilla_api::now_rfc3339());
    if state.store().get(&request.key()).await?.is_none() {
        let manager = options.manager(&api_version, &now);
        let created = field_manager::apply(
            None,
            &applied,
            &manager,
            options.force,
            SchemaNode::of_kind(r),
        )
        .map_err(|conflicts| ApiError(conflict_status(&conflicts)))?;
        match create(state, request, created, options).await {
            Err(ApiError(status)) if status.code == 409 => {} // Created meanwhile: apply to it.
            other => return other,
        }
    }
    let missing = not_found(request);
    let options_owned = options.clone();
    write(state, request, options.dry_run, move |current| {
        let current = current.ok_or_else(|| reject(missing))?;
        let manager = options_owned.manager(&api_version, &now);
        let schema = SchemaNode::of_kind(r);
        let merged = field_manager::apply(
            Some(current),
            &applied,
            &manager,
            options_owned.force,
            schema,
        )
        .map_err(|conflicts| reject(conflict_status(&conflicts)))?;
        next_version(r, Part::Main, current, merged, None).map_err(reject)
    })
    .await
}

fn conflict_status(conflicts: &[field_manager::Conflict]) -> ApiStatus {
    let causes = conflicts
        .iter()
        .map(|c| flotilla_api::Cause {
            reason: "FieldManagerConflict",
            message: format!("conflict with {}", c.owner()),
            field: c.field.clone(),
        })
        .collect();
    ApiStatus::apply_conflict(field_manager::conflict_message(conflicts), causes)
}

/// The parts of `DeleteOptions` flotilla honours.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
    /// `propagationPolicy` or the legacy `orphanDependents`.
    pub propagation: propagation::Requested,
}

/// Deletes an object. An object that holds finalizers (its own, or the `orphan` and
/// `foregroundDeletion` ones the propagation policy asks for) only gets a `deletionTimestamp`
/// and goes once they are all removed. A pod running on a node is deleted gracefully: it gets
/// a `deletionTimestamp`, its node agent stops it and then removes it, as the kubelet does.
pub async fn delete(
    state: &ApiState,
    request: &ResourceRequest,
    options: DeleteOptions,
) -> Result<Value> {
    let r = request.resource;
    if r.kind == "Namespace" {
        return delete_namespace(state, request, options).await;
    }
    let node_exists = match state.store().get(&request.key()).await? {
        Some(pod) if r.kind == "Pod" => match meta::str_at(&pod, &["spec", "nodeName"]) {
            Some(node) => {
                let nodes = resource::lookup("", "v1", "nodes").expect("served");
                state.store().get(&nodes.key("", node)).await?.is_some()
            }
            None => false,
        },
        _ => false,
    };
    let missing = not_found(request);
    let dry_run = options.dry_run;
    let decide = move |current: Option<&Value>| -> Result<Mutation, Rejection> {
        let current = current.ok_or_else(|| reject(missing))?;
        check_preconditions(r, current, &options).map_err(reject)?;
        let finalizers = if propagation::applies_to(r) {
            propagation::finalizers_after_delete(r, &finalizers(current), options.propagation)
        } else {
            finalizers(current)
        };
        if !finalizers.is_empty() {
            return Ok(mark_deleting(r, current, finalizers));
        }
        if r.kind == "Pod" && node_exists && !is_terminal(current) {
            let grace = options.grace_period_seconds.unwrap_or_else(|| {
                current["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            });
            if grace > 0 {
                if meta::deletion_timestamp(current).is_some() {
                    return Ok(Mutation::Unchanged);
                }
                let mut next = current.clone();
                let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                meta::set_meta(
                    &mut next,
                    "deletionTimestamp",
                    deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                );
                meta::metadata_mut(&mut next)
                    .insert("deletionGracePeriodSeconds".into(), json!(grace));
                return Ok(Mutation::Put(next));
            }
        }
        Ok(Mutation::Delete)
    };
    if dry_run {
        let current = state.store().get(&request.key()).await?;
        return match decide(current.as_ref()) {
            Ok(_) => Ok(current.unwrap_or(Value::Null)),
            Err(e) => Err(flotilla_store::Error::Rejected(e).into()),
        };
    }
    let written = state.store().mutate(&request.key(), decide).await?;
    Ok(object_of(written))
}

/// An object that waits for its finalizers: a `deletionTimestamp` (kept from the first
/// delete), the finalizers a delete left, and, as Kubernetes does when an object starts
/// going, a new generation, so controllers see the change.
fn mark_deleting(r: &ResourceType, current: &Value, finalizers: Vec<Value>) -> Mutation {
    let mut next = current.clone();
    let first = meta::deletion_timestamp(current).is_none();
    let metadata = meta::metadata_mut(&mut next);
    metadata.insert("finalizers".into(), Value::Array(finalizers));
    if first {
        metadata.insert(
            "deletionTimestamp".into(),
            json!(flotilla_api::now_rfc3339()),
        );
        metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
        // Pods keep their generation: their node agent, not a controller, acts on deletion.
        if r.kind != "Pod"
            && let Some(generation) = metadata.get("generation").and_then(Value::as_i64)
        {
            metadata.insert("generation".into(), json!(generation + 1));
        }
    }
    if same_content(&next, current) {
        Mutation::Unchanged
    } else {
        Mutation::Put(next)
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn check_preconditions(
    r: &ResourceType,
    current: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiStatus> {
    let name = meta::name(current).unwrap_or_default();
    if let Some(uid) = &options.precondition_uid
        && Some(uid.as_str()) != meta::uid(current)
    {
        return Err(ApiStatus::conflict(
            r.group,
            r.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(current).unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &options.precondition_resource_version
        && Some(rv.as_str()) != meta::resource_version(current)
    {
        return Err(ApiStatus::conflict(
            r.group,
            r.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::resource_version(current).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Deletes a namespace and everything in it. The namespaces a cluster needs stay.
async fn delete_namespace(
    state: &ApiState,
    request: &ResourceRequest,
    options: DeleteOptions,
) -> Result<Value> {
    let name = request.name.clone().unwrap_or_default();
    if crate::SYSTEM_NAMESPACES.contains(&name.as_str()) {
        return Err(ApiError(ApiStatus::forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        ))));
    }
    let key = request.key();
    let current = state
        .store()
        .get(&key)
        .await?
        .ok_or_else(|| ApiError(not_found(request)))?;
    check_preconditions(request.resource, &current, &options)?;
    if options.dry_run {
        return Ok(current);
    }
    // Close the namespace first so nothing new lands in it while its contents go.
    state
        .store()
        .mutate(&key, |current| {
            let mut next = current.cloned().unwrap_or(Value::Null);
            if meta::deletion_timestamp(&next).is_some() {
                return Ok(Mutation::Unchanged);
            }
            meta::set_meta(&mut next, "deletionTimestamp", flotilla_api::now_rfc3339());
            next["status"] = json!({"phase": "Terminating"});
            Ok(Mutation::Put(next))
        })
        .await?;
    for r in resource::RESOURCES.iter().filter(|r| r.namespaced) {
        let (objects, _) = state.store().list(&r.namespace_prefix(&name)).await?;
        for object in objects {
            let key = r.key(&name, meta::name(&object).unwrap_or_default());
            state
                .store()
                .mutate(&key, |current| {
                    Ok(if current.is_some() {
                        Mutation::Delete
                    } else {
                        Mutation::Unchanged
                    })
                })
                .await?;
        }
    }
    let written = state.store().mutate(&key, |_| Ok(Mutation::Delete)).await?;
    Ok(object_of(written))
}

/// Binds a pod to a node (`POST pods/{name}/binding`), as the scheduler does.
pub async fn bind(state: &ApiState, request: &ResourceRequest, binding: Value) -> Result<Value> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError(ApiStatus::invalid(
                "Binding",
                request.name.as_deref().unwrap_or_default(),
                vec![flotilla_api::Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ))
        })?
        .to_string();
    let r = request.resource;
    let missing = not_found(request);
    state
        .store()
        .mutate(&request.key(), move |current| {
            let current = current.ok_or_else(|| reject(missing))?;
            let name = meta::name(current).unwrap_or_default();
            if let Some(existing) = meta::str_at(current, &["spec", "nodeName"]) {
                return Err(reject(ApiStatus::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                )));
            }
            if meta::deletion_timestamp(current).is_some() {
                return Err(reject(ApiStatus::conflict(
                    r.group,
                    r.plural,
                    name,
                    "the pod is being deleted",
                )));
            }
            let mut next = current.clone();
            next["spec"]["nodeName"] = json!(node);
            let conditions = next["status"]
                .as_object_mut()
                .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
            if let Some(Value::Array(conditions)) = conditions {
                conditions.retain(|c| c["type"] != "PodScheduled");
                conditions.push(json!({
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": flotilla_api::now_rfc3339(),
                }));
            }
            Ok(Mutation::Put(next))
        })
        .await?;
    Ok(flotilla_api::status::success())
}

/// Creates a namespace if it does not exist yet.
pub async fn ensure_namespace(state: &ApiState, name: &str) -> Result<()> {
    let namespaces = resource::lookup("", "v1", "namespaces").expect("served");
    let object = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": flotilla_api::now_rfc3339(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    match state
        .store()
        .create(&namespaces.key("", name), object)
        .await
    {
        Ok(_) | Err(flotilla_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
