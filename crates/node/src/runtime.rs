//! The node agent's WebAssembly engine: compiles pod images once and runs them as sandboxed
//! WASI programs.
//!
//! A pod's container image resolves to the bytes of a WASI program, of either kind:
//!
//! - a core Wasm module built for WASI preview 1 (`wasm32-wasip1`), started through its
//!   `_start` export (`runtime/module.rs`);
//! - a component built for WASI 0.2 (`wasm32-wasip2`), a `wasi:cli/command` started through
//!   its `wasi:cli/run` export (`runtime/component.rs`).
//!
//! The binary's preamble says which it is. [`Runtime::prepare`] compiles the bytes once per
//! sha256 digest and keeps the result, already linked against WASI, as a [`PreparedModule`];
//! [`Runtime::run`] then instantiates it in a fresh, isolated store and runs it to
//! completion, reporting how it ended as an [`ExitOutcome`] that the pod worker turns into
//! container status. Both kinds get the same sandbox, log streams, memory limit, epoch
//! yields and exit reporting; only linking and starting differ.
//!
//! ```no_run
//! # async fn example(wasm: Vec<u8>, log: std::fs::File) -> anyhow::Result<()> {
//! use flotilla_node::runtime::{ExitOutcome, RunSpec, Runtime};
//!
//! let runtime = Runtime::new()?;
//! let module = runtime.prepare(wasm).await?;
//! let outcome = runtime
//!     .run(
//!         &module,
//!         RunSpec {
//!             program_name: "hello".into(),
//!             args: vec![],
//!             env: vec![("GREETING".into(), "hi".into())],
//!             stdout: log,
//!             memory_limit_bytes: Some(64 << 20),
//!             preopens: vec![],
//!             working_dir: None,
//!             cpu_limit_millicores: None,
//!             usage: Default::default(),
//!             outbound: Default::default(),
//!         },
//!     )
//!     .await;
//! assert_eq!(outcome, ExitOutcome::Exited(0));
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **One engine, one linker per kind.** Every pod on the node shares one [`Engine`] and one
//!   WASI linker for its kind; each run gets its own [`Store`] and WASI context, so pods share
//!   nothing at run time. The WASI context is built from the [`RunSpec`] alone: the guest
//!   sees its declared args and env, an empty stdin, stdout and stderr going to its log file
//!   (one timestamped record per line, see [`crate::log_file`]), the directories its pod
//!   mounts (preopened at their mount paths), and no other host files, no host environment
//!   and no network.
//! - **Compile once.** Compiled modules are cached in memory by the digest of their bytes, as
//!   [`InstancePre`]s (`CommandPre`s for components), so starting another pod of the same image only instantiates.
//!   Concurrent `prepare` calls for the same bytes share one compilation. The cache is not
//!   evicted yet: a node keeps every distinct image it has run until the agent restarts.
//! - **Compiled code survives restarts.** [`Runtime::with_compile_cache`] turns on wasmtime's
//!   own on-disk cache (no `unsafe` on our side: the workspace forbids it, and
//!   `Module::deserialize` would need it). Entries are keyed by a hash of the bytes and of
//!   everything in the engine's configuration that affects code generation, including the
//!   wasmtime version, so a restarted agent — or a new engine with the same settings —
//!   loads machine code instead of compiling, and a changed configuration simply misses.
//!   Whoever can write that directory can make the agent run native code, so it lives in the
//!   node's data directory, which is already that trusted.
//! - **No thread per pod.** Guests run on the caller's tokio runtime with wasmtime's async
//!   support. Epoch interruption makes every guest yield back to tokio on every epoch tick
//!   (about 10 ms), so a busy-looping pod cannot starve the others, and dropping the future of
//!   [`Runtime::run`] stops the guest at its next yield.
//! - **The epoch ticker is an OS thread, not a tokio task.** A tokio task would run on the
//!   same workers as the guests: with every worker busy in a compute-bound guest, the ticker
//!   task never gets polled, the epoch never advances, and the guests never yield — the very
//!   starvation the ticker exists to prevent. One sleeping thread per node costs nothing and
//!   cannot be starved that way. It stops when the last clone of the [`Runtime`] is dropped.
//! - **On-demand allocation for pods, the pooling allocator for requests.** The pooling
//!   allocator reserves a fixed number of slots of a fixed maximum size when the engine is
//!   created, so for pods that run to an end it would have to reserve address space for
//!   10,000+ pods up front, and pods beyond the pool size would fail to start. Their engine
//!   maps each instance's memory when it starts (tens of microseconds, small next to the rest
//!   of a pod start) and only touched pages become resident, which keeps idle pods cheap (see
//!   `benches/runtime_bench.rs`). An HTTP component's instances live for one request each,
//!   thousands a second, and never more than the requests in flight: they run in a second
//!   engine with a pool of [`HTTP_INSTANCE_SLOTS`] reused slots, as `wasmtime serve` does
//!   (`http_engine_config`), which took the gateway from 78–96% of `wasmtime serve`'s
//!   throughput to 89–115% (docs/benchmarks.md). An HTTP component is compiled for both
//!   engines: telling it from a command takes the first compile.
//! - **Node-wide caps.** [`Limits`] hold for every pod whatever its spec says: linear memory
//!   (a pod's own memory limit applies when lower), module size (checked before hashing or
//!   compiling) and the size of each run's log file ([`crate::log_file::log_streams`]).
//! - **Idle pods are limited by memory mappings, not memory.** An idle pod holds about
//!   50 KiB resident but 4 memory mappings (see `Runtime::configured` for how it got down from 7),
//!   and Linux allows 65,530 per process by default (`vm.max_map_count`): about 16,000 pods,
//!   less ~2,000 mappings for the HTTP engine's pool of fiber stacks and their guard pages.
//!   Nodes meant for more should raise that sysctl. Each pod's log file is also one open file
//!   descriptor, so `RLIMIT_NOFILE` must allow for the pods too. The HTTP pool also reserves
//!   ~8 TiB of address space (no memory), so a node cannot run under a small `ulimit -v`.

