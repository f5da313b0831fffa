//! A native host for components in the wasi:http proxy world.
//!
//! Why this exists: the host agent answers a component's imports in Python, and on a guest
//! that does almost nothing (examples/hello-wat) the crossings between the guest and Python
//! were most of a request's cost (docs/performance.md). A component whose every import is
//! part of the proxy world (wasi:http/types, wasi:io, wasi:clocks, wasi:random, wasi:cli)
//! needs nothing from Python while it runs, so it runs here, on wasmtime's own wasi-http
//! (what `wasmtime serve` and upstream wasmCloud's host use): Python hands over a request
//! and gets the response back, one crossing each way. Which components come here is
//! decided in host_agent/runtime/native_http.py; everything else stays on the Python host.
//!
//! An `HttpInstance` is one long-lived instance, as the agent's pool keeps them: calls
//! reuse it until it traps.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::io::AsyncWrite;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::p2::bindings::{cli, random};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{LinkOptions, Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttp, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

create_exception!(
    wasmcloud_native,
    LoadError,
    PyException,
    "Not a component this host runs."
);
create_exception!(
    wasmcloud_native,
    GuestTrap,
    PyException,
    "The guest trapped; the instance is dead."
);
create_exception!(
    wasmcloud_native,
    BadRequest,
    PyException,
    "A request wasi:http cannot carry."
);

/// A deadline no call reaches (as the agent's NO_DEADLINE_TICKS).
const NO_DEADLINE_TICKS: u64 = 1 << 40;
/// What a call keeps of the guest's stdout and stderr for the agent to log.
const CAPTURE_LIMIT: usize = 64 * 1024;
/// As many chunks as tokio's bounded channel takes (its limit is usize::MAX >> 3).
const UNBOUNDED_CHUNKS: usize = usize::MAX >> 4;

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The engine every component here runs on; its epoch ticks every `tick_seconds` (the
/// first caller's), so deadlines count in the same ticks as the Python host's.
fn engine(tick_seconds: f64) -> &'static Engine {
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("a default wasmtime config is valid");
        let ticking = engine.clone();
        let tick = Duration::from_secs_f64(tick_seconds.max(0.001));
        std::thread::Builder::new()
            .name("native_epoch_ticker".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                ticking.increment_epoch();
            })
            .expect("a thread can be started");
        engine
    })
}

/// What a store holds for one instance.
struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: AsOnThePythonHost,
    table: ResourceTable,
}

/// wasi:http as the agent's Python host serves it, so a component behaves the same on
/// either: every header passes both ways (wasmtime-wasi-http by default hides hop-by-hop
/// headers and `host` from the guest and refuses them from it; the Python host does not),
/// and nothing sends requests (wasi:http/outgoing-handler is not linked here: a component
/// importing it runs on the Python host, which sends them to a linked provider).
struct AsOnThePythonHost;

type Sending = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl WasiHttpHooks for AsOnThePythonHost {
    fn is_forbidden_header(&mut self, _: &hyper::header::HeaderName) -> bool {
        false
    }

    /// The response body is read only once the guest has set the response; a guest that
    /// writes before that must not wait on a full channel (nothing would empty it). The
    /// channel grows as it is written; the body's limit is applied as it is read.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        UNBOUNDED_CHUNKS
    }

    fn send_request(
        &mut self,
        _: hyper::Request<WasiBody>,
        _: Option<RequestOptions>,
        _: Sending,
    ) -> Box<
        dyn Future<Output = wasmtime_wasi_http::Result<(hyper::Response<WasiBody>, Sending)>>
            + Send,
    > {
        Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) })
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The interfaces served here: the proxy world's imports (and the rest of wasi:cli and
/// wasi:random, which the Python host serves too), without wasi:http/outgoing-handler,
/// which in a lattice goes to a linked provider.
fn proxy_linker(engine: &Engine) -> wasmtime::Result<Linker<GuestState>> {
    let mut linker = Linker::<GuestState>::new(engine);
    let l = &mut linker;
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(l)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |t| t.wasi.random())?;
    cli::environment::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    let options = LinkOptions::default();
    wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, WasiHttp>(
        l,
        &options.into(),
        GuestState::http,
    )?;
    Ok(linker)
}

/// One compiled component, pre-linked for the proxy world.
#[pyclass(module = "wasmcloud_native", frozen)]
struct HttpGuest {
    component: Component,
    pre: ProxyPre<GuestState>,
}

