//! `flotilla`: the one binary — a whole cluster (`up`), a node agent that joins one (`node`),
//! and everyday commands for people without kubectl (`apply`, `get`, `logs`, `delete`,
//! `push`).

mod controller_manager;
mod function;
mod objects;
mod push;
mod up;
mod user;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Kubernetes, rebuilt for WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster in this process: apiserver, store, scheduler and node agents.
    Up(up::UpArgs),
    /// Run one node agent that joins the cluster a kubeconfig names.
    Node(NodeArgs),
    /// Create or update the objects in a YAML or JSON file (`-` for standard input).
    Apply(user::ApplyArgs),
    /// List objects, or show one.
    Get(user::GetArgs),
    /// Print what a pod's container wrote to stdout and stderr.
    Logs(user::LogsArgs),
    /// Delete an object.
    Delete(user::DeleteArgs),
    /// Set the replica count of a Deployment, ReplicaSet or ReplicationController.
    Scale(user::ScaleArgs),
    /// Upload a Wasm module to the cluster as NAME:TAG, for pods to run by that name.
    Push(push::PushArgs),
    /// Deploy, list, invoke and read the logs of serverless Functions.
    Function(function::FunctionArgs),
    /// Run the controllers and the scheduler against a cluster (with `flotilla up --no-controllers`).
    ControllerManager(controller_manager::ControllerManagerArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// kubeconfig of the cluster to join (as written by `flotilla up`).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long)]
    name: String,
    /// Where this node keeps container logs. Default: ./flotilla-node-NAME
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Directory where bare image names are found as NAME.wasm (repeatable).
    #[arg(long = "modules")]
    module_dirs: Vec<PathBuf>,
    /// Address of the node's log endpoint (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// How often the node renews its Lease in kube-node-lease (e.g. 10s, 500ms); keep it well
    /// under the cluster's --node-grace-period.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    lease_renew_interval: std::time::Duration,
    /// Directory of Pod manifests (*.yaml, *.yml, *.json) this node runs by itself, even
    /// without an apiserver, as the kubelet's static pods; they show in the API as mirror pods.
    #[arg(long, value_name = "DIR")]
    pod_manifest_path: Option<PathBuf>,
    /// The cluster's gateway (HOST:PORT), which pods' requests to Services
    /// (http://NAME.NAMESPACE.svc/) are sent to; without it they are refused.
    #[arg(long, value_name = "HOST:PORT")]
    gateway: Option<String>,
    #[command(flatten)]
    limits: up::NodeLimitsArgs,
    #[command(flatten)]
    images: up::NodeImageArgs,
    #[command(flatten)]
    resources: up::NodeResourcesArgs,
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Raises the soft limit on open files to the hard limit, as Go programs (the kubelet
/// among them) do at start: each running container holds its log file open, and the usual
/// soft limit of 1,024 would stop a node near a thousand pods.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 16_384 => tracing::warn!(
            limit,
            "the open-file limit is low for a node agent (one file per running container); raise the hard limit (ulimit -Hn) for more pods"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => {
            init_logging("info");
            raise_open_file_limit();
            up::run(args).await
        }
        Command::Node(args) => {
            init_logging("info");
            raise_open_file_limit();
            run_node(args).await
        }
        Command::Apply(args) => {
            init_logging("warn");
            user::apply(args).await
        }
        Command::Get(args) => {
            init_logging("warn");
            user::get(args).await
        }
        Command::Logs(args) => {
            init_logging("warn");
            user::logs(args).await
        }
        Command::Delete(args) => {
            init_logging("warn");
            user::delete(args).await
        }
        Command::Scale(args) => {
            init_logging("warn");
            user::scale(args).await
        }
        Command::Push(args) => {
            init_logging("warn");
            push::push(args).await
        }
        Command::Function(args) => {
            init_logging("warn");
            function::run(args).await
        }
        Command::ControllerManager(args) => {
            init_logging("info");
            controller_manager::run(args).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let client = flotilla_client::connect(Some(&args.kubeconfig)).await?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from(format!("flotilla-node-{}", args.name)));
    let mut config = flotilla_node::NodeConfig::new(args.name, data_dir);
    config.module_dirs = up::module_dirs(args.module_dirs);
    config.listen = args.listen;
    config.lease_renew_interval = args.lease_renew_interval;
    config.limits = args.limits.limits();
    config.insecure_registries = args.images.insecure_registries();
    config.image_cas = args.images.image_cas();
    config.resources = args.resources.resources();
    config.restart_backoff = args.resources.backoff();
    config.pod_manifest_path = args.pod_manifest_path;
    config.gateway = args.gateway;
    flotilla_node::NodeAgent::new(client, config)
        .run(up::shutdown_signal())
        .await
}