mod component;
mod http;
mod meter;
mod module;
mod outbound;
mod wagi;

pub use http::HttpFailure;
pub use meter::Usage;
pub use outbound::{ALLOWED_HOSTS_ANNOTATION, OutboundPolicy};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use wasmtime::{
    Cache, CacheConfig, CallHook, Config, Engine, InstanceAllocationStrategy, InstancePre,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace,
    WasmBacktraceDetails,
};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use component::ComponentState;
use module::ModuleState;
use outbound::Outbound;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How often the engine's epoch advances, which is how often a running guest yields to tokio.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How many HTTP requests a node handles at once: the slots of the HTTP engine's instance
/// pool. A request past them gets 500 saying the node is at capacity.
pub const HTTP_INSTANCE_SLOTS: u32 = 1000;

/// Modules at least this large are hashed on a blocking thread rather than inline.
const HASH_INLINE_MAX: usize = 1 << 20;

/// The most table elements a guest may grow a table to. Tables live outside linear memory,
/// so the memory limit does not cover them; 1M elements is 8 MiB of host memory.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// How many frames of a trap's wasm backtrace go into [`ExitOutcome::Trapped`].
const TRAP_BACKTRACE_FRAMES: usize = 8;

/// Node-wide caps that hold for every pod, whatever its spec says: a pod without a memory
/// limit, a module file of any size or a guest that writes without end cannot take more than
/// these from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may have, in bytes. A pod's own
    /// `resources.limits.memory` applies when it is lower.
    pub max_pod_memory: u64,
    /// The largest module file the node will read and compile, in bytes.
    pub max_module_size: u64,
    /// The most bytes one container run may write to its log file; later output is dropped
    /// and a truncation record says so.
    pub max_log_size: u64,
}

impl Default for Limits {
    /// 1 GiB of memory per pod, 256 MiB per module, 10 MiB of log per container run.
    fn default() -> Self {
        Limits {
            max_pod_memory: 1 << 30,
            max_module_size: 256 << 20,
            max_log_size: 10 << 20,
        }
    }
}

/// The node's WebAssembly engine. Cheap to clone: clones share the engine, the WASI linkers,
/// the module cache and the epoch ticker (everything lives behind one `Arc`).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// The engine of HTTP components' per-request instances, with the pooling allocator.
    http_engine: Engine,
    limits: Limits,
    module_linker: wasmtime::Linker<ModuleState>,
    component_linker: wasmtime::component::Linker<ComponentState>,
    http_linker: wasmtime::component::Linker<ComponentState>,
    /// wasmtime's on-disk compile cache, if this runtime has one; kept for its counters.
    compile_cache: Option<Cache>,
    /// Held while compiling. Compiling already uses every core (wasmtime compiles functions
    /// in parallel), so one at a time costs little, and it makes the cache's hit counter say
    /// whether this compilation was a hit.
    compiling: Mutex<()>,
    /// Compiled modules by digest. A cell that is still empty is a compilation in progress,
    /// which later callers for the same digest wait on instead of compiling again.
    cache: Mutex<HashMap<String, Arc<OnceCell<PreparedModule>>>>,
    /// Dropping this disconnects the ticker thread's channel, which ends the thread.
    _ticker: mpsc::Sender<()>,
}

/// A compiled module or component, linked against WASI and ready to instantiate. Cheap to
/// clone.
///
/// Only the [`Runtime`] that prepared it (or a clone of that runtime) can run it.
#[derive(Clone)]
pub struct PreparedModule {
    program: Program,
    engine: Engine,
    digest: Arc<str>,
}

/// What an image compiled to.
#[derive(Clone)]
enum Program {
    /// A core module for WASI preview 1.
    Module(InstancePre<ModuleState>),
    /// A WASI 0.2 `wasi:cli/command` component.
    Component(CommandPre<ComponentState>),
    /// A component that exports `wasi:http/incoming-handler` (`wasi:http/proxy`).
    Http(ProxyPre<ComponentState>),
}

