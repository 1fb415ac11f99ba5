//! Whether a form post comes from the service's own pages.
//!
//! A browser sends cookies and Basic credentials with any request to a
//! site, including a form another site makes it submit, so state-changing
//! posts must also show where they come from. `Origin` (or, when a browser
//! sends none, `Referer`, which the pages' `Referrer-Policy: same-origin`
//! keeps for same-site posts) must name the host the request was sent to
//! (`Host`), or the service's public URL. Browsers set both headers
//! themselves; a page elsewhere cannot forge them. A post with neither, or
//! with `Origin: null`, is refused.

use axum::http::{HeaderMap, header};
use url::Url;

/// Whether a `POST` comes from this service's own pages: its `Origin`, else
/// its `Referer`, names the requested `Host` or `public_url`'s host.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(source) = text(header::ORIGIN).or_else(|| text(header::REFERER)) else {
        return false;
    };
    let Some(source) = authority(source) else {
        return false; // `null`, or not a URL
    };
    let host = text(header::HOST).map(str::to_ascii_lowercase);
    host.as_deref() == Some(source.as_str())
        || authority(public_url).is_some_and(|public| public == source)
}

/// `host[:port]` of an http(s) URL, lower case, the port only when it is
/// not the scheme's default (as a `Host` header writes it).
fn authority(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue};

    use super::*;

    fn with(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn posts_must_come_from_the_service_itself() {
        let public = "https://shop.example";
        let host = (header::HOST, "127.0.0.1:7701");
        let ok = |pairs: &[(HeaderName, &str)]| same_origin(&with(pairs), public);
        assert!(ok(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:7701")
        ]));
        assert!(ok(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:7701/admin/orders/ord_1")
        ]));
        assert!(ok(&[
            host.clone(),
            (header::ORIGIN, "https://SHOP.example")
        ]));
        assert!(!ok(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ]));
        assert!(!ok(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:7702")
        ]));
        assert!(!ok(&[host.clone(), (header::ORIGIN, "null")]));
        assert!(!ok(&[
            host.clone(),
            (header::ORIGIN, "javascript:alert(1)")
        ]));
        // Origin wins over a Referer that would pass.
        assert!(!ok(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example"),
            (header::REFERER, "http://127.0.0.1:7701/admin")
        ]));
        assert!(!ok(&[host]), "neither header");
    }
}
