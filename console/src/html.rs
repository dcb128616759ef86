//! HTML by hand: escaping, the page layout, and the small formatters every
//! page uses (durations, times, sizes, status badges).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::response::Html;

/// The stylesheet, served at `/static/console.css`.
pub(crate) const CSS: &str = include_str!("static/console.css");

/// The script (live refresh of the overview), served at `/static/console.js`.
pub(crate) const JS: &str = include_str!("static/console.js");

/// `text` safe inside HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a query-string value.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What the header of a page says about the console.
pub(crate) struct Chrome<'a> {
    /// The database, redacted.
    pub(crate) database: &'a str,
    /// The schema.
    pub(crate) schema: &'a str,
    /// `read-only`, `log in to act` or `admin`.
    pub(crate) access: crate::auth::Access,
    /// The CSRF token (for the log-out form).
    pub(crate) csrf: &'a str,
}

/// The navigation: (path, label).
const NAV: [(&str, &str); 4] = [
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/trees", "Trees"),
    ("/timeline", "Timeline"),
];

/// A full page: header with navigation, `body` below.
pub(crate) fn page(title: &str, active: &str, chrome: &Chrome<'_>, body: &str) -> Html<String> {
    let mut nav = String::new();
    for (path, label) in NAV {
        let class = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let access = match chrome.access {
        crate::auth::Access::ReadOnly => {
            "<span class=\"access ro\" id=\"access\">read-only (no admin token)</span>".to_owned()
        }
        crate::auth::Access::Viewer => format!(
            "<a class=\"access\" id=\"access\" href=\"/login?next={}\">log in to act</a>",
            url_encode(active)
        ),
        crate::auth::Access::Admin => format!(
            "<form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><span class=\"access admin\" id=\"access\">admin</span> <button type=\"submit\">log out</button></form>",
            escape(chrome.csrf)
        ),
    };
    let header = format!(
        "<header><h1>pjp console</h1><nav>{nav}</nav><div class=\"where\">{} · schema <code>{}</code> · {access}</div></header>",
        escape(chrome.database),
        escape(chrome.schema),
    );
    Html(document(title, &header, body))
}

/// A page with no navigation state (an error page).
pub(crate) fn bare_page(title: &str, body: &str) -> Html<String> {
    let header = "<header><h1>pjp console</h1><nav><a href=\"/\">Overview</a><a href=\"/jobs\">Jobs</a><a href=\"/trees\">Trees</a><a href=\"/timeline\">Timeline</a></nav></header>";
    Html(document(title, header, body))
}

fn document(title: &str, header: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · pjp console</title><link rel=\"stylesheet\" href=\"/static/console.css\"><script src=\"/static/console.js\" defer></script></head><body>{header}<main>{body}</main></body></html>\n",
        escape(title)
    )
}

/// A duration as an operator reads it: `850 ms`, `12.3 s`, `4 min 10 s`,
/// `2 h 5 min`.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3_600.0 {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!(
            "{} h {} min",
            d.as_secs() / 3_600,
            (d.as_secs() % 3_600) / 60
        )
    }
}

/// Signed seconds as a duration (`in 2.0 s`, `1.5 s ago`).
pub(crate) fn relative(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_owned();
    }
    let d = Duration::from_secs_f64(seconds.abs());
    if seconds >= 0.0 {
        format!("in {}", duration(d))
    } else {
        format!("{} ago", duration(d))
    }
}

/// A point in time, UTC, to the second.
pub(crate) fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// An optional point in time (`—` for none).
pub(crate) fn maybe_time(at: Option<SystemTime>) -> String {
    at.map_or_else(|| "—".to_owned(), time)
}

/// A size in bytes: `812 B`, `64.0 KiB`, `3.2 MiB`.
pub(crate) fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    }
}

/// A job status as a coloured badge.
pub(crate) fn status(status: &str) -> String {
    format!(
        "<span class=\"status s-{s}\">{s}</span>",
        s = escape(status)
    )
}

/// The colour a status is drawn in (the tree picture; the badges use the
/// same through the stylesheet).
pub(crate) fn status_colour(status: &str) -> &'static str {
    match status {
        "waiting" => "#b7c4d6",
        "queued" => "#7fa7e0",
        "running" => "#f0b429",
        "succeeded" => "#3f9c5a",
        "failed" => "#c2410c",
        "dead" => "#b91c1c",
        "cancelled" => "#8a8a8a",
        _ => "#444444",
    }
}

/// A hidden CSRF field.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
    }

    #[test]
    fn formats_read_as_an_operator_expects() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(duration(Duration::from_secs(250)), "4 min 10 s");
        assert_eq!(duration(Duration::from_secs(7_500)), "2 h 5 min");
        assert_eq!(relative(-1.5), "1.5 s ago");
        assert_eq!(relative(2.0), "in 2.0 s");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(65_536), "64.0 KiB");
    }
}