/// The two kinds of WebAssembly binary, told apart by their preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (version 1, layer 0).
    Module,
    /// A component (layer 1).
    Component,
}

impl std::fmt::Display for WasmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WasmKind::Module => "module",
            WasmKind::Component => "component",
        })
    }
}

impl std::fmt::Debug for PreparedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedModule")
            .field("kind", &self.kind())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl PreparedModule {
    /// The module's content digest, `sha256:<64 hex digits>`, as in image references.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether this is a core module or a component.
    pub fn kind(&self) -> WasmKind {
        match self.program {
            Program::Module(_) => WasmKind::Module,
            Program::Component(_) | Program::Http(_) => WasmKind::Component,
        }
    }

    /// Whether this is an HTTP component, which serves requests instead of running to an
    /// end ([`Runtime::handle_request`]).
    pub fn serves_http(&self) -> bool {
        matches!(self.program, Program::Http(_))
    }

    /// Whether this module can serve HTTP when a pod asks it to: an HTTP component, or a
    /// WASI preview 1 program run once per request CGI style ([`Runtime::handle_cgi`]).
    pub fn can_serve_http(&self) -> bool {
        matches!(self.program, Program::Http(_) | Program::Module(_))
    }
}

/// How often the on-disk compile cache was used, since the [`Runtime`] was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompileCacheStats {
    /// Compilations answered from the cache: machine code loaded, nothing compiled.
    pub hits: usize,
    /// Compilations that found nothing in the cache, compiled, and stored the result.
    pub misses: usize,
}

/// Why a module could not be prepared. The message is meant for the pod's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// The bytes are not a WebAssembly binary at all (no `\0asm` magic), e.g. an HTML error
    /// page, a text-format `.wat` file or a native executable.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// The bytes claim to be WebAssembly but fail to decode, validate or compile, or they are
    /// not a WASI command (a module without a `_start` function, a component without a
    /// `wasi:cli/run` export).
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    /// Valid WebAssembly that this node cannot run: imports that are not all provided (WASI
    /// preview 1 to modules, WASI 0.2 to components), or a binary format version it does
    /// not know.
    #[error("unsupported WebAssembly: {0}")]
    Unsupported(String),
    /// The module is larger than the node's [`Limits::max_module_size`]; it is refused
    /// before compiling, which for a module that size could take minutes and gigabytes.
    #[error(
        "the module is {size} bytes, over this node's limit of {max} bytes (--max-module-size)"
    )]
    TooLarge {
        /// The module's size.
        size: u64,
        /// The node's limit.
        max: u64,
    },
}

/// Everything a single run of a module needs from the pod spec.
#[derive(Debug)]
pub struct RunSpec {
    /// `argv[0]`, usually the container name.
    pub program_name: String,
    /// `argv[1..]`, the container's args.
    pub args: Vec<String>,
    /// The complete environment the guest sees; nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// The container's log file; the guest's stdout and stderr are both appended to it as
    /// timestamped records, one per line ([`crate::log_file`]), in the order the lines are
    /// written. Open it in append mode.
    pub stdout: std::fs::File,
    /// Cap on the guest's linear memory, in bytes. A `memory.grow` past it fails, which for
    /// most guests ends in [`ExitOutcome::OutOfMemory`]. `None`, or a value above the node's
    /// [`Limits::max_pod_memory`], leaves the node's cap.
    pub memory_limit_bytes: Option<u64>,
    /// The host directories the guest sees, and where: its volume mounts. Nothing else of
    /// the host's filesystem is visible.
    pub preopens: Vec<Preopen>,
    /// The guest's initial working directory (`workingDir`), which relative paths start from.
    pub working_dir: Option<String>,
    /// Cap on the guest's CPU share, in thousandths of a core (`100` for `100m`); `None`
    /// lets it use what it gets.
    pub cpu_limit_millicores: Option<u64>,
    /// Where the run's CPU time and memory size are counted while it runs.
    pub usage: Arc<Usage>,
    /// Where the guest's outgoing HTTP requests may go; the default reaches nothing.
    pub outbound: Arc<OutboundPolicy>,
}

impl RunSpec {
    /// Another spec like this one, writing to the same log file: an HTTP component gets a
    /// fresh instance, and so a fresh sandbox, for every request.
    pub fn try_clone(&self) -> std::io::Result<RunSpec> {
        Ok(RunSpec {
            program_name: self.program_name.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            stdout: self.stdout.try_clone()?,
            memory_limit_bytes: self.memory_limit_bytes,
            preopens: self.preopens.clone(),
            working_dir: self.working_dir.clone(),
            cpu_limit_millicores: self.cpu_limit_millicores,
            usage: self.usage.clone(),
            outbound: self.outbound.clone(),
        })
    }
}

