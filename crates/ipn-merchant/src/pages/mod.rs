//! The shop's HTML pages: server-rendered HTML, every value escaped, a
//! strict Content-Security-Policy on every page. They work without
//! JavaScript; each loads one script, `/live.js` (ipn-web's), which
//! refreshes the parts marked `data-live` in place, and no inline script.
//!
//! | route | page |
//! |---|---|
//! | `GET /` | the catalog, a Buy form per product |
//! | `POST /orders` | form `sku`, `quantity`, `customer_email` from the catalog (same origin, else 403): makes the order as `POST /api/orders` does and answers 303 to its checkout; 400 the catalog again with the problem; 429 over the order limit; 502 when the gateway fails |
//! | `GET /orders/{id}` | the order's status for its customer (reloads itself while unpaid) |
//! | `GET /admin` | orders (`?before=ord_…` pages back), open flags, latest IPNs and emails |
//! | `GET /admin/orders/{id}` | one order with its IPNs, payments, flags, emails, downloads |
//! | `GET /admin/emails/{id}` | one email: recipient, status, text body, its links |
//! | `POST /admin/orders/{id}/fulfil` | marks a paid order shipped; 303 back, 409 when it cannot be |
//! | `POST /admin/flags/{id}/resolve` | resolves a flag; 303 back |
//! | `POST /admin/messages/{id}/retry` | sends a `failed` IPN back to the handler; 303 back |
//!
//! Admin pages need the admin user name and password (HTTP Basic) and
//! admin posts must come from the shop's own pages; see `auth.rs`. Without
//! a password the admin pages answer 404. Wrong passwords lock a client
//! out for a while; a browser that signed in before is counted on its own
//! (`throttle.rs`).
//!
//! - `html.rs`: the page frame, its Content-Security-Policy, amounts and
//!   times (escaping and the headers every page carries are ipn-web's);
//! - `catalog.rs`, `order.rs`, `admin.rs`: each page's markup, pure
//!   functions from data to HTML, tested without a server;
//! - `auth.rs`: the password and the same-origin check.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod html;
pub mod order;
pub mod throttle;

use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::auth::Access;
use self::html::{csp, document, message};
use crate::handler::Review;
use crate::shop::{Shop, ShopError};
use crate::storage::StoreError;
use crate::storage::views::{self, DashboardLimits};
use crate::writer::WriteError;

/// Orders per page of the dashboard.
pub const ORDERS_PER_PAGE: usize = 50;

/// The largest form body the pages read; theirs are a few hundred bytes.
const FORM_LIMIT: usize = 16 * 1024;

/// What the pages share. Its `Debug` hides the admin password.
#[derive(Clone)]
pub struct Pages {
    /// The catalog, the checkout client, the writer, the reader and the
    /// public URL.
    pub shop: Shop,
    /// Shown at the top of every page.
    pub shop_name: String,
    /// The admin's user name.
    pub admin_user: String,
    /// The admin password; `None`: the admin pages do not exist.
    pub admin_password: Option<String>,
    /// The shop's HMAC key: signs download links (the order page shows
    /// them) and the admin's known-device cookies (`throttle.rs`).
    pub device_key: crate::downloads::SigningKey,
    /// Where emails are written when there is no SMTP server; shown on
    /// `/admin`. `None` when they go to a server.
    pub mail_dir: Option<PathBuf>,
    /// The gateway's base URL: its origin is allowed as a `form-action`,
    /// since `POST /orders` redirects the browser to the gateway's checkout
    /// page and browsers check `form-action` on a form's redirects too.
    pub gateway_url: String,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("shop", &self.shop)
            .field("shop_name", &self.shop_name)
            .field("admin_user", &self.admin_user)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "***"),
            )
            .field("mail_dir", &self.mail_dir)
            .field("gateway_url", &self.gateway_url)
            .finish()
    }
}

