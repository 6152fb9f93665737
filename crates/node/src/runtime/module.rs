//! Core Wasm modules built for WASI preview 1 (`wasm32-wasip1`): compiled to a [`Module`],
//! linked against `wasi_snapshot_preview1` and started by calling their `_start` export.

use wasmtime::{Engine, InstancePre, Linker, Module, Store, ValType};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::{Controls, PrepareError, configure_store};

/// The per-run store data of a module: its WASI context and its memory limiter and CPU meter.
pub(super) struct ModuleState {
    wasi: WasiP1Ctx,
    controls: Controls,
}

/// The WASI preview 1 linker every module on the node is linked with.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ModuleState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut ModuleState| &mut state.wasi)?;
    Ok(linker)
}

/// Compiles a module and links it, refusing modules that are not WASI commands or import
/// something the linker lacks.
pub(super) fn prepare(
    engine: &Engine,
    linker: &Linker<ModuleState>,
    wasm: &[u8],
) -> Result<InstancePre<ModuleState>, PrepareError> {
    let module =
        Module::from_binary(engine, wasm).map_err(|e| PrepareError::Invalid(format!("{e:#}")))?;
    check_is_command(&module)?;
    linker.instantiate_pre(&module).map_err(|e| {
        PrepareError::Unsupported(format!(
            "{e:#} (this node provides WASI preview 1, `wasi_snapshot_preview1`, to core modules)"
        ))
    })
}

/// Instantiates the module in a new store and calls `export` (`_start` to run the program)
/// until it returns.
pub(super) async fn run(
    engine: &Engine,
    pre: &InstancePre<ModuleState>,
    wasi: &mut WasiCtxBuilder,
    controls: Controls,
    export: &str,
) -> (wasmtime::Result<()>, Controls) {
    let state = ModuleState {
        wasi: wasi.build_p1(),
        controls,
    };
    let mut store = Store::new(engine, state);
    configure_store(&mut store, |state| &mut state.controls);
    let result = async {
        let instance = pre.instantiate_async(&mut store).await?;
        call(&mut store, &instance, export).await
    }
    .await;
    (result, store.into_data().controls)
}

/// Calls a function the module exports: `_start` (which `prepare` checked), or another export
/// taking nothing and returning nothing or an `i32` status, which is treated as an exit code.
/// wasm-ld wraps every export of a command in its constructors, so the export finds the
/// guest's runtime (environment, preopens) set up as `_start` would.
async fn call(
    store: &mut Store<ModuleState>,
    instance: &wasmtime::Instance,
    export: &str,
) -> wasmtime::Result<()> {
    let Some(func) = instance.get_func(&mut *store, export) else {
        wasmtime::bail!("the module exports no function named {export:?}");
    };
    let ty = func.ty(&*store);
    let results: Vec<ValType> = ty.results().collect();
    if ty.params().len() != 0 {
        wasmtime::bail!("export {export:?} must take no parameters");
    }
    match results.as_slice() {
        [] => func.typed::<(), ()>(&*store)?.call_async(store, ()).await,
        [ValType::I32] => match func
            .typed::<(), i32>(&*store)?
            .call_async(store, ())
            .await?
        {
            0 => Ok(()),
            code => Err(I32Exit(code).into()),
        },
        _ => wasmtime::bail!("export {export:?} must return nothing or an i32 status"),
    }
}

/// A pod runs a WASI command: it must export `_start` as a function of no arguments and no
/// results. Refusing anything else at prepare time turns "the pod never ran" into an image
/// error with a reason, instead of a trap at start.
fn check_is_command(module: &Module) -> Result<(), PrepareError> {
    match module.get_export("_start") {
        Some(wasmtime::ExternType::Func(ty))
            if ty.params().len() == 0 && ty.results().len() == 0 =>
        {
            Ok(())
        }
        Some(other) => Err(PrepareError::Invalid(format!(
            "`_start` must be a function with no parameters or results, found {other:?}"
        ))),
        None if module.get_export("_initialize").is_some() => Err(PrepareError::Invalid(
            "the module is a WASI reactor (it exports `_initialize`, not `_start`); pods need \
             a command with a `_start` function"
                .into(),
        )),
        None => Err(PrepareError::Invalid(
            "the module has no `_start` function to run; build it as a WASI command (a binary \
             crate for wasm32-wasip1)"
                .into(),
        )),
    }
}
