//! `flotilla up`: a whole cluster in one process.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the store, the kubeconfig and node state live.
    #[arg(long, default_value = "flotilla-data")]
    data_dir: PathBuf,
    /// Address of the API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Address of the gateway, which serves Services, Ingresses and Functions over HTTP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway: SocketAddr,
    #[command(flatten)]
    gateway_options: GatewayArgs,
    /// How many node agents to run in this process (0 is allowed: join nodes with `flotilla node`).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Directory where bare image names are found as NAME.wasm (repeatable).
    /// Default: wasm-samples/modules, if it exists here.
    #[arg(long = "modules")]
    module_dirs: Vec<PathBuf>,
    /// How many recent revisions the store keeps for watch replay. A watch (or a list at an
    /// exact resourceVersion) from further back gets 410 Gone and the client lists again.
    #[arg(long, value_name = "REVISIONS", default_value_t = flotilla_store::StoreConfig::default().history_window,
        value_parser = clap::value_parser!(u64).range(1..))]
    watch_history: u64,
    #[command(flatten)]
    limits: NodeLimitsArgs,
    #[command(flatten)]
    images: NodeImageArgs,
    #[command(flatten)]
    resources: NodeResourcesArgs,
    #[command(flatten)]
    lifecycle: crate::controller_manager::NodeLifecycleArgs,
    #[command(flatten)]
    election: crate::controller_manager::ElectionArgs,
    /// Run no controllers or scheduler in this process: run `flotilla controller-manager`
    /// against this cluster instead (exactly one of them, or they would act twice).
    #[arg(long)]
    no_controllers: bool,
}

/// How the gateway serves and scales.
#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The largest request body the gateway takes; larger ones get 413.
    #[arg(long, value_name = "QUANTITY", default_value = "10Mi", value_parser = parse_bytes)]
    max_request_body: u64,
    /// How long a Function keeps an instance after its last request (and more instances
    /// after its load drops) before scaling down; 0 instances when its minScale is 0.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    scale_down_delay: Duration,
    /// The longest a request waits for a Function instance to start (cold start).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    cold_start_timeout: Duration,
    /// Make the first requests of a Function scaled to zero wait for its pod to start,
    /// instead of answering them at once with stand-in instances on this process's node.
    #[arg(long)]
    no_stand_ins: bool,
}

impl GatewayArgs {
    pub fn config(&self, public_url: String) -> flotilla_gateway::GatewayConfig {
        let mut config = flotilla_gateway::GatewayConfig::new(public_url);
        config.max_body_bytes = usize::try_from(self.max_request_body).unwrap_or(usize::MAX);
        config.scale_down_delay = self.scale_down_delay;
        config.cold_start_timeout = self.cold_start_timeout;
        config.stand_ins = !self.no_stand_ins;
        config
    }
}

/// Node-wide caps on what any one pod may take: shared by `up` and `node`.
#[derive(clap::Args)]
pub struct NodeLimitsArgs {
    /// The most memory one pod instance may use, whatever its spec says; a pod's own
    /// resources.limits.memory applies when lower (Kubernetes quantity: 512Mi, 1Gi, 2G).
    #[arg(long, value_name = "QUANTITY", default_value = "1Gi", value_parser = parse_bytes)]
    max_pod_memory: u64,
    /// The largest module file a node reads and compiles (a larger image fails to pull), and
    /// the largest module `flotilla push` may upload (413 past it).
    #[arg(long, value_name = "QUANTITY", default_value = "256Mi", value_parser = parse_bytes)]
    max_module_size: u64,
    /// How much one container run may write to its log; further output is dropped after a
    /// line saying the log was truncated.
    #[arg(long, value_name = "QUANTITY", default_value = "10Mi", value_parser = parse_bytes)]
    max_log_size: u64,
}

/// Where a node may pull images from: shared by `up` and `node`.
#[derive(clap::Args)]
pub struct NodeImageArgs {
    /// An OCI registry (HOST[:PORT]) to pull from over plain HTTP although it is not on
    /// loopback (repeatable); loopback registries need no flag.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// A PEM file of certificate authorities to trust for https:// images besides the usual
    /// public ones (repeatable), for servers with a private CA.
    #[arg(long = "image-ca", value_name = "FILE")]
    image_cas: Vec<std::path::PathBuf>,
}

impl NodeImageArgs {
    pub fn insecure_registries(&self) -> Vec<String> {
        self.insecure_registries.clone()
    }

    pub fn image_cas(&self) -> Vec<std::path::PathBuf> {
        self.image_cas.clone()
    }
}