impl Pages {
    fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        message(&self.shop_name, status, title, text)
    }

    fn page(&self, status: StatusCode, title: &str, main: &str, refresh: Option<u32>) -> Response {
        ipn_web::html::page(
            status,
            document(&self.shop_name, title, main, refresh),
            &csp(None),
        )
    }

    /// The `form-action` source of the gateway: `scheme://host[:port]`.
    fn gateway_origin(&self) -> Option<String> {
        url::Url::parse(&self.gateway_url)
            .ok()
            .map(|url| url.origin().ascii_serialization())
            .filter(|origin| origin != "null")
    }

    fn catalog(
        &self,
        status: StatusCode,
        filled: Option<&catalog::Filled>,
        problem: Option<&str>,
    ) -> Response {
        let main = catalog::render(&self.shop.catalog, filled, problem);
        ipn_web::html::page(
            status,
            document(&self.shop_name, "Shop", &main, None),
            &csp(self.gateway_origin().as_deref()),
        )
    }

    fn read_failed(&self, error: &StoreError) -> Response {
        tracing::error!(error = format!("{error:#}"), "reading for a page failed");
        self.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The page could not be read. It has been logged; try again later.",
        )
    }

    fn write_failed(&self, error: &WriteError) -> Response {
        match error {
            WriteError::Closed => self.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Shutting down",
                "The shop is shutting down; try again shortly.",
            ),
            WriteError::Store(_) => {
                tracing::error!(%error, "a write for a page failed");
                self.message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The change could not be stored. It has been logged; try again later.",
                )
            }
        }
    }

    /// `None` when the request may see the admin pages; otherwise the
    /// answer that refuses it.
    fn admin_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match auth::check(headers, &self.admin_user, self.admin_password.as_deref()) {
            Access::Granted => None,
            Access::Disabled => Some(self.message(
                StatusCode::NOT_FOUND,
                "Admin is disabled",
                "This shop has no admin password, so its admin pages are off. \
                 Start it with --admin-password to turn them on.",
            )),
            Access::Denied => {
                let mut response = self.message(
                    StatusCode::UNAUTHORIZED,
                    "Password needed",
                    "The admin pages need the shop's admin user name and password.",
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&format!(
                        "Basic realm=\"{}\", charset=\"UTF-8\"",
                        auth::REALM
                    ))
                    .unwrap_or(HeaderValue::from_static("Basic")),
                );
                Some(response)
            }
        }
    }

    /// [`Pages::admin_refusal`], and for a post: it comes from our own
    /// pages.
    fn admin_post_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if let Some(refusal) = self.admin_refusal(headers) {
            return Some(refusal);
        }
        if auth::same_origin(headers, &self.shop.public_url) {
            None
        } else {
            tracing::warn!("a cross-site admin post was refused");
            Some(self.message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This request did not come from the shop's own admin pages, so it was not \
                 carried out. Use the buttons on the admin pages.",
            ))
        }
    }
}

/// The pages' routes; merge them with the shop's.
pub fn router(state: Pages) -> Router {
    let guard = throttle::Guard::new(
        state.device_key.clone(),
        state.shop.public_url.starts_with("https://"),
        state.shop_name.clone(),
        state.admin_user.clone(),
        state.admin_password.clone(),
    );
    // Wrong passwords are counted per address, or per known device
    // (`throttle.rs`).
    let admin = Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/orders/{id}", get(admin_order))
        .route("/admin/emails/{id}", get(admin_email))
        .route("/admin/orders/{id}/fulfil", post(fulfil))
        .route("/admin/flags/{id}/resolve", post(resolve))
        .route("/admin/messages/{id}/retry", post(retry))
        .route_layer(axum::middleware::from_fn_with_state(guard, throttle::guard));
    Router::new()
        .route("/", get(home))
        .route("/orders", post(buy))
        .route("/orders/{id}", get(order_page))
        .route("/live.js", get(ipn_web::live_js))
        .merge(admin)
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(state)
}

async fn home(State(pages): State<Pages>) -> Response {
    pages.catalog(StatusCode::OK, None, None)
}

