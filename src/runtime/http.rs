//! The admin HTTP listener: `/metrics` (Prometheus text), `/healthz` (the process answers),
//! `/readyz` (taking calls: see [`Readiness`]), the admin API under `/api/v1/` (described by
//! `/api/v1/openapi.json`) and the wallboard page at `/`. Runtime layer: every live view comes from
//! the core task through [`AdminRequest`] (the transfer directory, being configuration, from the
//! configuration in force); changes need the bearer token of `[http] token_file`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::admin::{AdminRequest, BoardView, DirectoryEntryView};
use super::driver::CoreInput;
use crate::records::writer::Health;

/// The wallboard: one self-contained page (no CDN), polling `/api/v1/board`.
const WALLBOARD: &str = include_str!("wallboard.html");
/// The API's description.
pub const OPENAPI: &str = include_str!("openapi.json");
/// How long a request waits for the core before answering 503.
const CORE_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    core: mpsc::Sender<CoreInput>,
}

/// Serves the admin routes on `listener` until `stop` is cancelled; `core` takes admin requests.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    core: mpsc::Sender<CoreInput>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/", get(wallboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/board", get(board))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/directory", get(directory))
        .route("/api/v1/agents/{id}/pause", post(pause))
        .route("/api/v1/agents/{id}/resume", post(resume))
        .route("/api/v1/agents/{id}/supervise", post(supervise))
        .route("/api/v1/callbacks", get(callbacks))
        .route("/api/v1/callbacks/{id}/start", post(start_callback))
        .with_state(App { shared, core });
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
    {
        tracing::error!(error = %e, "admin HTTP listener failed");
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let text = app.shared.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// What `/readyz` checks: the configuration was loaded and validated and every listener bound
/// (both happen before this listener serves; the bound addresses are shown), the databases take
/// writes (a failed write makes the daemon not ready until a write succeeds again), and the daemon
/// is not draining.
#[derive(Debug)]
pub(super) struct Readiness {
    /// The SIP and HTTP addresses, once all are bound.
    sockets: std::sync::OnceLock<String>,
    /// Call records are kept (`[records] path`).
    records_kept: bool,
    /// The records writer's health.
    pub records: Health,
    /// Bindings are saved (`[registrar] database`).
    bindings_kept: bool,
    /// The bindings writer's health.
    pub bindings: Health,
}

impl Readiness {
    /// Nothing bound yet; databases as `config` keeps them.
    pub fn new(config: &crate::config::Config) -> Readiness {
        Readiness {
            sockets: std::sync::OnceLock::new(),
            records_kept: config.records.path.is_some(),
            records: Health::default(),
            bindings_kept: config.registrar.database.is_some(),
            bindings: Health::default(),
        }
    }

    /// Every listener is bound.
    pub fn bound(&self, udp: &[SocketAddr], tcp: &[SocketAddr], http: SocketAddr) {
        let list = |a: &[SocketAddr]| {
            let v: Vec<String> = a.iter().map(ToString::to_string).collect();
            if v.is_empty() { "-".to_string() } else { v.join(" ") }
        };
        let text = format!("SIP udp {} | tcp {} | HTTP {http}", list(udp), list(tcp));
        let _ = self.sockets.set(text);
    }
}

/// One line of `/readyz`.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn database_check(name: &'static str, kept: bool, health: &Health) -> Check {
    match (kept, health.problem()) {
        (false, _) => Check { name, ok: true, detail: "not kept".into() },
        (true, None) => Check { name, ok: true, detail: "writable".into() },
        (true, Some(why)) => Check { name, ok: false, detail: format!("writes failing: {why}") },
    }
}

/// 200 when every check passes, else 503; the body (JSON) names each check and why it fails.
async fn readyz(State(app): State<App>) -> Response {
    let ready = &app.shared.ready;
    let checks = [
        Check {
            name: "config",
            ok: true,
            detail: format!("loaded from {}", app.shared.config().origin.display()),
        },
        match ready.sockets.get() {
            Some(bound) => Check { name: "sockets", ok: true, detail: bound.clone() },
            None => Check { name: "sockets", ok: false, detail: "not bound yet".into() },
        },
        database_check("records", ready.records_kept, &ready.records),
        database_check("registrar_database", ready.bindings_kept, &ready.bindings),
        match app.shared.is_draining() {
            true => Check { name: "draining", ok: false, detail: "draining (SIGTERM)".into() },
            false => Check { name: "draining", ok: true, detail: "no".into() },
        },
    ];
    let ok = checks.iter().all(|c| c.ok);
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": ok, "checks": checks }))).into_response()
}