/// A host directory the guest sees at `guest` (a WASI preopened directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    /// An absolute path in the guest, e.g. `/data`.
    pub guest: String,
    /// The guest may read but not create, change or delete anything under it.
    pub read_only: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ExitOutcome {
    /// The guest called WASI `proc_exit` with this code, or returned from `_start` (code 0).
    Exited(i32),
    /// The guest trapped (or instantiating it failed); `message` is wasmtime's description
    /// of the trap followed by the first frames of the wasm backtrace.
    Trapped {
        /// What went wrong, for the container's termination message.
        message: String,
    },
    /// The guest was refused memory beyond [`RunSpec::memory_limit_bytes`] and then failed.
    OutOfMemory {
        /// The limit, what the guest asked for, and how it failed.
        message: String,
    },
}

/// Enforces [`RunSpec::memory_limit_bytes`] and remembers whether it ever refused a grow, so
/// that the trap that usually follows (a Rust guest aborts when allocation fails) can be
/// reported as out-of-memory rather than as an unexplained trap.
struct MemoryLimiter {
    limit: Option<usize>,
    /// The size, in bytes, of the first linear-memory growth that was refused.
    refused: Option<usize>,
    /// Where the memory's current size is published.
    usage: Arc<Usage>,
}

/// What every run's store holds besides its WASI context: the memory limiter and the CPU
/// meter.
struct Controls {
    limiter: MemoryLimiter,
    meter: meter::CpuMeter,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.limit.is_some_and(|limit| desired > limit) {
            self.refused.get_or_insert(desired);
            // Refuse rather than trap: `memory.grow` returns -1 and the guest may cope.
            return Ok(false);
        }
        self.usage.set_memory(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl Runtime {
    /// Creates the engine, the WASI linkers and the epoch ticker thread, without an on-disk
    /// compile cache: every image is compiled once per `Runtime`.
    ///
    /// Does not need a tokio runtime itself, but [`prepare`](Self::prepare) and
    /// [`run`](Self::run) must be awaited inside one.
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::configured(Limits::default(), None)
    }

    /// Like [`new`](Self::new), with node-wide caps other than the defaults.
    pub fn with_limits(limits: Limits) -> anyhow::Result<Runtime> {
        Runtime::configured(limits, None)
    }

    /// Like [`new`](Self::new), with compiled code cached on disk in `dir` (created if
    /// missing), so that another `Runtime` over the same directory — the node agent after a
    /// restart — loads what this one compiled instead of compiling it again.
    pub fn with_compile_cache(dir: impl AsRef<Path>) -> anyhow::Result<Runtime> {
        Runtime::configured(Limits::default(), Some(dir.as_ref()))
    }

    /// The node agent's runtime: node-wide `limits`, and compiled code cached in `cache_dir`.
    pub fn configured(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Symbolicating traps from DWARF would make every compile parse debug info, and the
        // default lets an environment variable change it; frames still show function names
        // from the name section when a module has one.
        config.wasm_backtrace_details(WasmBacktraceDetails::Disable);
        // Every memory mapping counts against the kernel's `vm.max_map_count` (65530 by
        // default), and an idle pod's mappings, not its resident memory, are what run out
        // first. With wasmtime's defaults a pod takes 7: fiber stack and its guard page; a
        // 32 MiB guard before linear memory; linear memory split in three around a
        // copy-on-write image of its data segments; and the rest of the 4 GiB reservation.
        // Without the leading guard (defence in depth against code generator bugs only; it
        // is never touched by correct code) and without the CoW image (data segments are
        // copied instead, which is faster for the kilobytes of data typical modules have)
        // it takes 4, so ~16,000 pods fit instead of ~9,000. See benches/runtime_bench.rs.
        config.guard_before_linear_memory(false);
        config.memory_init_cow(false);
        let compile_cache = cache_dir.map(compile_cache).transpose()?;
        config.cache(compile_cache.clone());
        // wasmtime 48 has its own error type, which converts into `anyhow::Error` but does not
        // implement `std::error::Error`, so anyhow's `context` needs the conversion first.
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let module_linker = module::linker(&engine)
            .map_err(anyhow::Error::from)
            .context("adding WASI preview 1 to the linker")?;
        let component_linker = component::linker(&engine)
            .map_err(anyhow::Error::from)
            .context("adding WASI 0.2 to the component linker")?;

        let http_engine = Engine::new(&http_engine_config(&limits, compile_cache.clone()))
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine for HTTP components")?;
        let http_linker = component::linker(&http_engine)
            .map_err(anyhow::Error::from)
            .context("adding WASI 0.2 and wasi:http to the HTTP linker")?;

        let ticker = spawn_epoch_ticker(vec![engine.clone(), http_engine.clone()])
            .context("starting the epoch ticker")?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                http_engine,
                limits,
                module_linker,
                component_linker,
                http_linker,
                compile_cache,
                compiling: Mutex::new(()),
                cache: Mutex::new(HashMap::new()),
                _ticker: ticker,
            }),
        })
    }

    /// Compiles `wasm`, or returns the module already compiled from the same bytes.
    ///
    /// Compilation runs on tokio's blocking pool, since it can take from milliseconds to
    /// seconds of CPU. The result is linked against WASI, so a module whose imports cannot be
    /// satisfied is rejected here ([`PrepareError::Unsupported`]) rather than when a pod
    /// starts; likewise a module with no `_start` or a component with no `wasi:cli/run`
    /// ([`PrepareError::Invalid`]). Failures are not cached.
    pub async fn prepare(&self, wasm: Vec<u8>) -> Result<PreparedModule, PrepareError> {
        let max = self.inner.limits.max_module_size;
        if wasm.len() as u64 > max {
            return Err(PrepareError::TooLarge {
                size: wasm.len() as u64,
                max,
            });
        }
        let kind = check_header(&wasm)?;
        let (digest, wasm) = if wasm.len() < HASH_INLINE_MAX {
            (digest_of(&wasm), wasm)
        } else {
            tokio::task::spawn_blocking(move || (digest_of(&wasm), wasm))
                .await
                .expect("hashing a module panicked")
        };

        let cell = self
            .inner
            .cache
            .lock()
            .expect("module cache poisoned")
            .entry(digest.clone())
            .or_default()
            .clone();
        let result = cell
            .get_or_try_init(|| self.compile(kind, digest.clone(), wasm))
            .await
            .cloned();
        if result.is_err() {
            // Drop the empty cell, unless another caller has since filled it.
            let mut cache = self.inner.cache.lock().expect("module cache poisoned");
            if cache.get(&digest).is_some_and(|c| c.get().is_none()) {
                cache.remove(&digest);
            }
        }
        result
    }

    /// Compiles (or loads from the on-disk cache) and links a module on the blocking pool.
    async fn compile(
        &self,
        kind: WasmKind,
        digest: String,
        wasm: Vec<u8>,
    ) -> Result<PreparedModule, PrepareError> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.compile_blocking(kind, digest, &wasm))
            .await
            .expect("compiling a module panicked")
    }

    fn compile_blocking(
        &self,
        kind: WasmKind,
        digest: String,
        wasm: &[u8],
    ) -> Result<PreparedModule, PrepareError> {
        let inner = &*self.inner;
        let _compiling = inner.compiling.lock().expect("compile lock poisoned");
        let hits_before = self.compile_cache_stats().map(|stats| stats.hits);
        let started = Instant::now();
        let program = match kind {
            WasmKind::Module => {
                module::prepare(&inner.engine, &inner.module_linker, wasm).map(Program::Module)
            }
            WasmKind::Component => component::prepare(&inner.engine, &inner.component_linker, wasm)
                .and_then(|program| match program {
                    // Compiled again for the pooled engine its requests run in. Telling an
                    // HTTP component from a command takes compiling it; this second compile
                    // is once per digest, and a hit in the on-disk cache after a restart.
                    Program::Http(_) => {
                        component::prepare(&inner.http_engine, &inner.http_linker, wasm)
                    }
                    command => Ok(command),
                }),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let from_cache = hits_before.is_some()
            && self.compile_cache_stats().map(|stats| stats.hits) > hits_before;
        match program {
            Ok(program) => {
                if from_cache {
                    tracing::info!(
                        "loaded {kind} {digest} from the compile cache in {elapsed_ms:.1} ms"
                    );
                } else {
                    tracing::info!("compiled {kind} {digest} in {elapsed_ms:.1} ms");
                }
                let engine = match program {
                    Program::Http(_) => inner.http_engine.clone(),
                    _ => inner.engine.clone(),
                };
                Ok(PreparedModule {
                    program,
                    engine,
                    digest: digest.into(),
                })
            }
            Err(error) => {
                tracing::debug!(%error, "{kind} {digest} rejected");
                Err(error)
            }
        }
    }

    /// How many compiled modules the in-memory cache holds.
    pub fn cached_modules(&self) -> usize {
        let cache = self.inner.cache.lock().expect("module cache poisoned");
        cache.values().filter(|cell| cell.initialized()).count()
    }

    /// The on-disk compile cache's counters, or `None` without one
    /// ([`with_compile_cache`](Self::with_compile_cache)).
    pub fn compile_cache_stats(&self) -> Option<CompileCacheStats> {
        self.inner
            .compile_cache
            .as_ref()
            .map(|cache| CompileCacheStats {
                hits: cache.cache_hits(),
                misses: cache.cache_misses(),
            })
    }

    /// Runs the module's `_start` (a component's `wasi:cli/run`) in a new, isolated instance
    /// until the guest exits, returns or traps.
    ///
    /// To stop a guest, drop the returned future: the guest yields to tokio at least every
    /// epoch tick (about 10 ms), even in a busy loop, and dropping the future at a yield
    /// tears the instance down. The future is `Send`, so it can be spawned.
    ///
    /// # Panics
    ///
    /// If `module` was prepared by an unrelated [`Runtime`].
    pub async fn run(&self, module: &PreparedModule, spec: RunSpec) -> ExitOutcome {
        self.start(module, spec, None).await
    }

    /// Like [`run`](Self::run) in a new instance of a core module, but calls `export`
    /// instead of `_start`: a function that takes nothing and returns nothing (success) or
    /// an `i32` status (0 is success, anything else is reported as that exit code). This is
    /// what an `exec` probe does, the way `kubectl exec` starts another process in a
    /// container: it shares the container's volumes, not its memory.
    pub async fn call(&self, module: &PreparedModule, spec: RunSpec, export: &str) -> ExitOutcome {
        if let Program::Component(_) | Program::Http(_) = module.program {
            return ExitOutcome::Trapped {
                message: format!(
                    "cannot call {export:?}: calling an export is supported for core modules, \
                     not components"
                ),
            };
        }
        self.start(module, spec, Some(export)).await
    }

    async fn start(
        &self,
        module: &PreparedModule,
        spec: RunSpec,
        export: Option<&str>,
    ) -> ExitOutcome {
        let Sandbox {
            mut wasi,
            outbound,
            controls,
            limit,
        } = match self.sandbox(module, spec) {
            Ok(sandbox) => sandbox,
            Err(outcome) => return outcome,
        };
        let engine = &self.inner.engine;
        let (result, controls) = match &module.program {
            Program::Module(pre) => {
                let export = export.unwrap_or("_start");
                module::run(engine, pre, &mut wasi, controls, export).await
            }
            Program::Component(pre) => {
                component::run(engine, pre, &mut wasi, outbound, controls).await
            }
            Program::Http(_) => {
                return ExitOutcome::Trapped {
                    message: "an HTTP component is not run but serves requests (it exports \
                              wasi:http/incoming-handler, not wasi:cli/run)"
                        .into(),
                };
            }
        };
        outcome_of(result, Some(limit), controls.limiter.refused)
    }

    /// Builds the sandbox of one run (or one request) from its spec: the WASI context with
    /// the guest's args, env, log streams and mounts and nothing else, where its outgoing
    /// requests may go, and its memory limiter and CPU meter. A mount that cannot be opened
    /// ends the run before it starts.
    fn sandbox(&self, module: &PreparedModule, spec: RunSpec) -> Result<Sandbox, ExitOutcome> {
        assert!(
            Engine::same(&module.engine, &self.inner.engine)
                || Engine::same(&module.engine, &self.inner.http_engine),
            "module {} was prepared by a different Runtime",
            module.digest
        );
        let RunSpec {
            program_name,
            args,
            env,
            stdout,
            memory_limit_bytes,
            preopens,
            working_dir,
            cpu_limit_millicores,
            usage,
            outbound,
        } = spec;

        // Both streams share one writer and its file: records keep the order of the guest's
        // lines, and a pod costs one file descriptor for its log rather than two.
        let limits = self.inner.limits;
        let (stdout, stderr) = crate::log_file::log_streams(stdout, limits.max_log_size);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout)
            .stderr(stderr)
            .arg(&program_name)
            .args(&args)
            .envs(&env);
        for preopen in &preopens {
            let perms = if preopen.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            if let Err(error) = wasi.preopened_dir(&preopen.host, &preopen.guest, perms) {
                return Err(ExitOutcome::Trapped {
                    message: format!(
                        "could not mount {} at {}: {error:#}",
                        preopen.host.display(),
                        preopen.guest
                    ),
                });
            }
        }
        if let Some(dir) = &working_dir {
            // Components ask for it (`wasi:cli/environment.initial-cwd`). WASI preview 1 has
            // no such call and wasi-libc starts in `/`, but it resolves a relative path
            // against a preopen named `.` when no other preopen matches better, so the
            // directory mounted there stands in for the working directory.
            wasi.initial_cwd(dir);
            if let (Program::Module(_), Some(cwd)) =
                (&module.program, working_dir_preopen(&preopens, dir))
            {
                let perms = if cwd.read_only {
                    FsPerms::ReadOnly
                } else {
                    FsPerms::ReadWrite
                };
                if let Err(error) = wasi.preopened_dir(&cwd.host, ".", perms) {
                    return Err(ExitOutcome::Trapped {
                        message: format!("could not open the working directory {dir}: {error:#}"),
                    });
                }
            }
        }
        let node_cap = limits.max_pod_memory;
        let (limit, whose) = match memory_limit_bytes {
            Some(bytes) if bytes <= node_cap => (bytes, LimitSource::Pod),
            _ => (node_cap, LimitSource::Node),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let controls = Controls {
            limiter: MemoryLimiter {
                limit: Some(limit),
                refused: None,
                usage: usage.clone(),
            },
            meter: meter::CpuMeter::new(cpu_limit_millicores, usage),
        };
        Ok(Sandbox {
            wasi,
            outbound: Outbound { policy: outbound },
            controls,
            limit: (limit, whose),
        })
    }
}

