//! WebAssembly components built for WASI 0.2 (`wasm32-wasip2`): compiled to a [`Component`],
//! linked against the `wasi:cli/command` world and started by calling their `wasi:cli/run`
//! export.
//!
//! A component gets the same sandbox as a module: [`WasiCtxBuilder`] grants nothing by
//! default, so beyond the declared args and env, the pod's volumes and the two log streams
//! it has no host files, no host environment and no network (the socket interfaces are
//! linked, because commands import them, but every address is refused).

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{Controls, PrepareError, configure_store};

/// The per-run store data of a component: its WASI context, the table of the resources
/// (streams, pollables) it holds, and its memory limiter and CPU meter.
pub(super) struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    controls: Controls,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WASI 0.2 linker every component on the node is linked with.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Compiles a component and links it, refusing components that do not export
/// `wasi:cli/run` or import something the linker lacks.
pub(super) fn prepare(
    engine: &Engine,
    linker: &Linker<ComponentState>,
    wasm: &[u8],
) -> Result<CommandPre<ComponentState>, PrepareError> {
    let component = Component::from_binary(engine, wasm)
        .map_err(|e| PrepareError::Invalid(format!("{e:#}")))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        PrepareError::Unsupported(format!(
            "{e:#} (this node provides WASI 0.2, the `wasi:cli/command` world, to components)"
        ))
    })?;
    CommandPre::new(pre).map_err(|e| {
        PrepareError::Invalid(format!(
            "the component is not a WASI command: {e:#}; pods need a component that exports \
             `wasi:cli/run` (a binary crate built for wasm32-wasip2)"
        ))
    })
}

/// Instantiates the component in a new store and calls its `wasi:cli/run`.
pub(super) async fn run(
    engine: &Engine,
    pre: &CommandPre<ComponentState>,
    wasi: &mut WasiCtxBuilder,
    controls: Controls,
) -> (wasmtime::Result<()>, Controls) {
    let state = ComponentState {
        wasi: wasi.build(),
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