async fn buy(
    State(pages): State<Pages>,
    client: ipn_web::throttle::Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A form on any site can post here, as it could post text/plain to
    // `/api/orders`; each order costs a checkout session at the gateway.
    if !auth::same_origin(&headers, &pages.shop.public_url) {
        return pages.message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This order did not come from the shop's own catalog page, so it was not made. \
             Order from the shop's catalog.",
        );
    }
    if let Err(ShopError::TooManyOrders { retry_after }) = pages.shop.admit_order(client) {
        let mut response = pages.message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many orders",
            &format!("Too many orders came from your address. Try again in {retry_after} seconds."),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.into());
        return response;
    }
    let Ok(body) = body else {
        return pages.catalog(
            StatusCode::BAD_REQUEST,
            None,
            Some("The form could not be read."),
        );
    };
    let filled = catalog::Filled::parse(&body);
    let request = match filled.request() {
        Ok(request) => request,
        Err(problem) => {
            return pages.catalog(StatusCode::BAD_REQUEST, Some(&filled), Some(&problem));
        }
    };
    match crate::shop::orders::create(&pages.shop, request).await {
        Ok(order) => see_other(&order.checkout_url),
        Err(ShopError::Invalid(problem)) => {
            pages.catalog(StatusCode::BAD_REQUEST, Some(&filled), Some(&problem))
        }
        Err(error @ ShopError::Gateway(_)) => {
            tracing::warn!(%error, "checkout session refused");
            pages.message(
                StatusCode::BAD_GATEWAY,
                "Checkout unavailable",
                "The payment service could not be reached or refused the order. \
                 No order was made and nothing was charged; try again later.",
            )
        }
        Err(ShopError::Write(error)) => pages.write_failed(&error),
        Err(ShopError::Read(error)) => pages.read_failed(&error),
        Err(other) => pages.message(StatusCode::BAD_REQUEST, "Order refused", &other.to_string()),
    }
}

async fn order_page(State(pages): State<Pages>, Path(id): Path<String>) -> Response {
    match pages
        .shop
        .reader
        .read(move |r| views::order_details(r, &id))
        .await
    {
        Ok(Some(details)) => {
            let main = order::render(&details, &pages.device_key, pages.shop.clock.now());
            let refresh = order::waiting(&details.order.status).then_some(order::REFRESH_SECONDS);
            pages.page(StatusCode::OK, "Your order", &main, refresh)
        }
        Ok(None) => pages.message(
            StatusCode::NOT_FOUND,
            "No such order",
            "There is no order at this address. Check the link in your email.",
        ),
        Err(error) => pages.read_failed(&error),
    }
}

async fn dashboard(
    State(pages): State<Pages>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(response) = pages.admin_refusal(&headers) {
        return response;
    }
    let before = query.as_deref().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "before")
            .map(|(_, value)| value.into_owned())
            .filter(|value| !value.is_empty())
    });
    let paged = before.is_some();
    let limits = DashboardLimits {
        orders: ORDERS_PER_PAGE,
        flags: 200,
        inbox: 50,
        emails: 50,
    };
    let board = pages
        .shop
        .reader
        .read(move |r| views::dashboard(r, before.as_deref(), limits))
        .await;
    match board {
        Ok(board) => {
            let main = admin::dashboard(&board, pages.mail_dir.as_deref(), paged);
            pages.page(StatusCode::OK, "Admin", &main, None)
        }
        Err(error) => pages.read_failed(&error),
    }
}

async fn admin_order(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = pages.admin_refusal(&headers) {
        return response;
    }
    let found = pages
        .shop
        .reader
        .read(move |r| views::admin_order(r, &id))
        .await;
    pages.shown(found, "order", |(details, messages)| {
        let main = admin::order(&details, &messages, pages.shop.clock.now());
        pages.page(StatusCode::OK, "Order", &main, None)
    })
}

async fn admin_email(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = pages.admin_refusal(&headers) {
        return response;
    }
    let found = match id.parse::<i64>() {
        Ok(id) => pages.shop.reader.read(move |r| r.email(id)).await,
        Err(_) => Ok(None),
    };
    pages.shown(found, "email", |email| {
        pages.page(StatusCode::OK, "Email", &admin::email(&email), None)
    })
}

