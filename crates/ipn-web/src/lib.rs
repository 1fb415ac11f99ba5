//! What the gateway and the shop share on the web: the HTTP serving of both
//! ([`serve`], with its [`Limits`] on slow and idle clients), and for their
//! server-rendered pages the script that refreshes parts of a page in place,
//! the check that a form post comes from the service's own pages
//! ([`same_origin`]), the one HTML escaper and the security headers of every
//! page (`html`), and the counting of wrong keys and costly requests per
//! client (`throttle`).
//!
//! - `serve/`: the accept loop and its connection cap (`mod.rs`), one
//!   connection with its header and idle timeouts (`connection.rs`), the
//!   request body's deadline (`body.rs`).
//! - `origin.rs`: [`same_origin`].
//! - `html.rs`: [`html::escape`] and the headers of every page.
//! - `throttle.rs`: counting per client, with a lock only where it is needed.
//! - `live.js`: the script, served by [`live_js`].
//!
//! `live.js` is the one script of the gateway's dashboard and of the shop's
//! pages: an element with an `id` and `data-live="SECONDS"` is refreshed in
//! place from the same URL every that many seconds (see the file's own
//! notes). Pages load it as `<script src=… defer>` under a CSP of
//! `script-src 'self'; connect-src 'self'`, with no inline script.

pub mod html;
mod origin;
mod serve;
pub mod throttle;

pub use html::escape;
pub use origin::same_origin;
pub use serve::{Limits, serve};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The script, built into the binary.
pub const LIVE_JS: &str = include_str!("live.js");

/// The header the script sends on its refreshes, which are no sign that a
/// person is at the page (the dashboard does not count them as activity).
pub const LIVE_HEADER: &str = "x-live-refresh";

/// FNV-1a of the script: its `ETag`, so a browser revalidates it cheaply and
/// never runs a stale copy after an upgrade.
const LIVE_JS_TAG: u64 = {
    let bytes = LIVE_JS.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
};

/// The script's answer: no session needed (it holds nothing secret); a 304
/// when the browser's copy is current.
pub async fn live_js(headers: HeaderMap) -> Response {
    let etag = format!("\"{LIVE_JS_TAG:016x}\"");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        LIVE_JS.into_response()
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    response
}
