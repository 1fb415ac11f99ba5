//! The dashboard's building blocks: escaping, the page around the
//! content, the headers every page carries, badges, amounts and times.
//!
//! **Invariant:** every value that reaches markup goes through [`esc`] (or
//! a helper here that escapes or writes fixed characters only).

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipn_core::money::{Currency, Money};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::clock::Millis;

/// Escapes text for element content and quoted attribute values (the one
/// escaper of both services, `ipn_web::escape`).
pub fn esc(text: &str) -> String {
    ipn_web::escape(text).into_owned()
}

/// A query string value, percent-encoded (then escaped for the attribute).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        serializer.append_pair(key, value);
    }
    esc(&serializer.finish())
}

/// `19.99 USD`; the raw figures when the currency is unknown.
pub fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(currency) => esc(&Money::new(minor, currency).to_string()),
        Err(_) => esc(&format!("{minor} {currency}")),
    }
}

/// Milliseconds on the gateway clock as `2026-11-25 18:40:05 UTC`.
pub fn when(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(when_at)
        .unwrap_or_else(|| ms.to_string())
}

pub fn when_at(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

/// An RFC 3339 time from an object's JSON, read like [`when`]; the text
/// itself (escaped) when it is not one, `—` when absent.
pub fn rfc3339(value: &serde_json::Value) -> String {
    let Some(text) = value.as_str() else {
        return "—".to_owned();
    };
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| when_at(at.to_offset(time::UtcOffset::UTC)))
        .unwrap_or_else(|_| esc(text))
}