/// Interfaces a component may import whose functions trap when called, as on the Python
/// host: no preopened directories, no network.
const TRAPPED_PREFIXES: [&str; 2] = ["wasi:filesystem/", "wasi:sockets/"];

/// Define `component`'s imports of TRAPPED_PREFIXES interfaces, under the exact names it
/// imports them by: each function traps naming itself; each resource the interface uses
/// from wasi:io is the type this linker serves wasi:io with, each of its own a type that
/// no value ever has. (wasmtime's `define_unknown_imports_as_traps` cannot be used: it
/// also stubs the interfaces this linker serves under another 0.2.x version, with
/// resource types of its own that then do not match.)
fn link_traps(
    linker: &mut Linker<GuestState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::ResourceType;
    struct Trapped;
    let component_type = component.component_type();
    // The component's types of the wasi:io resources, and what this linker serves them as.
    let mut served = Vec::new();
    for (name, import) in component_type.imports(engine) {
        if let ComponentItem::ComponentInstance(interface) = import.ty {
            for (item, export) in interface.exports(engine) {
                if let (ComponentItem::Resource(ty), Some(host)) =
                    (export.ty, io_resource(name, item))
                {
                    served.push((ty, host));
                }
            }
        }
    }
    for (name, import) in component_type.imports(engine) {
        let ComponentItem::ComponentInstance(interface) = import.ty else {
            continue;
        };
        if !TRAPPED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let mut instance = linker.instance(name)?;
        for (item, export) in interface.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let called = format!("{name}#{item}");
                    instance.func_new(item, move |_, _, _, _| {
                        wasmtime::bail!("unknown import: `{called}` has not been defined")
                    })?;
                }
                ComponentItem::Resource(ty) => {
                    let host = served
                        .iter()
                        .find(|(used, _)| *used == ty)
                        .map(|(_, host)| *host);
                    let host = host.unwrap_or_else(ResourceType::host::<Trapped>);
                    instance.resource(item, host, |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The type this linker serves a wasi:io resource with (wasmtime-wasi's), by interface
/// and name.
fn io_resource(interface: &str, item: &str) -> Option<wasmtime::component::ResourceType> {
    use wasmtime::component::ResourceType;
    use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, IoError};
    match (interface.split('@').next()?, item) {
        ("wasi:io/streams", "input-stream") => Some(ResourceType::host::<DynInputStream>()),
        ("wasi:io/streams", "output-stream") => Some(ResourceType::host::<DynOutputStream>()),
        ("wasi:io/poll", "pollable") => Some(ResourceType::host::<DynPollable>()),
        ("wasi:io/error", "error") => Some(ResourceType::host::<IoError>()),
        _ => None,
    }
}

fn prepare(component: Component, engine: &Engine) -> PyResult<HttpGuest> {
    let fail = |e: wasmtime::Error| LoadError::new_err(format!("{e:#}"));
    let mut linker = proxy_linker(engine).map_err(fail)?;
    link_traps(&mut linker, &component, engine).map_err(fail)?;
    let pre = linker.instantiate_pre(&component).map_err(fail)?;
    let pre = ProxyPre::new(pre).map_err(fail)?;
    Ok(HttpGuest { component, pre })
}

#[pymethods]
impl HttpGuest {
    /// Compile `wasm` (the GIL is let go meanwhile).
    #[staticmethod]
    fn compile(py: Python<'_>, wasm: &[u8], epoch_tick_seconds: f64) -> PyResult<Self> {
        let engine = engine(epoch_tick_seconds);
        let component = py
            .allow_threads(|| Component::new(engine, wasm))
            .map_err(|e| LoadError::new_err(format!("{e:#}")))?;
        prepare(component, engine)
    }

    /// Load what `serialize` wrote. The file is machine code run without checks: the
    /// caller makes sure only this user could have written it (image.py's cache rules).
    #[staticmethod]
    fn load(py: Python<'_>, path: &str, epoch_tick_seconds: f64) -> PyResult<Self> {
        let engine = engine(epoch_tick_seconds);
        // SAFETY: the file was written by `serialize` on this machine, in a directory the
        // caller checked no other user can write (see the method's doc).
        let component = py
            .allow_threads(|| unsafe { Component::deserialize_file(engine, path) })
            .map_err(|e| LoadError::new_err(format!("{e:#}")))?;
        prepare(component, engine)
    }

    /// The compiled code, for `load` to read back.
    fn serialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .component
            .serialize()
            .map_err(|e| LoadError::new_err(format!("{e:#}")))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A new instance; a guest that traps while starting raises GuestTrap.
    fn instantiate(&self, py: Python<'_>) -> PyResult<HttpInstance> {
        let pre = self.pre.clone();
        py.allow_threads(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|e| LoadError::new_err(format!("no tokio runtime: {e}")))?;
            let stdout = Captured::default();
            let stderr = Captured::default();
            let wasi = WasiCtx::builder()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build();
            let state = GuestState {
                wasi,
                http: WasiHttpCtx::new(),
                hooks: AsOnThePythonHost,
                table: ResourceTable::new(),
            };
            let mut store = Store::new(pre.engine(), state);
            store.set_epoch_deadline(NO_DEADLINE_TICKS);
            let proxy = runtime
                .block_on(pre.instantiate_async(&mut store))
                .map_err(|e| GuestTrap::new_err(format!("instantiation failed: {e:?}")))?;
            let running = Running {
                store,
                proxy,
                runtime,
                stdout,
                stderr,
                dead: false,
            };
            Ok(HttpInstance {
                running: Mutex::new(running),
            })
        })
    }
}

struct Running {
    store: Store<GuestState>,
    proxy: Proxy,
    runtime: tokio::runtime::Runtime,
    stdout: Captured,
    stderr: Captured,
    dead: bool,
}

/// One instance of an HttpGuest, used by one thread at a time (the pool's worker, or the
/// event loop's thread once calls run inline).
#[pyclass(module = "wasmcloud_native", frozen)]
struct HttpInstance {
    running: Mutex<Running>,
}

/// What a call answers Python with: status, headers, body, the guest's stdout and stderr,
/// and the exception a pending body's reader raised (None if none did).
type Answer<'py> = (
    u16,
    Vec<(String, Bound<'py, PyBytes>)>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Option<PyErr>,
);

#[pymethods]
impl HttpInstance {
    /// How many epoch ticks the next calls may run before wasmtime interrupts them.
    fn set_epoch_deadline(&self, py: Python<'_>, ticks: u64) {
        py.allow_threads(|| self.lock().store.set_epoch_deadline(ticks));
    }

    /// Call wasi:http/incoming-handler.handle. `body` is the request body's bytes, or a
    /// callable that returns them, called (with the GIL) only if the guest reads the body.
    /// A response body over `max_body` bytes answers 500.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (method, scheme, authority, path_with_query, headers, body, max_body))]
    fn handle<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        scheme: &str,
        authority: &str,
        path_with_query: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Bound<'py, PyAny>,
        max_body: usize,
    ) -> PyResult<Answer<'py>> {
        let request_body = match body.downcast::<PyBytes>() {
            Ok(bytes) => RequestBody::Ready(Some(Bytes::copy_from_slice(bytes.as_bytes()))),
            Err(_) => RequestBody::Later(Some(body.unbind())),
        };
        let failure = Arc::new(Mutex::new(None));
        let request = http_request(method, scheme, authority, path_with_query, headers)?;
        let wasi_scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        let request = request.map(|()| LazyBody {
            body: request_body,
            failure: failure.clone(),
        });
        // The instance's lock is taken without the GIL: a call holding it may need the GIL
        // (a body still arriving is read through Python).
        let (outcome, stdout, stderr) = py.allow_threads(|| {
            let mut running = self.lock();
            if running.dead {
                let dead = Failure::Trap("instance is dead after an earlier trap".into());
                return (Err(dead), Vec::new(), Vec::new());
            }
            let outcome = running.serve(wasi_scheme, request, max_body);
            if let Err(Failure::Trap(_)) = outcome {
                running.dead = true;
            }
            (outcome, running.stdout.take(), running.stderr.take())
        });
        let (status, headers, content) = match outcome {
            Ok(answer) => answer,
            Err(Failure::Trap(message)) => {
                // What the guest wrote before it trapped says why (a panic's message).
                let output = (
                    PyBytes::new(py, &stdout).unbind(),
                    PyBytes::new(py, &stderr).unbind(),
                );
                return Err(GuestTrap::new_err((message, output.0, output.1)));
            }
            Err(Failure::Refused(message)) => return Err(BadRequest::new_err(message)),
        };
        let headers = headers
            .into_iter()
            .map(|(k, v)| (k, PyBytes::new(py, &v)))
            .collect();
        let failed = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok((
            status,
            headers,
            PyBytes::new(py, &content),
            PyBytes::new(py, &stdout),
            PyBytes::new(py, &stderr),
            failed,
        ))
    }
}