/// Everything one run or request gets, built by [`Runtime::sandbox`].
struct Sandbox {
    wasi: WasiCtxBuilder,
    outbound: Outbound,
    controls: Controls,
    /// The memory limit that applies, and whose it is.
    limit: (usize, LimitSource),
}

/// The host directory that a guest path inside one of the preopens is, with that preopen's
/// permissions: `/data/app` with `/data` mounted from `/var/x` is `/var/x/app`.
fn working_dir_preopen(preopens: &[Preopen], dir: &str) -> Option<Preopen> {
    preopens
        .iter()
        .filter_map(|preopen| {
            let base = preopen.guest.trim_end_matches('/');
            let rest = dir.strip_prefix(base)?;
            let rest = rest.strip_prefix('/').or(rest.is_empty().then_some(""))?;
            let host = preopen.host.join(rest);
            let found = Preopen {
                host,
                guest: dir.to_string(),
                read_only: preopen.read_only,
            };
            found.host.is_dir().then_some((base.len(), found))
        })
        // The innermost mount wins, as it would in a filesystem.
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, preopen)| preopen)
}

/// Which cap a guest ran into: its own memory limit, or the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitSource {
    Pod,
    Node,
}

/// What every run's store gets, whatever the kind: the memory limiter; the CPU meter, told
/// whenever control enters or leaves wasm; and a deadline that yields to tokio on every
/// epoch tick (after a pause, for a guest over its CPU limit) and comes back for one more
/// tick of work.
fn configure_store<T: 'static>(store: &mut Store<T>, controls: fn(&mut T) -> &mut Controls) {
    store.limiter(move |state| &mut controls(state).limiter as &mut dyn ResourceLimiter);
    store.call_hook(move |mut context, hook| {
        let meter = &mut controls(context.data_mut()).meter;
        match hook {
            CallHook::CallingWasm | CallHook::ReturningFromHost => meter.enter(Instant::now()),
            CallHook::CallingHost | CallHook::ReturningFromWasm => meter.leave(Instant::now()),
        }
        Ok(())
    });
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut context| {
        let meter = &mut controls(context.data_mut()).meter;
        Ok(match meter.tick(Instant::now()) {
            Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
            None => UpdateDeadline::Yield(1),
        })
    });
}

