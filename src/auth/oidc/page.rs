//! The HTML the browser sees at the end of a login: plain pages, no
//! JavaScript, every interpolated value escaped.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let text = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title></head>\n<body>\n<h1>{t}</h1>\n{body}\n</body></html>\n",
        t = escape(title)
    );
    let mut r = (status, text).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A login that did not register anything, and why.
pub fn refused(status: StatusCode, reason: &str) -> Response {
    html(
        status,
        "Login failed",
        &format!(
            "<p>{}</p>\n<p>No device was registered. Start again with \
             <code>tailscale up</code> if needed.</p>",
            escape(reason)
        ),
    )
}

pub fn logged_in(user: &str, device: &str) -> Response {
    html(
        StatusCode::OK,
        "Login successful",
        &format!(
            "<p>Device <b>{}</b> is now registered to <b>{}</b>. You can close this window.</p>",
            escape(device),
            escape(user)
        ),
    )
}

/// A login that passed a held Tailscale SSH check.
pub fn check_passed(user: &str, device: &str) -> Response {
    html(
        StatusCode::OK,
        "SSH login approved",
        &format!(
            "<p>Signed in as <b>{}</b>: the SSH login from <b>{}</b> proceeds now. \
             You can close this window.</p>",
            escape(user),
            escape(device)
        ),
    )
}

/// A login that did not pass a held SSH check, and why.
pub fn check_refused(status: StatusCode, reason: &str) -> Response {
    html(
        status,
        "SSH login not approved",
        &format!(
            "<p>{}</p>\n<p>Nothing was approved; the SSH login keeps waiting until \
             it is approved or expires.</p>",
            escape(reason)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
