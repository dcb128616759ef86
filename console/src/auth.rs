//! Who may write, and how a write proves it: the admin token (a log-in that
//! sets a `SameSite=Strict`, `HttpOnly` session cookie, or an
//! `Authorization: Bearer` header), a per-process CSRF token in every form,
//! and the request's `Origin` (or `Referer`) naming the console's own host.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::PageError;
use crate::html;
use crate::state::{Console, same_secret};

/// The session cookie's name.
const COOKIE: &str = "pjp_console_session";

/// What the requester may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No admin token is configured: nobody writes.
    ReadOnly,
    /// A token is configured and this requester has not logged in.
    Viewer,
    /// Logged in (or a bearer token): writes allowed.
    Admin,
}

/// The requester's access.
pub(crate) fn access(console: &Console, headers: &HeaderMap) -> Access {
    let Some(token) = &console.config().admin_token else {
        return Access::ReadOnly;
    };
    if bearer(headers).is_some_and(|b| same_secret(b, token))
        || session(headers).is_some_and(|s| same_secret(s, &console.inner.session))
    {
        Access::Admin
    } else {
        Access::Viewer
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Checks that a POST may write: an admin token is configured, the
/// requester holds it (bearer) or a session, and, for a session, the form's
/// CSRF token is this process's and the request comes from the console's
/// own pages.
pub(crate) fn check_write(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(), PageError> {
    let Some(token) = &console.config().admin_token else {
        return Err(PageError::Forbidden(
            "this console is read-only: start it with --admin-token (or PJP_ADMIN_TOKEN) to act"
                .into(),
        ));
    };
    if let Some(given) = bearer(headers) {
        // A header a browser never adds by itself: no CSRF token needed.
        return if same_secret(given, token) {
            Ok(())
        } else {
            Err(PageError::Unauthorized("wrong admin token".into()))
        };
    }
    if !session(headers).is_some_and(|s| same_secret(s, &console.inner.session)) {
        return Err(PageError::Unauthorized(
            "log in with the admin token first (/login)".into(),
        ));
    }
    check_form(console, headers, csrf)
}

/// The CSRF token and the origin of a form post.
fn check_form(console: &Console, headers: &HeaderMap, csrf: &str) -> Result<(), PageError> {
    if !same_secret(csrf, &console.inner.csrf) {
        return Err(PageError::Forbidden(
            "missing or stale CSRF token: reload the page and try again".into(),
        ));
    }
    same_origin(headers)
}

/// The request's `Origin` (else its `Referer`) must name the `Host` it was
/// sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let host = text(header::HOST).unwrap_or("");
    let from = text(header::ORIGIN)
        .filter(|o| *o != "null")
        .or_else(|| text(header::REFERER));
    let authority = from.and_then(|url| {
        let rest = url.split_once("://")?.1;
        Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
    });
    match authority {
        Some(authority) if !host.is_empty() && authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(PageError::Forbidden(
            "cross-site request refused: the form must be posted from this console's own pages"
                .into(),
        )),
    }
}

/// Where to go after logging in: a path of this console, never another
/// site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn login_page(console: &Console, headers: &HeaderMap, next: &str, failed: bool) -> Response {
    let chrome = crate::overview::chrome(console, headers);
    let body = if console.config().admin_token.is_none() {
        "<h2>Log in</h2><p>This console is read-only: it was started without an admin token (<code>--admin-token</code> or <code>PJP_ADMIN_TOKEN</code>), so there is nothing to log in to.</p>".to_owned()
    } else {
        format!(
            "<h2>Log in</h2>{}<form method=\"post\" action=\"/login\" class=\"filters\">{}<input type=\"hidden\" name=\"next\" value=\"{}\"><label>admin token<input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label><button type=\"submit\" id=\"login\">log in</button></form>",
            if failed {
                "<p class=\"error\">Wrong admin token.</p>"
            } else {
                ""
            },
            html::csrf_field(&console.inner.csrf),
            html::escape(next),
        )
    };
    let status = if failed {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, html::page("Log in", "/login", &chrome, &body)).into_response()
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    login_page(&console, &headers, local_path(query.next.as_deref()), false)
}

/// `POST /login`: the token for a session cookie.
pub(crate) async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let Some(token) = &console.config().admin_token else {
        return Err(PageError::Forbidden(
            "this console is read-only: there is nothing to log in to".into(),
        ));
    };
    check_form(&console, &headers, &form.csrf)?;
    let next = local_path(form.next.as_deref());
    if !same_secret(&form.token, token) {
        tracing::warn!("console log-in with a wrong admin token");
        return Ok(login_page(&console, &headers, next, true));
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        console.inner.session
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response())
}

/// `POST /logout`: forgets the session cookie.
pub(crate) async fn logout(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_form(&console, &headers, &form.csrf)?;
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// Whether `host` (a `Host` header) names this machine's loopback.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/jobs?status=dead")), "/jobs?status=dead");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "10.0.0.1:8080", "[fe80::1]:80", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn origins_must_name_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers).is_err(), "no origin, no referer");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&headers).is_err());
        headers.remove(header::ORIGIN);
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("http://127.0.0.1:8080/jobs/7"),
        );
        assert!(same_origin(&headers).is_ok());
    }
}
