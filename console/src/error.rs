//! [`ConsoleError`] (why the console could not run) and [`PageError`] (why
//! one request failed, rendered as a page with its status code).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pjp_postgres::QueueError;

use crate::html;

/// Why the console could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the console's server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The random tokens (CSRF, session) could not be drawn.
    #[error("cannot draw random tokens: {0}")]
    Random(String),
}

/// Why one request failed: rendered as a page with its status code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// No such page or job.
    #[error("{0}")]
    NotFound(String),
    /// A parameter that cannot be used.
    #[error("{0}")]
    BadRequest(String),
    /// A write without a valid token or session.
    #[error("{0}")]
    Unauthorized(String),
    /// A write refused: read-only console, bad CSRF token or origin.
    #[error("{0}")]
    Forbidden(String),
    /// Something the console itself could not do (draw a picture).
    #[error("{0}")]
    Internal(String),
    /// The queue failed.
    #[error("the queue failed: {0}")]
    Queue(#[from] QueueError),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Queue(QueueError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Self::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Queue(error) = &self {
            tracing::warn!(%error, "console request failed");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<section class=\"error\" data-status=\"{code}\"><h2>{code} {title}</h2><p class=\"message\">{message}</p><p><a href=\"/\">Back to the overview</a></p></section>",
            code = status.as_u16(),
            title = html::escape(title),
            message = html::escape(&self.to_string()),
        );
        (status, html::bare_page(title, &body)).into_response()
    }
}