/// wasmtime's on-disk compile cache in `dir`, which must be absolute for wasmtime.
fn compile_cache(dir: &Path) -> anyhow::Result<Cache> {
    let dir: PathBuf = std::path::absolute(dir)
        .with_context(|| format!("resolving the compile cache directory {}", dir.display()))?;
    let mut config = CacheConfig::new();
    config.with_directory(&dir);
    Cache::new(config)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("opening the compile cache in {}", dir.display()))
}

/// Turns how a run ended into an [`ExitOutcome`].
fn outcome_of(
    result: wasmtime::Result<()>,
    limit: Option<(usize, LimitSource)>,
    refused: Option<usize>,
) -> ExitOutcome {
    let error = match result {
        Ok(()) => return ExitOutcome::Exited(0),
        Err(error) => error,
    };
    if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
        return ExitOutcome::Exited(*code);
    }
    let message = describe_failure(&error);
    // A refused grow followed by a failure is the guest running out of memory: Rust's
    // allocator, for one, aborts (traps) when the heap cannot grow. A guest that copes with
    // the refusal and exits normally was handled above.
    match (limit, refused) {
        (Some((limit, whose)), Some(desired)) => {
            // The backtrace of an allocator's abort says nothing the limit doesn't.
            let failure = message.lines().next().unwrap_or_default();
            let which = match whose {
                LimitSource::Pod => "memory limit",
                LimitSource::Node => "node's per-pod memory cap (--max-pod-memory)",
            };
            ExitOutcome::OutOfMemory {
                message: format!(
                    "{which} of {limit} bytes exceeded: the guest asked to grow its \
                     linear memory to {desired} bytes and was refused, then failed with \
                     {failure}"
                ),
            }
        }
        _ => ExitOutcome::Trapped { message },
    }
}