/// A coloured status label; the colour comes from a fixed list.
pub fn badge(status: &str) -> String {
    let tone = match status {
        "delivered" | "succeeded" | "completed" | "active" | "enabled" | "closed" | "healthy" => {
            "ok"
        }
        "failed" | "declined" | "disabled" | "open" | "reversed" | "expired" | "denied"
        | "failing" => "bad",
        "pending" | "half-open" | "trialing" | "past_due" | "refunded" | "partially_refunded"
        | "canceled" | "canceled_reversal" | "retrying" => "warn",
        _ => "neutral",
    };
    format!("<span class=\"badge {tone}\">{}</span>", esc(status))
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1f2328;margin:0}\
header.top{background:#111827;color:#e5e7eb;display:flex;align-items:center;gap:1.5rem;padding:0 1.5rem;height:3.25rem}\
header.top .brand{font-weight:700;color:#fff;text-decoration:none;letter-spacing:.02em}\
header.top nav{display:flex;gap:.25rem;flex:1}\
header.top nav a{color:#cbd5e1;text-decoration:none;padding:.4rem .75rem;border-radius:6px}\
header.top nav a:hover{background:#1f2937;color:#fff}\
header.top nav a.here{background:#374151;color:#fff}\
header.top .who{font-size:.85rem;color:#9ca3af;display:flex;align-items:center;gap:.75rem}\
header.top .who button{background:transparent;color:#e5e7eb;border:1px solid #4b5563}\
main{max-width:78rem;margin:1.5rem auto;padding:0 1.5rem}\
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:1.25rem 1.5rem;margin-bottom:1.25rem}\
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .75rem}\
table{width:100%;border-collapse:collapse;font-size:.9rem}\
th{font-size:.75rem;text-transform:uppercase;letter-spacing:.04em;color:#6b7280;font-weight:600}\
td,th{padding:.55rem .6rem;text-align:left;border-bottom:1px solid #f0f1f3;vertical-align:top}\
tbody tr:hover{background:#f9fafb}.num{text-align:right;white-space:nowrap}\
a{color:#2563eb}code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}\
pre{background:#0f172a;color:#e2e8f0;padding:1rem;border-radius:8px;overflow:auto;max-height:32rem}\
.badge{display:inline-block;padding:.1rem .55rem;border-radius:999px;font-size:.75rem;font-weight:600;white-space:nowrap}\
.badge.ok{background:#dcfce7;color:#166534}.badge.bad{background:#fee2e2;color:#991b1b}\
.badge.warn{background:#fef3c7;color:#92400e}.badge.neutral{background:#e5e7eb;color:#374151}\
form.filters{display:flex;flex-wrap:wrap;gap:.75rem;align-items:flex-end}\
form.filters label{display:flex;flex-direction:column;font-size:.75rem;color:#6b7280;gap:.2rem}\
input,select{font:inherit;padding:.4rem .55rem;border:1px solid #d1d5db;border-radius:6px;background:#fff}\
button{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid #d1d5db;background:#fff;cursor:pointer}\
button.primary{background:#2563eb;border-color:#2563eb;color:#fff}\
button.danger{background:#fff;border-color:#fca5a5;color:#b91c1c}\
form.inline{display:inline-flex;gap:.4rem;align-items:center;margin:0 .4rem .4rem 0}\
.notice{background:#ecfdf5;border:1px solid #a7f3d0;color:#065f46;padding:.65rem 1rem;border-radius:8px;margin-bottom:1rem}\
.problem{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:.65rem 1rem;border-radius:8px;margin-bottom:1rem}\
.muted,small{color:#6b7280}.pager{display:flex;gap:1rem;margin-top:.75rem}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1.25rem;margin:0}\
dl.facts dt{color:#6b7280;font-size:.85rem}dl.facts dd{margin:0}\
.login{max-width:26rem;margin:4rem auto}.login input{width:100%;margin:.35rem 0 1rem}\
.secret{background:#fffbeb;border:1px solid #fde68a;padding:.75rem 1rem;border-radius:8px;word-break:break-all}\
#live-status{position:fixed;right:1rem;bottom:1rem;background:#fef3c7;color:#92400e;border:1px solid #fde68a;border-radius:999px;padding:.2rem .8rem;font-size:.8rem}\
.live-stale{opacity:.6}";

/// The Content-Security-Policy of every page: nothing loads or runs but
/// the inline style and the gateway's own `live.js` (no inline script), which
/// may fetch pages of the gateway; forms post only to the gateway.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                       style-src 'unsafe-inline'; img-src 'self'; \
                       form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Which section a page belongs to (highlighted in the bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Events,
    Endpoints,
    Payments,
    Subscriptions,
    None,
}

/// Who is signed in, as the bar shows it (text, escaped here).
#[derive(Debug)]
pub struct Bar<'a> {
    pub who: &'a str,
    pub section: Section,
}

/// A whole document. `title` is text; `main` is markup the caller escaped.
/// `refresh`: without script, reload after that many seconds (the live
/// events list, whose rows `live.js` refreshes when script runs).
pub fn document(bar: Option<&Bar<'_>>, title: &str, main: &str, refresh: Option<u32>) -> String {
    let mut head = String::from("<script src=\"/dashboard/live.js\" defer></script>\n");
    if let Some(seconds) = refresh {
        let _ = writeln!(
            head,
            "<noscript><meta http-equiv=\"refresh\" content=\"{seconds}\"></noscript>"
        );
    }
    let top = match bar {
        None => {
            "<header class=\"top\"><span class=\"brand\">ipn gateway</span></header>".to_owned()
        }
        Some(bar) => {
            let link = |section, href: &str, label: &str| {
                let here = if bar.section == section {
                    " class=\"here\""
                } else {
                    ""
                };
                format!("<a href=\"{href}\"{here}>{label}</a>")
            };
            format!(
                "<header class=\"top\"><a class=\"brand\" href=\"/dashboard\">ipn gateway</a>\
                 <nav>{}{}{}{}</nav><div class=\"who\"><span id=\"who\">{}</span>\
                 <form method=\"post\" action=\"/dashboard/logout\" class=\"inline\">\
                 <button type=\"submit\" id=\"logout\">Sign out</button></form></div></header>",
                link(Section::Events, "/dashboard/events", "Events"),
                link(Section::Endpoints, "/dashboard/endpoints", "Endpoints"),
                link(Section::Payments, "/dashboard/payments", "Payments"),
                link(
                    Section::Subscriptions,
                    "/dashboard/subscriptions",
                    "Subscriptions"
                ),
                esc(bar.who),
            )
        }
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         {head}<title>{title} · ipn gateway</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         {top}\n<main>\n{main}</main>\n</body>\n</html>\n",
        title = esc(title),
    )
}

/// A page as a response, with the headers every page carries.
pub fn respond(status: StatusCode, html: String) -> Response {
    ipn_web::html::page(status, html, CSP)
}

/// The headers of every dashboard answer, redirects included: those of
/// every page of both services (`ipn_web::html`), with the dashboard's CSP.
pub fn secure(headers: &mut axum::http::HeaderMap) {
    ipn_web::html::secure_headers(headers, CSP);
}

/// `303 See Other` to a dashboard path.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response.headers_mut());
    response
}

/// A short page: a heading and one paragraph (errors, notices).
pub fn message(bar: Option<&Bar<'_>>, status: StatusCode, title: &str, text: &str) -> Response {
    let main = format!(
        "<div class=\"card\"><h1>{}</h1>\n<p>{}</p>\n<p><a href=\"/dashboard\">Back to the dashboard</a></p></div>\n",
        esc(title),
        esc(text)
    );
    respond(status, document(bar, title, &main, None))
}

/// What an action came to, above a page: the notice that it was done, or
/// the problem that stopped it (escaped here).
pub fn banners(notice: Option<&str>, problem: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(notice) = notice {
        out.push_str(&format!(
            "<div class=\"notice\" id=\"notice\">{}</div>\n",
            esc(notice)
        ));
    }
    if let Some(problem) = problem {
        out.push_str(&format!(
            "<div class=\"problem\" id=\"problem\">{}</div>\n",
            esc(problem)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let bar = Bar {
            who: "<b>m</b>",
            section: Section::Events,
        };
        let page = document(Some(&bar), "<i>t</i>", "", None);
        assert!(!page.contains("<b>") && !page.contains("<i>"), "{page}");
        assert_eq!(
            badge("<x>"),
            "<span class=\"badge neutral\">&lt;x&gt;</span>"
        );
        assert_eq!(query(&[("q", "a&b\"<"), ("e", "")]), "q=a%26b%22%3C");
    }

    #[test]
    fn amounts_and_times_read_plainly() {
        assert_eq!(money(1250, "USD"), "12.50 USD");
        assert_eq!(money(5, "<X>"), "5 &lt;X&gt;");
        assert_eq!(when(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
    }
}

/// Where a form sends the browser back to says what was done (`?done=…`):
/// the notice the page shows. It never refuses a request: a query it
/// cannot read shows no notice.
#[derive(Debug, Default)]
pub struct Done(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Done {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let done = parts.uri.query().and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "done")
                .map(|(_, value)| value.into_owned())
        });
        Ok(Done(done))
    }
}