async fn wallboard() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], WALLBOARD)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The core's current view, or 503 when the core does not answer in time.
async fn view(app: &App) -> Result<BoardView, Response> {
    let (tx, rx) = oneshot::channel();
    let unavailable =
        || (StatusCode::SERVICE_UNAVAILABLE, "core busy or stopping\n").into_response();
    app.core.send(CoreInput::Admin(AdminRequest::Board(tx))).await.map_err(|_| unavailable())?;
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(view)) => Ok(view),
        _ => Err(unavailable()),
    }
}

async fn board(State(app): State<App>) -> Result<Json<BoardView>, Response> {
    view(&app).await.map(Json)
}

async fn queue(State(app): State<App>) -> Result<Response, Response> {
    let v = view(&app).await?;
    Ok(Json(serde_json::json!({ "queue": v.queue, "lines": v.lines })).into_response())
}

async fn agents(State(app): State<App>) -> Result<Response, Response> {
    let v = view(&app).await?;
    Ok(Json(serde_json::json!({ "agents": v.agents })).into_response())
}

async fn calls(State(app): State<App>) -> Result<Response, Response> {
    let v = view(&app).await?;
    Ok(Json(serde_json::json!({ "calls": v.calls })).into_response())
}

/// The transfer directory in force (configuration: no need to ask the core).
async fn directory(State(app): State<App>) -> Response {
    let config = app.shared.config();
    let entries = DirectoryEntryView::list(&config.directory);
    Json(serde_json::json!({ "directory": entries })).into_response()
}

async fn pause(state: State<App>, id: Path<String>, headers: HeaderMap) -> Response {
    set_paused(state, id, headers, true).await
}

async fn resume(state: State<App>, id: Path<String>, headers: HeaderMap) -> Response {
    set_paused(state, id, headers, false).await
}

async fn set_paused(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    pause: bool,
) -> Response {
    if let Some(refusal) = refusal(&app, &headers) {
        return refusal;
    }
    let (tx, rx) = oneshot::channel();
    let request = AdminRequest::SetPaused { agent: id.clone(), pause, reply: tx };
    if app.core.send(CoreInput::Admin(request)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response();
    }
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(true)) => {
            let action = if pause { "paused" } else { "resumed" };
            tracing::info!(agent = %id, action, "supervisor command");
            Json(serde_json::json!({ "agent": id, "action": action })).into_response()
        }
        Ok(Ok(false)) => (StatusCode::NOT_FOUND, "no such agent\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "core busy or stopping\n").into_response(),
    }
}

/// The body of `POST /api/v1/agents/{id}/supervise`.
#[derive(Debug, serde::Deserialize)]
struct SuperviseBody {
    /// The supervisor's account id.
    supervisor: String,
    /// `listen`, `whisper` or `barge`.
    mode: String,
}

/// Calls supervisor `supervisor` into the bridged call of operator `id` in `mode`: 202 while the
/// supervisor's phone rings; 400 for a bad body, 403 for an account that is no supervisor, 404
/// for an unknown account or an operator in no call, 409 when the call or the supervisor is
/// already in a supervision or the supervisor's phone is not registered, 503 without a free port.
async fn supervise(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::acd::b2bua::SuperviseError as E;
    if let Some(refusal) = refusal(&app, &headers) {
        return refusal;
    }
    let bad = |why: &str| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    let Ok(body) = serde_json::from_slice::<SuperviseBody>(&body) else {
        return bad("expected {\"supervisor\": \"<id>\", \"mode\": \"listen|whisper|barge\"}");
    };
    let Some(mode) = crate::config::SupervisionMode::parse(&body.mode) else {
        return bad("mode is listen, whisper or barge");
    };
    let (tx, rx) = oneshot::channel();
    let supervisor = body.supervisor.clone();
    let request = AdminRequest::Supervise { operator: id.clone(), supervisor, mode, reply: tx };
    if app.core.send(CoreInput::Admin(request)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response();
    }
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(Ok(()))) => {
            let (supervisor, mode) = (body.supervisor.as_str(), mode.as_str());
            tracing::info!(agent = %id, supervisor, mode, "supervisor called in");
            let answer = serde_json::json!({ "agent": id, "supervisor": supervisor, "mode": mode });
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Ok(Ok(Err(e))) => {
            let status = match e {
                E::NotSupervisor => StatusCode::FORBIDDEN,
                E::UnknownSupervisor | E::UnknownOperator | E::NotInCall => StatusCode::NOT_FOUND,
                E::AlreadySupervised | E::SupervisorBusy | E::NotRegistered => StatusCode::CONFLICT,
                E::NoMedia => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, format!("{e}\n")).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "core busy or stopping\n").into_response(),
    }
}