async fn fulfil(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = pages.admin_post_refusal(&headers) {
        return response;
    }
    let review = pages.shop.writer.fulfil(id.clone()).await;
    pages.reviewed(
        review,
        &format!("/admin/orders/{id}"),
        "order",
        "Not fulfilled",
    )
}

async fn resolve(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let writer = pages.shop.writer.clone();
    let review = |id| async move { writer.resolve_flag(id).await };
    pages
        .review_post(&headers, &id, body, ("flag", "Not resolved"), review)
        .await
}

async fn retry(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let writer = pages.shop.writer.clone();
    let review = |id| async move { writer.requeue(id).await };
    pages
        .review_post(&headers, &id, body, ("message", "Not sent back"), review)
        .await
}

impl Pages {
    /// An operator's POST on the numbered `thing` (a flag, a message): the
    /// admin checks, the id, the action, then 303 back (or why not).
    async fn review_post<F>(
        &self,
        headers: &HeaderMap,
        id: &str,
        body: Result<Bytes, BytesRejection>,
        (thing, refused): (&str, &str),
        act: impl FnOnce(i64) -> F,
    ) -> Response
    where
        F: std::future::Future<Output = Result<Review, WriteError>>,
    {
        if let Some(response) = self.admin_post_refusal(headers) {
            return response;
        }
        let Ok(id) = id.parse::<i64>() else {
            return self.reviewed(Ok(Review::NotFound), "/admin", thing, refused);
        };
        let review = act(id).await;
        self.reviewed(review, &back_path(body), thing, refused)
    }
}

/// The form's `back` field when it is an admin path, else `/admin`.
fn back_path(body: Result<Bytes, BytesRejection>) -> String {
    body.ok()
        .and_then(|body| {
            url::form_urlencoded::parse(&body)
                .find(|(key, _)| key == "back")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|back| is_admin_path(back))
        .unwrap_or_else(|| "/admin".to_owned())
}

impl Pages {
    /// The answer to an operator's action on a `thing`: 303 to `back` when
    /// done.
    fn reviewed(
        &self,
        review: Result<Review, WriteError>,
        back: &str,
        thing: &str,
        refused: &str,
    ) -> Response {
        match review {
            Ok(Review::Done) => see_other(back),
            Ok(Review::NotFound) => self.not_found(thing),
            Ok(Review::Refused(why)) => self.message(StatusCode::CONFLICT, refused, &why),
            Err(error) => self.write_failed(&error),
        }
    }

    /// An admin page of a `thing` read from storage: `render` it, or say it
    /// does not exist, or that reading failed.
    fn shown<T>(
        &self,
        found: Result<Option<T>, StoreError>,
        thing: &str,
        render: impl FnOnce(T) -> Response,
    ) -> Response {
        match found {
            Ok(Some(value)) => render(value),
            Ok(None) => self.not_found(thing),
            Err(error) => self.read_failed(&error),
        }
    }

    fn not_found(&self, thing: &str) -> Response {
        self.message(
            StatusCode::NOT_FOUND,
            &format!("No such {thing}"),
            &format!("There is no such {thing}."),
        )
    }
}

/// A path on this site under `/admin`, so the form's `back` cannot send
/// the browser elsewhere (`//evil.example`, `/\evil`, `https://…`).
fn is_admin_path(path: &str) -> bool {
    (path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?"))
        && !path.contains(['\\', '\r', '\n'])
        && !path.contains("//")
}

/// 303 to `location`; one that cannot be a header value (never made by
/// this code) goes to the catalog rather than panicking as `Redirect` would.
fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_links_stay_under_admin() {
        assert!(is_admin_path("/admin"));
        assert!(is_admin_path("/admin/orders/ord_1"));
        for bad in [
            "//evil.example",
            "/admin//x",
            "https://evil",
            "/\\evil",
            "/adminx",
            "/",
        ] {
            assert!(!is_admin_path(bad), "{bad}");
        }
    }
}