/// A one-paragraph description of a trap (or host error) with the top of its wasm backtrace.
fn describe_failure(error: &wasmtime::Error) -> String {
    let mut message = match error.downcast_ref::<Trap>() {
        // Displays as "wasm trap: <what happened>".
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames = backtrace.frames();
        message.push_str("\nwasm backtrace:");
        for (i, frame) in frames.iter().take(TRAP_BACKTRACE_FRAMES).enumerate() {
            let _ = write!(message, "\n  {i:>2}: ");
            if let Some(offset) = frame.module_offset() {
                let _ = write!(message, "{offset:#x} ");
            }
            match frame.func_name() {
                Some(name) => message.push_str(name),
                None => {
                    let _ = write!(message, "<wasm function {}>", frame.func_index());
                }
            }
        }
        if frames.len() > TRAP_BACKTRACE_FRAMES {
            let _ = write!(
                message,
                "\n  … {} more frames",
                frames.len() - TRAP_BACKTRACE_FRAMES
            );
        }
    }
    message
}

/// Tells a core module from a component by the preamble, and rejects bytes that are neither
/// before wasmtime sees them, with a message that says what they are instead.
fn check_header(wasm: &[u8]) -> Result<WasmKind, PrepareError> {
    const MAGIC: &[u8] = b"\0asm";
    if !wasm.starts_with(MAGIC) {
        let what = if wasm.is_empty() {
            "the file is empty".to_string()
        } else if wasm.starts_with(b"\x7fELF") {
            "it is an ELF file; precompiled or native binaries cannot be run".to_string()
        } else if wasm.trim_ascii_start().starts_with(b"(") {
            "it looks like the WebAssembly text format; compile it to a binary first".to_string()
        } else {
            let shown = &wasm[..wasm.len().min(4)];
            format!("missing \\0asm magic, the file starts with {shown:02x?}")
        };
        return Err(PrepareError::NotWasm(what));
    }
    // The four bytes after the magic are a version (u16) and a layer (u16): core modules are
    // version 1 layer 0, components layer 1 (version 0x0d while the format is a draft).
    match wasm.get(4..8) {
        Some([1, 0, 0, 0]) => Ok(WasmKind::Module),
        Some([_, _, 1, 0]) => Ok(WasmKind::Component),
        // Truncated or an unknown version: let wasmtime's decoder say what is wrong.
        Some([_, _, 0, 0]) | None => Ok(WasmKind::Module),
        Some(preamble) => Err(PrepareError::Unsupported(format!(
            "unknown WebAssembly binary version/layer {preamble:02x?}"
        ))),
    }
}