impl HttpInstance {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request's URI. Without an authority it is the path alone, and wasmtime-wasi-http
/// takes the authority from the host header (and refuses a request that has neither).
/// An empty path is "/": a URI cannot carry none.
fn uri(
    scheme: &str,
    authority: &str,
    path_with_query: &str,
) -> Result<hyper::Uri, hyper::http::Error> {
    let path = if path_with_query.is_empty() {
        "/"
    } else {
        path_with_query
    };
    let builder = hyper::Uri::builder();
    let builder = if authority.is_empty() {
        builder
    } else {
        builder.scheme(scheme).authority(authority)
    };
    builder.path_and_query(path).build()
}

fn http_request(
    method: &str,
    scheme: &str,
    authority: &str,
    path_with_query: &str,
    headers: Vec<(String, Vec<u8>)>,
) -> PyResult<hyper::Request<()>> {
    let refuse = |what: String| BadRequest::new_err(what);
    let mut builder = hyper::Request::builder()
        .method(
            hyper::Method::from_bytes(method.as_bytes())
                .map_err(|_| refuse(format!("method {method:?} is not an HTTP method")))?,
        )
        .uri(uri(scheme, authority, path_with_query).map_err(|e| {
            refuse(format!(
                "{scheme}://{authority}{path_with_query} is not a URI: {e}"
            ))
        })?);
    for (name, value) in headers {
        let header = hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            refuse(format!(
                "header name {name:?} is not a valid HTTP header name"
            ))
        })?;
        let value = hyper::header::HeaderValue::from_bytes(&value).map_err(|_| {
            refuse(format!(
                "header {name}'s value is not a valid HTTP header value"
            ))
        })?;
        builder = builder.header(header, value);
    }
    builder
        .body(())
        .map_err(|e| refuse(format!("the request is not valid HTTP: {e}")))
}

