//! The router (every page and action, the guards around them) and the
//! server that runs it.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pjp_postgres::PgQueue;
use tokio::net::TcpListener;

use crate::config::ConsoleConfig;
use crate::error::{ConsoleError, PageError};
use crate::state::Console;
use crate::{actions, auth, html, job, jobs, overview, timeline, tree};

/// The console's routes on `queue`, for [`serve`] or for a server of the
/// caller's (a test drives it with `tower::ServiceExt::oneshot`).
///
/// On a loopback [`listen`](ConsoleConfig::listen) address a request whose
/// `Host` is not a loopback name gets 421 (DNS rebinding). Every response
/// carries a strict `Content-Security-Policy` (scripts and styles only from
/// the console itself), `X-Frame-Options: DENY` and `Cache-Control:
/// no-store`.
///
/// # Errors
///
/// [`ConsoleError::Random`] when the operating system gives no randomness
/// for the CSRF and session tokens.
pub fn router(queue: PgQueue, config: ConsoleConfig) -> Result<Router, ConsoleError> {
    Ok(routes(Console::new(queue, config)?))
}

fn routes(console: Console) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/overview/live", get(overview::live))
        .route("/jobs", get(jobs::page))
        .route("/jobs/{id}", get(job::page))
        .route("/trees", get(tree::list))
        .route("/trees/{id}", get(tree::page))
        .route("/trees/{id}/svg", get(tree::svg))
        .route("/timeline", get(timeline::page))
        .route("/timeline.svg", get(timeline::svg))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/actions/requeue", post(actions::requeue))
        .route("/actions/requeue-dead", post(actions::requeue_dead))
        .route("/actions/cancel", post(actions::cancel))
        .route("/actions/cancel-tree", post(actions::cancel_tree))
        .route("/actions/purge", post(actions::purge))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::JS,
    )
        .into_response()
}

async fn not_found(request: Request) -> PageError {
    PageError::NotFound(format!("no page at {}", request.uri().path()))
}

/// The content security policy of every page: nothing from elsewhere, no
/// inline script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses requests for another host on a loopback console, and adds the
/// security headers to every response.
async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    if console.config().listen.ip().is_loopback() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        if !auth::is_loopback_host(host) {
            let page = html::bare_page(
                "Misdirected request",
                "<section class=\"error\"><h2>421 Misdirected Request</h2><p class=\"message\">This console listens on loopback and answers only requests for a loopback host (127.0.0.1, localhost, [::1]).</p></section>",
            );
            return secure((StatusCode::MISDIRECTED_REQUEST, page).into_response());
        }
    }
    secure(next.run(request).await)
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Binds the console's [`listen`](ConsoleConfig::listen) address.
///
/// # Errors
///
/// [`ConsoleError::Bind`] when the address cannot be bound.
pub async fn bind(config: &ConsoleConfig) -> Result<TcpListener, ConsoleError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| ConsoleError::Bind {
            addr: config.listen,
            source,
        })
}

/// Serves the console on its [`listen`](ConsoleConfig::listen) address
/// until `shutdown` resolves; see [`serve_on`].
///
/// # Errors
///
/// [`ConsoleError::Bind`] when the address cannot be bound, and those of
/// [`serve_on`].
///
/// # Cancellation safety
///
/// Dropping it stops the server at once (open requests are dropped); resolve
/// `shutdown` to let them finish.
pub async fn serve(
    queue: PgQueue,
    config: ConsoleConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let listener = bind(&config).await?;
    serve_on(listener, queue, config, shutdown).await
}

/// Serves the console on `listener` (whose address replaces the
/// configured one) until `shutdown` resolves, letting open requests finish.
///
/// Beside the pages it samples the running jobs every
/// [`refresh`](ConsoleConfig::refresh) interval, so the timeline can name
/// the worker that ran a job after it finished (a finished row keeps no
/// lease owner).
///
/// # Errors
///
/// [`ConsoleError::Serve`] when the server fails; [`ConsoleError::Random`]
/// as [`router`].
///
/// # Cancellation safety
///
/// Dropping it stops the server at once (open requests are dropped); resolve
/// `shutdown` to let them finish.
pub async fn serve_on(
    listener: TcpListener,
    queue: PgQueue,
    mut config: ConsoleConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    if let Ok(addr) = listener.local_addr() {
        config.listen = addr;
    }
    let console = Console::new(queue, config)?;
    let sampler = tokio::spawn(sample(console.clone()));
    tracing::info!(
        listen = %console.config().listen,
        database = %console.config().database,
        writable = console.config().is_writable(),
        "console serving"
    );
    let served = axum::serve(listener, routes(console))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ConsoleError::Serve);
    sampler.abort();
    served
}

/// Remembers which worker holds each running job, every refresh interval.
async fn sample(console: Console) {
    let every = console.config().refresh.max(Duration::from_millis(500));
    loop {
        if let Err(error) = timeline::sample_running(&console).await {
            tracing::debug!(%error, "console could not sample the running jobs");
        }
        tokio::time::sleep(every).await;
    }
}
