//! `flotilla function deploy|list|logs|invoke`: Functions without writing YAML.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use flotilla_api::function::{FUNCTION_LABEL, Function};
use futures::{AsyncBufReadExt, StreamExt};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

use crate::user::Connection;

#[derive(clap::Args)]
pub struct FunctionArgs {
    #[command(subcommand)]
    command: FunctionCommand,
}

#[derive(clap::Subcommand)]
enum FunctionCommand {
    /// Create a Function, or update one, and print its URL once it is routable.
    Deploy(DeployArgs),
    /// List Functions with their URLs and instances.
    List(ListArgs),
    /// Print what a Function's instances wrote to stdout and stderr.
    Logs(LogsArgs),
    /// Send a request to a Function and print its answer.
    Invoke(InvokeArgs),
}

#[derive(clap::Args)]
struct DeployArgs {
    /// The Function's name, part of its URL.
    name: String,
    /// The HTTP component to run: a pushed module NAME:TAG, file:///path.wasm, an http(s)
    /// URL or an OCI reference.
    #[arg(long)]
    image: String,
    /// Instances kept when idle (0 scales to zero).
    #[arg(long)]
    min_scale: Option<i32>,
    /// The most instances.
    #[arg(long)]
    max_scale: Option<i32>,
    /// In-flight requests per instance before scaling out.
    #[arg(long)]
    concurrency: Option<i32>,
    /// Seconds one request may take before it gets 504.
    #[arg(long)]
    timeout: Option<i32>,
    /// An environment variable for the component, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
struct LogsArgs {
    name: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
struct InvokeArgs {
    name: String,
    /// The path (and query) the handler sees, e.g. /greet?name=you.
    #[arg(long, default_value = "/")]
    path: String,
    /// A request body; the method defaults to POST with one, GET without.
    #[arg(short, long)]
    data: Option<String>,
    /// The request method.
    #[arg(short = 'X', long)]
    method: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: FunctionArgs) -> Result<()> {
    match args.command {
        FunctionCommand::Deploy(args) => deploy(args).await,
        FunctionCommand::List(args) => list(args).await,
        FunctionCommand::Logs(args) => logs(args).await,
        FunctionCommand::Invoke(args) => invoke(args).await,
    }
}

async fn deploy(args: DeployArgs) -> Result<()> {
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let functions: Api<Function> = Api::namespaced(client, &namespace);
    let env: Vec<serde_json::Value> = args
        .env
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => Ok(json!({"name": name, "value": value})),
            None => bail!("--env takes NAME=VALUE, got {pair:?}"),
        })
        .collect::<Result<_>>()?;
    let mut spec = json!({"image": args.image});
    let numbers = [
        ("minScale", args.min_scale),
        ("maxScale", args.max_scale),
        ("concurrency", args.concurrency),
        ("timeoutSeconds", args.timeout),
    ];
    for (field, value) in numbers {
        if let Some(value) = value {
            spec[field] = json!(value);
        }
    }
    if !env.is_empty() {
        spec["env"] = json!(env);
    }
    let object = json!({
        "apiVersion": "flotilla.dev/v1",
        "kind": "Function",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": spec,
    });
    let generation = match functions
        .create(
            &PostParams::default(),
            &serde_json::from_value(object.clone())?,
        )
        .await
    {
        Ok(created) => {
            println!("function/{} created", args.name);
            created.metadata.generation
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let patched = functions
                .patch(
                    &args.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": object["spec"]})),
                )
                .await
                .with_context(|| format!("updating Function {}", args.name))?;
            println!("function/{} configured", args.name);
            patched.metadata.generation
        }
        Err(error) => return Err(error).context(format!("creating Function {}", args.name)),
    };
    // The gateway writes the URL once it has seen this generation.
    for _ in 0..100 {
        let function = functions.get(&args.name).await?;
        let status = function.status.unwrap_or_default();
        if let Some(url) = status.url
            && status.observed_generation >= generation
        {
            println!("{url}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "Function {} has no URL after 10 s: is the gateway running (flotilla up serves one)?",
        args.name
    )
}

async fn list(args: ListArgs) -> Result<()> {
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let functions: Api<Function> = Api::namespaced(client, &namespace);
    let list = functions.list(&ListParams::default()).await?;
    if list.items.is_empty() {
        println!("No Functions in namespace {namespace}.");
        return Ok(());
    }
    let rows: Vec<[String; 4]> = list
        .items
        .iter()
        .map(|f| {
            let status = f.status.clone().unwrap_or_default();
            [
                f.name_any(),
                status.url.unwrap_or_else(|| "<pending>".into()),
                format!(
                    "{}/{}",
                    status.ready_instances.unwrap_or(0),
                    status.instances.unwrap_or(0)
                ),
                status.desired_instances.unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "URL", "READY", "DESIRED"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [&header].into_iter().chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

async fn logs(args: LogsArgs) -> Result<()> {
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let selector = format!("{FUNCTION_LABEL}={}", args.name);
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    if list.items.is_empty() {
        println!(
            "Function {} has no instances now (scaled to zero?); invoke it to start one.",
            args.name
        );
        return Ok(());
    }
    for pod in list.items {
        let name = pod.name_any();
        let mut lines = pods.log_stream(&name, &LogParams::default()).await?.lines();
        while let Some(line) = lines.next().await {
            println!("[{name}] {}", line.context("reading the log stream")?);
        }
    }
    Ok(())
}

async fn invoke(args: InvokeArgs) -> Result<()> {
    let client = args.connection.client().await?;
    let namespace = args.connection.namespace(&client);
    let functions: Api<Function> = Api::namespaced(client, &namespace);
    let function = functions
        .get(&args.name)
        .await
        .with_context(|| format!("reading Function {}", args.name))?;
    let Some(url) = function.status.and_then(|s| s.url) else {
        bail!(
            "Function {} has no URL yet: is the gateway running?",
            args.name
        );
    };
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let method = args
        .method
        .clone()
        .unwrap_or_else(|| if args.data.is_some() { "POST" } else { "GET" }.into());
    let request = http::Request::builder()
        .method(method.as_str())
        .uri(format!("{url}{path}"))
        .body(Full::new(Bytes::from(args.data.unwrap_or_default())))
        .context("building the request")?;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = http
        .request(request)
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        bail!("{url}{path} answered {status}");
    }
    Ok(())
}