impl NodeLimitsArgs {
    pub fn limits(&self) -> flotilla_node::runtime::Limits {
        flotilla_node::runtime::Limits {
            max_pod_memory: self.max_pod_memory,
            max_module_size: self.max_module_size,
            max_log_size: self.max_log_size,
        }
    }
}

/// What a node offers the scheduler, and how its containers restart: shared by `up` and `node`.
#[derive(clap::Args)]
pub struct NodeResourcesArgs {
    /// CPU the node offers, as a Kubernetes quantity (2, 1500m); default: the machine's cores.
    #[arg(long, value_name = "QUANTITY", value_parser = parse_cpu)]
    cpu: Option<String>,
    /// Memory the node offers (8Gi, 512Mi); default: the machine's memory.
    #[arg(long, value_name = "QUANTITY", value_parser = parse_memory)]
    memory: Option<String>,
    /// Most pods the node takes, as the kubelet's --max-pods.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_pods: u32,
    /// First delay before a failed container restarts (or a failed pull is retried); it
    /// doubles on each failure, as in Kubernetes (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    restart_backoff: std::time::Duration,
    /// The longest that delay grows to.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    max_restart_backoff: std::time::Duration,
}

impl NodeResourcesArgs {
    pub fn backoff(&self) -> flotilla_node::BackoffPolicy {
        flotilla_node::BackoffPolicy {
            initial: self.restart_backoff,
            max: self.max_restart_backoff.max(self.restart_backoff),
        }
    }

    pub fn resources(&self) -> flotilla_node::Resources {
        let machine = flotilla_node::Resources::of_machine();
        flotilla_node::Resources {
            cpu: self.cpu.clone().unwrap_or(machine.cpu),
            memory: self.memory.clone().unwrap_or(machine.memory),
            pods: self.max_pods,
        }
    }
}

/// A CPU quantity: whole or fractional cores (`2`, `0.5`) or millicores (`1500m`).
fn parse_cpu(quantity: &str) -> Result<String, String> {
    let number = quantity.strip_suffix('m').unwrap_or(quantity);
    match number.parse::<f64>() {
        Ok(value) if value > 0.0 && value.is_finite() => Ok(quantity.to_string()),
        _ => Err(format!(
            "{quantity:?} is not a positive CPU quantity such as 2, 0.5 or 1500m"
        )),
    }
}

fn parse_memory(quantity: &str) -> Result<String, String> {
    parse_bytes(quantity).map(|_| quantity.to_string())
}

fn parse_bytes(quantity: &str) -> Result<u64, String> {
    match flotilla_node::quantity::bytes(quantity) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(format!(
            "{quantity:?} is not a positive byte quantity such as 10Mi or 1Gi"
        )),
    }
}

/// The module directories a node searches: those given, else the built samples of a checkout.
pub fn module_dirs(given: Vec<PathBuf>) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given
            .into_iter()
            .map(|d| std::path::absolute(&d).unwrap_or(d))
            .collect();
    }
    let samples = PathBuf::from("wasm-samples/modules");
    if samples.is_dir() {
        vec![std::path::absolute(&samples).unwrap_or(samples)]
    } else {
        Vec::new()
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The cluster's bearer token: created once, then kept so restarts keep the same kubeconfig.
fn load_or_create_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let bytes: [u8; 24] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    // The token is a credential: readable by its owner only, like the kubeconfig.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(token)
}

