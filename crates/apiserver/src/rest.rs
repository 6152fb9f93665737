//! Routes every `/api/...` and `/apis/...` request to the verb it means.

use crate::body;
use crate::error::{ApiError, Result};
use crate::field_validation::FieldValidation;
use crate::objects::{self, DeleteOptions, Part, WriteOptions};
use crate::patching::{self, PatchType};
use crate::path::{self, ResourceRequest, Target};
use crate::propagation::{self, Propagation};
use crate::{ApiState, discovery, logs, scale, table, watch};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use flotilla_api::ApiStatus;
use flotilla_api::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Query parameters, by name.
pub type Query = HashMap<String, String>;

pub async fn dispatch(State(state): State<ApiState>, request: Request) -> Response {
    match handle(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: ApiState, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let query: Query = axum::extract::Query::<Query>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|e| {
            ApiError(ApiStatus::bad_request(format!(
                "malformed query string: {e}"
            )))
        })?;
    let target = path::parse(parts.uri.path())?;
    let request = match target {
        Target::GroupVersion { group, version } => {
            if flotilla_api::resource::groups().contains(&(group.as_str(), version.as_str())) {
                return Ok(axum::Json(discovery::resource_list(&group, &version)).into_response());
            }
            return Err(ApiError(ApiStatus::no_route(parts.uri.path())));
        }
        Target::Resource(request) => request,
    };
    let headers = &parts.headers;
    let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
    let write = write_options(&query, headers)?;
    let validation = FieldValidation::from_query(&query)?;
    let sub = request.subresource.as_deref();
    match (&parts.method, request.name.is_some(), sub) {
        (&Method::GET, false, None) if flag("watch") => {
            watch::serve(&state, &request, &query, headers).await
        }
        (&Method::GET, false, None) => list(&state, &request, &query, headers).await,
        (&Method::POST, false, None) => {
            let object = decode(headers, body).await?;
            let warnings = validation.check(request.resource, &object)?;
            let created = objects::create(&state, &request, object, &write).await?;
            Ok(warnings.attach(body::respond(headers, StatusCode::CREATED, &created)))
        }
        (&Method::DELETE, false, None) => {
            let options = delete_options(&query, body).await?;
            delete_collection(&state, &request, &query, headers, options).await
        }
        (&Method::GET, true, Some("log")) => logs::serve(&state, &request, &query).await,
        (&Method::POST, true, Some("binding")) => {
            let binding = decode(headers, body).await?;
            let status = objects::bind(&state, &request, binding).await?;
            Ok(body::respond(headers, StatusCode::CREATED, &status))
        }
        (&Method::GET, true, Some("scale")) => {
            let scale = scale::get(&state, &request).await?;
            Ok(body::respond(headers, StatusCode::OK, &scale))
        }
        (&Method::PUT, true, Some("scale")) => {
            let desired = decode(headers, body).await?;
            let scale = scale::replace(&state, &request, desired, &write).await?;
            Ok(body::respond(headers, StatusCode::OK, &scale))
        }
        (&Method::PATCH, true, Some("scale")) => {
            let (patch_type, patch) = decode_patch(headers, body).await?;
            let scale = scale::patch(&state, &request, patch_type, patch, &write).await?;
            Ok(body::respond(headers, StatusCode::OK, &scale))
        }
        (&Method::GET, true, None | Some("status")) => {
            let object = get(&state, &request).await?;
            Ok(render_one(&request, &query, headers, object))
        }
        (&Method::PUT, true, None | Some("status")) => {
            let desired = decode(headers, body).await?;
            let warnings = validation.check(request.resource, &desired)?;
            let written = objects::replace(&state, &request, part(sub), desired, &write).await?;
            Ok(warnings.attach(body::respond(headers, StatusCode::OK, &written)))
        }
        (&Method::PATCH, true, None) if body::content_type(headers).contains("apply-patch") => {
            let (_, applied) = decode_patch(headers, body).await?;
            let warnings = validation.check(request.resource, &applied)?;
            let existed = state.store().get(&request.key()).await?.is_some();
            let written = objects::apply(&state, &request, applied, &write).await?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(warnings.attach(body::respond(headers, code, &written)))
        }
        (&Method::PATCH, true, None | Some("status")) => {
            let (patch_type, patch) = decode_patch(headers, body).await?;
            if patch_type == PatchType::Apply {
                return Err(ApiError(ApiStatus::unsupported_media_type(
                    "server-side apply to the status subresource is not supported; use a merge patch",
                )));
            }
            let warnings = match patch_type {
                PatchType::Json => crate::field_validation::Warnings::default(),
                _ => validation.check(request.resource, &patch)?,
            };
            let written =
                objects::patch(&state, &request, part(sub), patch_type, patch, &write).await?;
            Ok(warnings.attach(body::respond(headers, StatusCode::OK, &written)))
        }
        (&Method::DELETE, true, None) => {
            let options = delete_options(&query, body).await?;
            let warning = default_propagation_warning(&request, &options);
            let deleted = objects::delete(&state, &request, options).await?;
            let mut response = body::respond(headers, StatusCode::OK, &deleted);
            if let Some(warning) = warning {
                response.headers_mut().insert("warning", warning);
            }
            Ok(response)
        }
        (method, _, _) => Err(ApiError(ApiStatus::method_not_allowed(format!(
            "{method} is not supported on {}",
            parts.uri.path()
        )))),
    }
}

