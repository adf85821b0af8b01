//! The HTML the browser sees at the end of a login: plain pages, no
//! JavaScript, every interpolated value escaped.

use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::html::{escape, page as html};

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
