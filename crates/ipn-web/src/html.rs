//! The one HTML escaper and the one set of security headers of every page
//! of both services (the dashboard, the checkout page, the shop's pages).
//!
//! **Invariant:** a page is answered through [`page`] (or has
//! [`secure_headers`] applied), so no page lacks `nosniff`, a
//! `Referrer-Policy` or its Content-Security-Policy.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for element content and quoted attribute values: `&`,
/// `<`, `>`, `"` and `'`; C0 control characters other than tab, CR and LF
/// (NUL among them) and DEL become U+FFFD, since HTML parsers treat them
/// inconsistently and they have no business in a page.
pub fn escape(text: &str) -> Cow<'_, str> {
    let plain = |c: char| !matches!(c, '&' | '<' | '>' | '"' | '\'') && !replaced(c);
    if text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if replaced(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The characters [`escape`] replaces with U+FFFD.
fn replaced(c: char) -> bool {
    (c.is_ascii_control() && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{7f}'
}

/// Sets the headers every page and every redirect between pages carries:
/// `nosniff`, never cached (pages are per person and change), the
/// Referrer-Policy, no framing by another site, and `csp`.
pub fn secure_headers(headers: &mut HeaderMap, csp: &str) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Same-origin form posts keep their `Referer`, which the CSRF check
    // (`same_origin`) falls back to; other sites learn nothing of our URLs
    // (a checkout page's id, an order's).
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// A whole HTML document as a response, with [`secure_headers`].
pub fn page(status: StatusCode, html: String, csp: &str) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers, csp);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_both_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert!(matches!(escape("Zoë 1 × 2"), Cow::Borrowed("Zoë 1 × 2")));
    }

    #[test]
    fn controls_become_replacement_characters_except_tab_cr_lf() {
        assert_eq!(
            escape("a\0b\u{1}c\u{1b}d\u{7f}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(escape("a\tb\r\nc"), "a\tb\r\nc");
    }

    #[test]
    fn every_page_carries_the_security_headers() {
        let response = page(StatusCode::OK, "<p>x</p>".into(), "default-src 'none'");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["content-security-policy"], "default-src 'none'");
    }
}