/// The records file when call-backs are kept (`[records] callbacks`).
fn callbacks_file(app: &App) -> Option<std::path::PathBuf> {
    let config = app.shared.config();
    config.records.path.clone().filter(|_| config.records.callbacks)
}

/// The answer while call-backs are off.
fn callbacks_off() -> Response {
    let text = "call-backs are off: set [records] callbacks = true\n";
    (StatusCode::FORBIDDEN, text).into_response()
}

/// Runs a blocking read of the records off the async workers; 503 when it fails.
async fn read_records<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let unavailable = |why: String| {
        tracing::error!(error = %why, "reading call-backs failed");
        (StatusCode::SERVICE_UNAVAILABLE, "records not readable\n").into_response()
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// The pending call-backs, oldest first: no number (a pseudonym and the last two digits).
async fn callbacks(State(app): State<App>) -> Result<Response, Response> {
    let Some(path) = callbacks_file(&app) else { return Err(callbacks_off()) };
    let list = read_records(move || {
        let conn = crate::records::callbacks::open_reader(&path)?;
        crate::records::callbacks::pending(&conn, 500)
    })
    .await?;
    Ok(Json(serde_json::json!({ "callbacks": list })).into_response())
}

/// The body of `POST /api/v1/callbacks/{id}/start`.
#[derive(Debug, serde::Deserialize)]
struct StartCallback {
    /// The operator who calls back.
    agent: String,
}

/// Starts call-back `id` by the body's agent: tongdai rings the agent, then dials the caller.
/// 202 when started (the outcome goes to the records); 403 call-backs off; 404 unknown (or
/// answered) call-back or agent; 409 agent busy or not logged in, or this call-back already in
/// progress; 503 no line, trunk channel, RTP port or `[trunk] outbound`.
async fn start_callback(
    State(app): State<App>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<StartCallback>,
) -> Result<Response, Response> {
    if let Some(refusal) = refusal(&app, &headers) {
        return Err(refusal);
    }
    let Some(path) = callbacks_file(&app) else { return Err(callbacks_off()) };
    let target = read_records(move || {
        let conn = crate::records::callbacks::open_reader(&path)?;
        crate::records::callbacks::target(&conn, id)
    })
    .await?;
    let Some(target) = target else {
        return Err((StatusCode::NOT_FOUND, "no such pending call-back\n").into_response());
    };
    let (tx, rx) = oneshot::channel();
    let agent = body.agent.clone();
    let request = AdminRequest::StartCallback { agent: agent.clone(), target, reply: tx };
    let unavailable =
        || (StatusCode::SERVICE_UNAVAILABLE, "core busy or stopping\n").into_response();
    app.core.send(CoreInput::Admin(request)).await.map_err(|_| unavailable())?;
    use crate::acd::b2bua::CallbackRefusal as R;
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(Ok(()))) => {
            // The row id and the operator only: the number stays in the records.
            tracing::info!(id, agent = %agent, "call-back started");
            let started = serde_json::json!({ "id": id, "agent": agent, "started": true });
            Ok((StatusCode::ACCEPTED, Json(started)).into_response())
        }
        Ok(Ok(Err(why))) => {
            let status = match why {
                R::UnknownAgent => StatusCode::NOT_FOUND,
                R::NotRegistered | R::AgentBusy | R::InProgress => StatusCode::CONFLICT,
                R::Disabled => StatusCode::FORBIDDEN,
                R::NoLine | R::NoChannel | R::NoMedia | R::NoTrunk => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            Err((status, format!("{why}\n")).into_response())
        }
        _ => Err(unavailable()),
    }
}

/// Changes need `Authorization: Bearer <token>` with the token of `[http] token_file`, compared
/// in constant time; without a token file, changes are refused. `None`: authorised.
fn refusal(app: &App, headers: &HeaderMap) -> Option<Response> {
    let config = app.shared.config();
    let Some(path) = &config.http.token_file else {
        let text = "admin changes are disabled: set [http] token_file\n";
        return Some((StatusCode::FORBIDDEN, text).into_response());
    };
    let expected = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) | Err(_) => {
            tracing::error!(path = %path.display(), "admin token file missing or empty");
            let text = "admin token not readable on the server\n";
            return Some((StatusCode::SERVICE_UNAVAILABLE, text).into_response());
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        None
    } else {
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"tongdai\"")];
        Some((StatusCode::UNAUTHORIZED, challenge, "bearer token required\n").into_response())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
