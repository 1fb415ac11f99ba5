//! The pages' building blocks: the page around the content, its
//! Content-Security-Policy, and how amounts and times read. Escaping and
//! the headers every page carries are `ipn_web`'s, the one copy of both
//! services.
//!
//! **Invariant:** every value that reaches markup goes through
//! [`ipn_web::escape`] (or [`money`], [`when`], which escape or produce
//! fixed characters); markup is only ever written by the code in `pages/`.

use axum::http::StatusCode;
use axum::response::Response;
use ipn_core::money::Money;
use ipn_web::escape;
use time::OffsetDateTime;
use time::macros::format_description;

/// `12.50 USD`.
pub fn money(amount: Money) -> String {
    escape(&amount.to_string()).into_owned()
}

/// Milliseconds since the epoch as `2026-11-25 18:40 UTC`; the raw number
/// when out of range (never written by this code).
pub fn when(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The same for an `OffsetDateTime`.
pub fn when_at(at: OffsetDateTime) -> String {
    when(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f5f5f7;color:#1d1d1f;margin:0}\
header{background:#1d1d1f;color:#fff;padding:.6rem 2rem}header a{color:#fff;text-decoration:none}\
main{max-width:80rem;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px}\
table{width:100%;border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}\
td,th{padding:.35rem .5rem;text-align:left;border-bottom:1px solid #eee;vertical-align:top}\
td{white-space:nowrap}td:has(a[href^='/admin/emails/']),td.outcome+td{white-space:normal}\
th{font-size:.85rem;color:#555}.num{text-align:right;white-space:nowrap}\
.product{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:0 0 1rem}\
.product h2{margin:.1rem 0}.price{font-weight:600}\
label{margin-right:.5rem}input{padding:.4rem .5rem;margin-right:.5rem;border:1px solid #c7c7cc;\
border-radius:6px;font-size:.95rem}input:focus{outline:2px solid #0a66c2;border-color:#0a66c2}\
input[type=number]{width:4rem}\
button{padding:.45rem 1rem;background:#0a66c2;color:#fff;border:0;border-radius:6px;\
font-weight:600;cursor:pointer}button:hover{background:#084f96}\
a.action{display:inline-block;padding:.45rem 1rem;background:#0a66c2;color:#fff;\
border-radius:6px;font-weight:600;text-decoration:none}\
.problem{background:#fde2e1;padding:.5rem;border-radius:4px}\
.status{font-size:1.3rem;padding:.6rem .9rem;border-radius:6px;background:#f0f0f2}\
.status-good{background:#e3f4e8;color:#14532d}.status-wait{background:#fff4d6;color:#713f12}\
.status-bad{background:#fde2e1;color:#7f1d1d}.note{font-size:.85rem;color:#555}\
small,code{color:#555}td code{font-size:.8rem}form.inline{display:inline}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1.25rem;margin:0 0 1rem}\
dl.facts dt{color:#555;font-size:.85rem}dl.facts dd{margin:0}\
dd .status-good,dd .status-wait,dd .status-bad{padding:.1rem .45rem;border-radius:4px}";

/// The Content-Security-Policy of every page: nothing may load or run but
/// the inline style and the shop's own `/live.js` (which fetches only from
/// the shop, no inline script); forms post only to this shop, plus `form_origin`
/// when given (the catalog's `POST /orders` answers with a redirect to the
/// gateway's checkout, and browsers check `form-action` on redirects).
pub fn csp(form_origin: Option<&str>) -> String {
    let extra = form_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; \
         style-src 'unsafe-inline'; form-action 'self'{extra}; base-uri 'none'; \
         frame-ancestors 'none'"
    )
}

/// A whole document. `title` and `shop_name` are text (escaped here);
/// `main` is markup whose values the caller escaped; parts of it marked
/// `data-live` refresh in place (`/live.js`). `refresh`: without script,
/// reload the whole page after that many seconds (a page waiting for an IPN).
pub fn document(shop_name: &str, title: &str, main: &str, refresh: Option<u32>) -> String {
    let refresh = refresh
        .map(|s| format!("<noscript><meta http-equiv=\"refresh\" content=\"{s}\"></noscript>\n"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <script src=\"/live.js\" defer></script>\n{refresh}<title>{title} · {shop}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><a href=\"/\">{shop}</a></header>\n<main>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title),
        shop = escape(shop_name),
    )
}

/// A short page with a heading and one paragraph of text (errors, notices).
pub fn message(shop_name: &str, status: StatusCode, title: &str, text: &str) -> Response {
    let main = format!("<h1>{}</h1>\n<p>{}</p>\n", escape(title), escape(text));
    ipn_web::html::page(status, document(shop_name, title, &main, None), &csp(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        let page = document("<b>Shop</b>", "<i>t</i>", "", None);
        assert!(!page.contains("<b>") && !page.contains("<i>"), "{page}");
    }

    #[test]
    fn times_and_amounts_read_plainly() {
        assert_eq!(when(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        let amount = Money::new(1250, ipn_core::money::Currency::USD);
        assert_eq!(money(amount), "12.50 USD");
    }

    #[test]
    fn the_policy_allows_only_the_shops_script_and_posts_only_home_and_to_checkout() {
        let policy = csp(Some("http://gw.example:7700"));
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        assert!(
            policy.contains("script-src 'self'; connect-src 'self';"),
            "{policy}"
        );
        assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
        assert!(
            policy.contains("form-action 'self' http://gw.example:7700;"),
            "{policy}"
        );
        assert!(csp(None).contains("form-action 'self';"));
        let response = message("s", StatusCode::NOT_FOUND, "t", "x");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("content-security-policy"));
    }
}