enum Failure {
    Trap(String),
    Refused(String),
}

type Parts = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

impl Running {
    /// Run one call to completion: the guest's writes to the response body are read while
    /// it runs (the body's channel holds one chunk), and whatever it wrote is the body.
    fn serve(
        &mut self,
        scheme: Scheme,
        request: hyper::Request<LazyBody>,
        max_body: usize,
    ) -> Result<Parts, Failure> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let data = self.store.data_mut();
        let incoming = data
            .http()
            .new_incoming_request(scheme, request)
            .map_err(|e| Failure::Refused(format!("{e:#}")))?;
        let outparam = data
            .http()
            .new_response_outparam(sender)
            .map_err(|e| Failure::Refused(format!("{e:#}")))?;
        let handler = self.proxy.wasi_http_incoming_handler();
        let call = handler.call_handle(&mut self.store, incoming, outparam);
        self.runtime.block_on(respond(call, receiver, max_body))
    }
}

type Sent = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;
/// The status and headers of the response the guest set, or the error it set instead.
type Head = Result<(u16, Vec<(String, Vec<u8>)>), ErrorCode>;

/// Drive the guest's call and read its response alongside; see `Running::serve`.
async fn respond(
    call: impl Future<Output = wasmtime::Result<()>>,
    mut receiver: tokio::sync::oneshot::Receiver<Sent>,
    max_body: usize,
) -> Result<Parts, Failure> {
    let mut call = std::pin::pin!(call);
    let mut response: Option<Head> = None;
    let mut unset = false; // the guest dropped the outparam without setting it
    let mut reading = Reading::new(max_body);
    loop {
        tokio::select! {
            result = &mut call => {
                result.map_err(|e| Failure::Trap(format!("{e:?}")))?;
                break;
            }
            // A guest that runs on after dropping its outparam is driven to the end of its
            // call all the same: an instance left inside a call cannot be entered again.
            sent = &mut receiver, if response.is_none() && !unset => match sent {
                Ok(sent) => response = Some(reading.start(sent)),
                Err(_) => unset = true,
            },
            more = reading.next(), if reading.open() => reading.add(more),
        }
    }
    // The call returned: a response set at its very end, and what the body already holds
    // (a guest that returns without finishing its body leaves the rest unsent). Outside
    // tokio's budget: a call that used it up must not make the rest look not yet written.
    tokio::task::unconstrained(async {
        if response.is_none() && !unset {
            if let Ok(sent) = receiver.try_recv() {
                response = Some(reading.start(sent));
            }
        }
        while reading.open() {
            match futures_now(reading.next()) {
                Some(more) => reading.add(more),
                None => break,
            }
        }
    })
    .await;
    match response {
        None => Ok(text(
            500,
            "the component returned without setting a response",
        )),
        Some(Err(code)) => {
            let case = case_name(&format!("{code:?}"));
            Ok(text(
                500,
                &format!("the component answered with error {case}"),
            ))
        }
        Some(Ok(status_and_headers)) => {
            if reading.over_limit {
                return Ok(text(
                    500,
                    &format!("the response body is over {max_body} bytes"),
                ));
            }
            let (status, headers) = status_and_headers;
            Ok((status, headers, reading.content.to_vec()))
        }
    }
}

