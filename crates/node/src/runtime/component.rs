//! WebAssembly components built for WASI 0.2 (`wasm32-wasip2`): compiled to a [`Component`]
//! and linked against WASI 0.2 and `wasi:http`. A component is one of two kinds, told apart
//! by its exports:
//!
//! - a `wasi:cli/command`, started by calling its `wasi:cli/run` export ([`run`]);
//! - an HTTP component (`wasi:http/proxy`), which exports `wasi:http/incoming-handler` and
//!   is instantiated once per request (`runtime/http.rs`).
//!
//! A component gets the same sandbox as a module: [`WasiCtxBuilder`] grants nothing by
//! default, so beyond the declared args and env, the pod's volumes and the two log streams
//! it has no host files, no host environment and no sockets (the socket interfaces are
//! linked, because commands import them, but every address is refused). Outgoing HTTP
//! requests go through [`Outbound`], which lets through only what the pod may reach.

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::Outbound;
use super::{Controls, PrepareError, Program, configure_store};

/// The per-run store data of a component: its WASI and `wasi:http` contexts, the table of
/// the resources (streams, pollables, requests) it holds, where its outgoing requests may
/// go, and its memory limiter and CPU meter.
pub(super) struct ComponentState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) outbound: Outbound,
    pub(super) table: ResourceTable,
    pub(super) controls: Controls,
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The linker every component on the node is linked with: all of WASI 0.2 and `wasi:http`.
/// HTTP components built with a language's standard library import `wasi:cli` (environment,
/// stdio, exit) besides `wasi:http`, as `wasmtime serve -S cli` allows, and commands may make
/// outgoing HTTP requests.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Compiles a component and links it: an HTTP component when it exports
/// `wasi:http/incoming-handler`, otherwise a command, which must export `wasi:cli/run`.
/// Components that are neither, or import something the linker lacks, are refused.
pub(super) fn prepare(
    engine: &Engine,
    linker: &Linker<ComponentState>,
    wasm: &[u8],
) -> Result<Program, PrepareError> {
    let component = Component::from_binary(engine, wasm)
        .map_err(|e| PrepareError::Invalid(format!("{e:#}")))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        PrepareError::Unsupported(format!(
            "{e:#} (this node provides WASI 0.2 and wasi:http 0.2 to components)"
        ))
    })?;
    if let Ok(proxy) = ProxyPre::new(pre.clone()) {
        return Ok(Program::Http(proxy));
    }
    CommandPre::new(pre).map(Program::Component).map_err(|e| {
        PrepareError::Invalid(format!(
            "the component exports neither `wasi:cli/run` nor `wasi:http/incoming-handler` \
             ({e:#}); pods need a command (a binary crate built for wasm32-wasip2) or an HTTP \
             component (the `wasi:http/proxy` world)"
        ))
    })
}

/// Instantiates the component in a new store and calls its `wasi:cli/run`.
pub(super) async fn run(
    engine: &Engine,
    pre: &CommandPre<ComponentState>,
    wasi: &mut WasiCtxBuilder,
    outbound: Outbound,
    controls: Controls,
) -> (wasmtime::Result<()>, Controls) {
    let state = ComponentState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        outbound,
        table: ResourceTable::new(),
        controls,
    };
    let mut store = Store::new(engine, state);
    configure_store(&mut store, |state| &mut state.controls);
    let result = async {
        let command = pre.instantiate_async(&mut store).await?;
        match command.wasi_cli_run().call_run(&mut store).await? {
            Ok(()) => Ok(()),
            // `run` returning its error variant is how a command fails without calling
            // `wasi:cli/exit`; a process would exit with 1.
            Err(()) => Err(I32Exit(1).into()),
        }
    }
    .await;
    (result, store.into_data().controls)
}