fn digest_of(wasm: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(wasm))
}

/// The configuration of the engine HTTP components' requests run in: as the main engine's
/// for what compiled code depends on, but with the pooling allocator, which keeps
/// [`HTTP_INSTANCE_SLOTS`] instances' memories and tables reserved and reuses them (reset
/// with `madvise` and copy-on-write data images) instead of mapping fresh ones for every
/// request. That is what `wasmtime serve` does too. Pods that run to an end stay on the
/// on-demand allocator: a pool would cap how many can run and reserve their space up front.
fn http_engine_config(limits: &Limits, compile_cache: Option<Cache>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_backtrace_details(WasmBacktraceDetails::Disable);
    config.cache(compile_cache);
    let slots = HTTP_INSTANCE_SLOTS;
    let mut pool = PoolingAllocationConfig::new();
    // A component built by a language toolchain is a few core instances (the program, the
    // WASI adapter, shims), most with a memory or a table.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        // A 32-bit memory cannot grow past 4 GiB whatever the node allows.
        .max_memory_size(usize::try_from(limits.max_pod_memory.min(4 << 30)).unwrap_or(usize::MAX));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances `engines`' epochs every [`EPOCH_TICK`] on a dedicated thread until the returned
/// sender is dropped. See the module docs for why this is not a tokio task.
fn spawn_epoch_ticker(engines: Vec<Engine>) -> std::io::Result<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("flotilla-epoch".into())
        .spawn(move || {
            // Nothing is ever sent: the loop ends when the sender is dropped (Disconnected).
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                for engine in &engines {
                    engine.increment_epoch();
                }
            }
        })?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks_name_what_the_bytes_are() {
        let not_wasm = |bytes: &[u8]| match check_header(bytes) {
            Err(PrepareError::NotWasm(message)) => message,
            other => panic!("expected NotWasm, got {other:?}"),
        };
        assert!(not_wasm(b"").contains("empty"));
        assert!(not_wasm(b"\x7fELF\x02\x01").contains("ELF"));
        assert!(not_wasm(b"  (module)").contains("text format"));
        assert!(not_wasm(b"<html>").contains("missing \\0asm magic"));

        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(WasmKind::Component));
        assert_eq!(check_header(b"\0asm\x01\0\0\0"), Ok(WasmKind::Module));
        assert!(matches!(
            check_header(b"\0asm\x01\0\x07\0"),
            Err(PrepareError::Unsupported(m)) if m.contains("unknown")
        ));
    }

    #[test]
    fn outcome_without_refusal_is_a_trap_and_with_refusal_is_oom() {
        let trap = || Err(wasmtime::Error::new(Trap::UnreachableCodeReached));
        assert!(matches!(
            outcome_of(trap(), Some((1 << 20, LimitSource::Pod)), None),
            ExitOutcome::Trapped { message } if message.contains("unreachable")
        ));
        assert!(matches!(
            outcome_of(trap(), Some((1 << 20, LimitSource::Pod)), Some(2 << 20)),
            ExitOutcome::OutOfMemory { message } if message.contains("1048576")
        ));
        assert!(matches!(
            outcome_of(trap(), Some((1 << 20, LimitSource::Node)), Some(2 << 20)),
            ExitOutcome::OutOfMemory { message } if message.contains("--max-pod-memory")
        ));
        assert_eq!(
            outcome_of(Err(I32Exit(4).into()), None, None),
            ExitOutcome::Exited(4)
        );
        assert_eq!(outcome_of(Ok(()), None, None), ExitOutcome::Exited(0));
    }
}