fn part(subresource: Option<&str>) -> Part {
    if subresource == Some("status") {
        Part::Status
    } else {
        Part::Main
    }
}

/// The patch format named by the Content-Type, and the decoded patch.
async fn decode_patch(headers: &HeaderMap, body: axum::body::Body) -> Result<(PatchType, Value)> {
    let patch_type = PatchType::from_media_type(&body::content_type(headers))?;
    let bytes = body::read(body).await?;
    let patch = patching::decode(patch_type, &bytes)?;
    Ok((patch_type, patch))
}

/// `dryRun`, `fieldManager` (or the client's name from its User-Agent) and `force`.
fn write_options(query: &Query, headers: &HeaderMap) -> Result<WriteOptions> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError(ApiStatus::bad_request(format!(
                "dryRun must be All, not {other:?}"
            ))));
        }
    };
    let named = query.get("fieldManager").filter(|m| !m.is_empty());
    if let Some(manager) = named
        && (manager.len() > 128 || manager.chars().any(|c| c.is_control()))
    {
        return Err(ApiError(ApiStatus::bad_request(
            "fieldManager must be at most 128 printable characters",
        )));
    }
    let from_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|agent| agent.split('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown");
    Ok(WriteOptions {
        dry_run,
        manager: named.map_or(from_agent, String::as_str).to_string(),
        manager_named: named.is_some(),
        force: query.get("force").is_some_and(|v| v == "true" || v == "1"),
    })
}

async fn decode(headers: &HeaderMap, body: axum::body::Body) -> Result<Value> {
    let bytes = body::read(body).await?;
    body::decode_object(&bytes, &body::content_type(headers))
}

async fn get(state: &ApiState, request: &ResourceRequest) -> Result<Value> {
    let r = request.resource;
    let name = request.name.as_deref().unwrap_or_default();
    state
        .store()
        .get(&request.key())
        .await?
        .ok_or_else(|| ApiError(ApiStatus::not_found(r.group, r.plural, name)))
}

