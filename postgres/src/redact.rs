//! Database and store URLs without their secrets, for errors, logs and
//! pages.
//!
//! A URL given by an operator may not parse (a port of 99999, a broken IPv6
//! host), so the password is found by the URL's shape, not by a parser that
//! would give up and leave the text as it was.

/// `url` with its password replaced by `****`: the one in the user-info
/// (`user:password@`) and any `password` or `sslpassword` query parameter.
/// Works on text that does not parse as a URL.
///
/// ```
/// use pjp_postgres::redact_url;
///
/// assert_eq!(
///     redact_url("postgres://app:s3cret@db:99999/jobs?sslpassword=k3y"),
///     "postgres://app:****@db:99999/jobs?sslpassword=****"
/// );
/// assert_eq!(redact_url("postgres://db/jobs"), "postgres://db/jobs");
/// ```
pub fn redact_url(url: &str) -> String {
    scrub(url, url)
}

/// `text` (an error message, say) with every secret of `url` in it replaced
/// by `****`, and `url` itself shown redacted.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets(url) {
        out = out.replace(secret, "****");
    }
    out
}

/// The secrets in `url`, longest first (so that one containing another is
/// replaced whole).
fn secrets(url: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The authority ends at the first `/`, `?` or `#` after the last `@`
    // that comes before any of them: `user:pa/ss@host` has a password with a
    // `/` in it only if an `@` follows, so look for the `@` first.
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..end].rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
        && !password.is_empty()
    {
        found.push(password);
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split('#').next().unwrap_or(query);
        for pair in query.split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && (name.eq_ignore_ascii_case("password")
                    || name.eq_ignore_ascii_case("sslpassword"))
                && !value.is_empty()
            {
                found.push(value);
            }
        }
    }
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_whatever_the_url_looks_like() {
        for (url, secret) in [
            ("postgres://u:s3cret@127.0.0.1:99999/db", "s3cret"),
            ("postgres://u:s3cret@127.0.0.1:port/db", "s3cret"),
            ("postgres://u:s3cret@[::1/db", "s3cret"),
            ("postgres://u:s3cret@[fe80::1%eth0]:5432/db", "s3cret"),
            (
                "postgres://u@host/db?password=s3cret&sslmode=require",
                "s3cret",
            ),
            (
                "postgres://u@host/db?sslmode=require&PASSWORD=s3cret#x",
                "s3cret",
            ),
            ("postgres://u:pa:ss@word@host/db", "pa:ss@word"),
            ("postgresql://u:p%40ss@host/db", "p%40ss"),
            ("u:s3cret@host/db", "s3cret"),
        ] {
            let redacted = redact_url(url);
            assert!(!redacted.contains(secret), "{url} -> {redacted}");
            assert!(redacted.contains("****"), "{url} -> {redacted}");
            let message = format!("cannot parse `{url}`: near `{secret}`");
            assert!(!scrub(&message, url).contains(secret), "{message}");
        }
        for plain in [
            "postgres://u@host/db",
            "postgres://host:5432/db?sslmode=disable",
            "",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }
}
