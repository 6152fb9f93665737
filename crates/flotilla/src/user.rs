//! Everyday commands for people without kubectl. They read `--kubeconfig`, `$KUBECONFIG`, or
//! `flotilla-data/kubeconfig` in the current directory.

use crate::objects;
use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, LogParams, PostParams};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Connection {
    /// kubeconfig to use (default: $KUBECONFIG, then ./flotilla-data/kubeconfig, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Namespace (default: the kubeconfig's, else "default").
    #[arg(short, long, global = true)]
    namespace: Option<String>,
}

impl Connection {
    pub(crate) async fn client(&self) -> Result<kube::Client> {
        flotilla_client::connect(self.kubeconfig.as_deref()).await
    }

    pub(crate) async fn config(&self) -> Result<kube::Config> {
        flotilla_client::config(self.kubeconfig.as_deref()).await
    }

    pub(crate) fn namespace(&self, client: &kube::Client) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string())
    }
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Manifest file, or - for standard input.
    #[arg(short, long)]
    filename: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

/// Creates each object, or replaces it when it exists, printing what happened to each.
pub async fn apply(args: ApplyArgs) -> Result<()> {
    let documents = objects::read_manifest(&args.filename)?;
    if documents.is_empty() {
        bail!("{} holds no objects", args.filename.display());
    }
    let client = args.connection.client().await?;
    let default_namespace = args.connection.namespace(&client);
    for document in documents {
        let r = objects::resource_of(&document)?;
        let mut object: DynamicObject =
            serde_json::from_value(document).context("reading an object's metadata")?;
        let name = object
            .metadata
            .name
            .clone()
            .context("every object in a manifest needs metadata.name")?;
        let namespace = object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.clone());
        let api = objects::api(&client, r, Some(&namespace));
        let label = format!("{}/{name}", r.singular);
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {label}"))?;
                println!("{label} created");
            }
            Some(existing) => {
                object.metadata.resource_version = existing.metadata.resource_version.clone();
                let replaced = api
                    .replace(&name, &PostParams::default(), &object)
                    .await
                    .with_context(|| format!("updating {label}"))?;
                let verb =
                    if replaced.metadata.resource_version == existing.metadata.resource_version {
                        "unchanged"
                    } else {
                        "configured"
                    };
                println!("{label} {verb}");
            }
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// Resource type: pods, nodes, namespaces, configmaps, events (or their short names).
    resource: String,
    /// One object's name.
    name: Option<String>,
    /// Output format: wide, yaml or json (default: a table).
    #[arg(short, long)]
    output: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn get(args: GetArgs) -> Result<()> {
    let r = objects::resource_named(&args.resource)?;
    let client = args.connection.client().await?;
    let namespace = (!args.all_namespaces).then(|| args.connection.namespace(&client));
    match args.output.as_deref() {
        Some(format @ ("yaml" | "json")) => {
            let api = objects::api(&client, r, namespace.as_deref());
            let value = match &args.name {
                Some(name) => serde_json::to_value(api.get(name).await?)?,
                None => {
                    let list = api.list(&Default::default()).await?;
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": list.items})
                }
            };
            if format == "yaml" {
                print!("{}", serde_yaml::to_string(&value)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&value)?);
            }
            Ok(())
        }
        None | Some("wide") => {
            print_table(
                &client,
                r,
                namespace.as_deref(),
                args.name.as_deref(),
                args.output.is_some(),
            )
            .await
        }
        Some(other) => bail!("unknown output format {other:?}: use wide, yaml or json"),
    }
}

/// Prints the server's table for a resource, as `kubectl get` does.
async fn print_table(
    client: &kube::Client,
    r: &flotilla_api::resource::ResourceType,
    namespace: Option<&str>,
    name: Option<&str>,
    wide: bool,
) -> Result<()> {
    let base = if r.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scope = match (r.namespaced, namespace) {
        (true, Some(ns)) => format!("/namespaces/{ns}"),
        _ => String::new(),
    };
    let path = match name {
        Some(name) => format!("{base}{scope}/{}/{name}", r.plural),
        None => format!("{base}{scope}/{}", r.plural),
    };
    let request = http::Request::get(path)
        .header(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .body(Vec::new())?;
    let table: serde_json::Value = client.request(request).await?;
    let columns: Vec<(usize, String)> = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_u64().unwrap_or(0) == 0)
        .map(|(i, c)| (i, c["name"].as_str().unwrap_or_default().to_uppercase()))
        .collect();
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        match namespace.filter(|_| r.namespaced) {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
        return Ok(());
    }
    let mut lines: Vec<Vec<String>> = vec![columns.iter().map(|(_, n)| n.clone()).collect()];
    for row in &rows {
        lines.push(
            columns
                .iter()
                .map(|(i, _)| match &row["cells"][*i] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct LogsArgs {
    pod: String,
    /// Container name (needed when the pod has several).
    #[arg(short, long)]
    container: Option<String>,
    /// Keep printing new output until the container ends.
    #[arg(short, long)]
    follow: bool,
    /// The previous run of a restarted container.
    #[arg(short, long)]
    previous: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn logs(args: LogsArgs) -> Result<()> {
    let client = args.connection.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.connection.namespace(&client));
    let params = LogParams {
        container: args.container.clone(),
        follow: args.follow,
        previous: args.previous,
        ..Default::default()
    };
    let mut lines = pods.log_stream(&args.pod, &params).await?.lines();
    while let Some(line) = lines.next().await {
        println!("{}", line.context("reading the log stream")?);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    resource: String,
    name: String,
    /// Return at once instead of waiting until the object is gone.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let r = objects::resource_named(&args.resource)?;
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let api = objects::api(&client, r, Some(&namespace));
    let deleted = api.delete(&args.name, &DeleteParams::background()).await?;
    let uid = deleted.either(|o| o.metadata.uid, |_| None);
    println!("{} \"{}\" deleted", r.singular, args.name);
    if !args.no_wait
        && let Some(uid) = uid
    {
        let gone = kube::runtime::wait::await_condition(
            api,
            &args.name,
            kube::runtime::conditions::is_deleted(&uid),
        );
        tokio::time::timeout(std::time::Duration::from_secs(60), gone)
            .await
            .context("the object was not gone after 60 s (is its node agent running?)")??;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// `deployment/NAME`, `replicaset/NAME` or `replicationcontroller/NAME` (short names work).
    target: String,
    /// The new replica count.
    #[arg(long)]
    replicas: u32,
    #[command(flatten)]
    connection: Connection,
}

/// Sets `spec.replicas` through the `scale` subresource, as `kubectl scale` does.
pub async fn scale(args: ScaleArgs) -> Result<()> {
    let (kind, name) = args
        .target
        .split_once('/')
        .context("name what to scale as KIND/NAME, e.g. deployment/web")?;
    let r = objects::resource_named(kind)?;
    anyhow::ensure!(
        r.subresources.contains(&"scale"),
        "{} cannot be scaled; scale a deployment, replicaset or replicationcontroller",
        r.plural
    );
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let api = objects::api(&client, r, Some(&namespace));
    let patch = serde_json::json!({"spec": {"replicas": args.replicas}});
    api.patch_scale(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("scaling {} {name}", r.singular))?;
    println!("{}/{name} scaled", r.singular);
    Ok(())
}