/// An error-code's WIT case name in lower case, from its Debug form
/// ("HttpRequestDenied" or "InternalError(Some(..))" -> "http-request-denied", ...).
fn case_name(debug: &str) -> String {
    let variant = debug.rsplit("::").next().unwrap_or(debug);
    let mut name = String::new();
    for c in variant.chars().take_while(|c| c.is_ascii_alphanumeric()) {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

fn text(status: u16, message: &str) -> Parts {
    let headers = vec![(
        "content-type".to_string(),
        b"text/plain; charset=utf-8".to_vec(),
    )];
    (status, headers, message.as_bytes().to_vec())
}

/// Poll a future once: its output if it is ready now.
fn futures_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The response body as the guest writes it.
struct Reading {
    body: Option<HyperOutgoingBody>,
    content: BytesMut,
    max_body: usize,
    over_limit: bool,
}

type Frames = Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>;

impl Reading {
    fn new(max_body: usize) -> Self {
        Reading {
            body: None,
            content: BytesMut::new(),
            max_body,
            over_limit: false,
        }
    }

    /// Take the response the guest set: its status and headers now, its body as it comes.
    fn start(&mut self, sent: Sent) -> Head {
        let (parts, body) = sent?.into_parts();
        self.body = Some(body);
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect();
        Ok((parts.status.as_u16(), headers))
    }

    fn open(&self) -> bool {
        self.body.is_some()
    }

    async fn next(&mut self) -> Frames {
        match self.body.as_mut() {
            Some(body) => body.frame().await,
            None => std::future::pending().await,
        }
    }

    fn add(&mut self, more: Frames) {
        match more {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if self.content.len() + data.len() > self.max_body {
                        // Dropping the body closes the guest's stream: its writes fail.
                        self.over_limit = true;
                        self.body = None;
                        return;
                    }
                    self.content.extend_from_slice(&data);
                }
            }
            // The end, or a body the guest dropped unfinished: what came is the body.
            Some(Err(_)) | None => self.body = None,
        }
    }
}

/// A request body: its bytes, or a Python callable that returns them when the guest
/// first reads (the agent's pending body, still arriving over wRPC).
enum RequestBody {
    Ready(Option<Bytes>),
    Later(Option<Py<PyAny>>),
}

struct LazyBody {
    body: RequestBody,
    /// The exception the callable raised, handed back to Python after the call.
    failure: Arc<Mutex<Option<PyErr>>>,
}

impl Body for LazyBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let data = match &mut self.body {
            RequestBody::Ready(data) => data.take(),
            RequestBody::Later(source) => match source.take() {
                None => None,
                Some(source) => {
                    let read = Python::with_gil(|py| {
                        let value = source.call0(py)?;
                        let bytes = value.downcast_bound::<PyBytes>(py)?;
                        Ok::<_, PyErr>(Bytes::copy_from_slice(bytes.as_bytes()))
                    });
                    match read {
                        Ok(bytes) => Some(bytes),
                        Err(error) => {
                            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                            let why = "the request body did not arrive".to_string();
                            return Poll::Ready(Some(Err(ErrorCode::InternalError(Some(why)))));
                        }
                    }
                }
            },
        };
        Poll::Ready(data.filter(|d| !d.is_empty()).map(|d| Ok(Frame::data(d))))
    }
}

/// The guest's stdout or stderr, kept for the agent to log after each call.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = CAPTURE_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len())) // beyond the limit, output is dropped, never blocked
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[pymodule]
fn wasmcloud_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HttpGuest>()?;
    m.add_class::<HttpInstance>()?;
    m.add("LoadError", m.py().get_type::<LoadError>())?;
    m.add("GuestTrap", m.py().get_type::<GuestTrap>())?;
    m.add("BadRequest", m.py().get_type::<BadRequest>())?;
    m.add("WASMTIME_VERSION", "48.0.0")?;
    Ok(())
}