/// The label and field selectors of a list, watch or collection delete.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn from_query(query: &Query) -> Result<Self> {
        let parse_error = |e: String| {
            ApiError(ApiStatus::bad_request(format!(
                "unable to parse requirement: {e}"
            )))
        };
        Ok(Selectors {
            labels: LabelSelector::parse(query.get("labelSelector").map_or("", |s| s))
                .map_err(parse_error)?,
            fields: FieldSelector::parse(query.get("fieldSelector").map_or("", |s| s))
                .map_err(parse_error)?,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

async fn list(
    state: &ApiState,
    request: &ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response> {
    let selectors = Selectors::from_query(query)?;
    let (objects, revision) = match exact_revision(query)? {
        Some(revision) => state.store().list_at(&request.prefix(), revision).await?,
        // Any other resourceVersion asks for data at least that new: the latest always is.
        None => state.store().list(&request.prefix()).await?,
    };
    let items: Vec<Value> = objects
        .into_iter()
        .filter(|o| selectors.matches(o))
        .collect();
    if table::wanted(headers) {
        let rendered = table::render(request.resource, &items, revision, query);
        return Ok(table::respond(rendered));
    }
    let r = request.resource;
    // Kubernetes leaves `continue` empty when it returns everything, which flotilla always
    // does: a server may ignore `limit`, and every client then reads a single page.
    let list = json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    });
    Ok(body::respond(headers, StatusCode::OK, &list))
}

/// The revision of a `resourceVersionMatch=Exact` list.
fn exact_revision(query: &Query) -> Result<Option<u64>> {
    if query.get("resourceVersionMatch").map(String::as_str) != Some("Exact") {
        return Ok(None);
    }
    let rv = query.get("resourceVersion").map_or("", String::as_str);
    flotilla_api::meta::parse_revision(rv).map(Some).ok_or_else(|| {
        ApiError(ApiStatus::bad_request(format!(
            "resourceVersionMatch=Exact needs resourceVersion to be a revision number, not {rv:?}"
        )))
    })
}

fn render_one(
    request: &ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
    object: Value,
) -> Response {
    if table::wanted(headers) && request.subresource.is_none() {
        let revision = flotilla_api::meta::resource_version(&object)
            .and_then(flotilla_api::meta::parse_revision)
            .unwrap_or(0);
        return table::respond(table::render(request.resource, &[object], revision, query));
    }
    body::respond(headers, StatusCode::OK, &object)
}

async fn delete_options(query: &Query, body: axum::body::Body) -> Result<DeleteOptions> {
    let bytes = body::read(body).await?;
    let from_body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        body::decode_object(&bytes, "application/json")?
    };
    let grace = query
        .get("gracePeriodSeconds")
        .map(|g| {
            g.parse::<i64>().map_err(|_| {
                ApiError(ApiStatus::bad_request(format!(
                    "gracePeriodSeconds must be a number, not {g:?}"
                )))
            })
        })
        .transpose()?
        .or_else(|| from_body["gracePeriodSeconds"].as_i64());
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || from_body["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| from_body["propagationPolicy"].as_str())
        .map(Propagation::parse)
        .transpose()?;
    let orphan_dependents = match query.get("orphanDependents") {
        Some(flag) => Some(flag.parse::<bool>().map_err(|_| {
            ApiError(ApiStatus::bad_request(format!(
                "orphanDependents must be true or false, not {flag:?}"
            )))
        })?),
        None => from_body["orphanDependents"].as_bool(),
    };
    if policy.is_some() && orphan_dependents.is_some() {
        return Err(ApiError(ApiStatus::invalid(
            "DeleteOptions",
            "",
            vec![flotilla_api::Cause {
                reason: "FieldValueInvalid",
                message: "Invalid value: \"orphanDependents\": PropagationPolicy and OrphanDependents cannot be both set".into(),
                field: "orphanDependents".into(),
            }],
        )));
    }
    Ok(DeleteOptions {
        propagation: propagation::Requested {
            policy,
            orphan_dependents,
        },
        grace_period_seconds: grace,
        precondition_uid: from_body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(Into::into),
        precondition_resource_version: from_body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(Into::into),
        dry_run,
    })
}

/// The warning Kubernetes gives when a delete leaves a Job's pods behind only because the
/// client named no policy (batch/v1 orphans by default; kubectl always names one).
fn default_propagation_warning(
    request: &ResourceRequest,
    options: &DeleteOptions,
) -> Option<HeaderValue> {
    let asked = options.propagation;
    let orphans_by_default = Propagation::default_for(request.resource) == Propagation::Orphan;
    (request.resource.kind == "Job"
        && orphans_by_default
        && asked.policy.is_none()
        && asked.orphan_dependents.is_none())
    .then(|| {
        HeaderValue::from_static(
            "299 - \"child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning\"",
        )
    })
}

async fn delete_collection(
    state: &ApiState,
    request: &ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
    options: DeleteOptions,
) -> Result<Response> {
    let selectors = Selectors::from_query(query)?;
    let (objects, _) = state.store().list(&request.prefix()).await?;
    let mut deleted = Vec::new();
    for object in objects.iter().filter(|o| selectors.matches(o)) {
        let one = ResourceRequest {
            namespace: flotilla_api::meta::namespace(object).map(str::to_string),
            name: flotilla_api::meta::name(object).map(str::to_string),
            ..request.clone()
        };
        let options = DeleteOptions {
            // Preconditions name one object; they cannot hold for every member of a collection.
            precondition_uid: None,
            precondition_resource_version: None,
            ..options.clone()
        };
        match objects::delete(state, &one, options).await {
            Ok(object) => deleted.push(object),
            Err(ApiError(status)) if status.code == 404 => {}
            Err(other) => return Err(other),
        }
    }
    let r = request.resource;
    let list = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": {}, "items": deleted});
    Ok(body::respond(headers, StatusCode::OK, &list))
}