pub async fn run(args: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let data_dir = std::path::absolute(&args.data_dir)?;
    let store_path = data_dir.join("store.redb");
    let config = flotilla_store::StoreConfig {
        history_window: args.watch_history,
        ..Default::default()
    };
    let store = flotilla_store::Store::open(&store_path, config)
        .await
        .with_context(|| {
            format!(
                "opening the store {} (is another flotilla using it?)",
                store_path.display()
            )
        })?;
    tracing::info!(path = %store_path.display(), revision = store.revision(), "store open");
    let token = load_or_create_token(&data_dir)?;
    // kubectl (client-go) sends bearer tokens only over TLS, and the API is served over plain
    // HTTP until TLS lands, so requests are not authenticated yet; the kubeconfig carries the
    // token already so it keeps working once they are. Listen on loopback only meanwhile.
    // Pushed modules' bytes live beside the store, capped as nodes cap what they run.
    let blobs = data_dir.join("blobs");
    let state = flotilla_apiserver::ApiState::new(store.clone(), None)
        .with_module_blobs(blobs.clone(), args.limits.limits().max_module_size)
        .with_context(|| format!("creating the module blob directory {}", blobs.display()))?;
    flotilla_apiserver::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("creating the system namespaces: {}", e.0))?;
    let router = flotilla_apiserver::router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the API server to {} (is another cluster running? pick another with --listen)", args.listen))?;
    let address = listener.local_addr()?;
    let kubeconfig = data_dir.join("kubeconfig");
    flotilla_client::kubeconfig::write(&kubeconfig, &format!("http://{address}"), &token)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let shutdown = until_stopped();
        let router = router.clone();
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .context("serving the API")
        }
    });
    let client = flotilla_client::in_process(router, Some(token.clone()));
    if !args.no_controllers {
        let config = args.lifecycle.manager_config();
        let election = args.election;
        let client = client.clone();
        let shutdown = until_stopped();
        // One `up` per data directory (the store is locked), so this identity is unique, and it
        // stays the same across restarts: a restarted `up` renews its own Lease at once rather
        // than waiting for the previous incarnation's to expire.
        let identity = format!(
            "{}_up_{}",
            crate::controller_manager::hostname(),
            data_dir.display()
        );
        tasks.spawn(async move {
            crate::controller_manager::run_elected(client, config, &election, identity, shutdown)
                .await
        });
    }
    let module_dirs = module_dirs(args.module_dirs);
    let gateway_listener = tokio::net::TcpListener::bind(args.gateway)
        .await
        .with_context(|| {
            format!(
                "binding the gateway to {} (is another cluster running? pick another with --gateway)",
                args.gateway
            )
        })?;
    let gateway_address = gateway_listener.local_addr()?;
    // Where the gateway answers, for scripts and tests that started it on port 0.
    let gateway_file = data_dir.join("gateway-url");
    std::fs::write(&gateway_file, format!("http://{gateway_address}\n"))
        .with_context(|| format!("writing {}", gateway_file.display()))?;
    let mut gateway_config = args
        .gateway_options
        .config(format!("http://{gateway_address}"));
    for index in 1..=args.nodes {
        let name = format!("node-{index}");
        let mut config = flotilla_node::NodeConfig::new(&name, data_dir.join("nodes").join(&name));
        config.module_dirs = module_dirs.clone();
        config.limits = args.limits.limits();
        config.insecure_registries = args.images.insecure_registries();
        config.image_cas = args.images.image_cas();
        config.resources = args.resources.resources();
        config.restart_backoff = args.resources.backoff();
        // Four renewals per grace period, as the kubelet's 10 s per 40 s.
        config.lease_renew_interval =
            (args.lifecycle.node_grace_period / 4).min(Duration::from_secs(10));
        // Pods reach Services through the gateway, which reaches these nodes' pods in process.
        config.gateway = Some(gateway_address.to_string());
        gateway_config
            .local_nodes
            .insert(name.clone(), config.http_pods.clone());
        let agent = flotilla_node::NodeAgent::new(client.clone(), config);
        let shutdown = until_stopped();
        tasks.spawn(async move { agent.run(shutdown).await });
    }
    tasks.spawn({
        let client = client.clone();
        let shutdown = until_stopped();
        async move {
            flotilla_gateway::run(client, gateway_config, gateway_listener, shutdown)
                .await
                .context("running the gateway")
        }
    });
    println!("flotilla is up");
    println!("  API server:  http://{address}");
    println!("  dashboard:   http://{address}/?token={token}");
    println!(
        "  gateway:     http://{gateway_address} (functions at /function/NAME, services at /service/NAME.NAMESPACE)"
    );
    println!("  kubeconfig:  {}", kubeconfig.display());
    println!("  nodes:       {} in this process", args.nodes);
    let dirs: Vec<String> = module_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    println!(
        "  modules:     {}",
        if dirs.is_empty() {
            "(none: use file:// images or --modules DIR)".into()
        } else {
            dirs.join(", ")
        }
    );
    println!(
        "try: kubectl --kubeconfig {} get nodes",
        kubeconfig.display()
    );

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(finished) = tasks.join_next() => {
            // A component that ends on its own is a failure of the whole cluster.
            let _ = stop.send(true);
            finished.context("a cluster component panicked")??;
            anyhow::bail!("a cluster component stopped unexpectedly");
        }
    }
    let _ = stop.send(true);
    while let Some(finished) = tasks.join_next().await {
        if let Ok(Err(error)) = finished {
            tracing::warn!(%error, "component stopped with an error");
        }
    }
    store.close().await.context("closing the store")?;
    Ok(())
}
