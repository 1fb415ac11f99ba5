//! `/dashboard`: the gateway's server-rendered dashboard.
//!
//! - `mod.rs`: routes, sign-in with an API key, sessions, the CSRF check.
//! - `events.rs`: the events list (filters, search, paging, live refresh),
//!   an event's page (payload, signed headers, attempts) and Resend.
//! - `endpoints.rs`: endpoints with their health; disable, enable, rotate
//!   the secret, recover failed deliveries.
//! - `payments.rs`: payments, a payment's page with refund and chargeback.
//! - `subscriptions.rs`: subscriptions, a subscription's page with its
//!   payments, events and the cancel buttons.
//! - `html.rs`: the page. What the lists read is `storage::dashboard`'s.
//! - `live.js`: the one script, served at `/dashboard/live.js`; it refreshes
//!   the parts of a page marked `data-live` (see the file's header).
//!
//! **Sign-in.** A form takes an API key: the admin key sees every
//! merchant, a merchant's key only its own objects (the API's scoping).
//! The key is checked once and never kept: the browser gets a random
//! 256-bit session token in an `HttpOnly; SameSite=Strict` cookie scoped
//! to `/dashboard` (and `Secure` behind https); the token maps, in memory,
//! to the caller for 12 hours. A restart signs everyone out.
//! An hour without a request signs out too; a page refreshing itself
//! (`live.js`, which says so in an `X-Live-Refresh` header) is no request
//! from a person and does not count.
//!
//! **Cross-site posts.** Every `POST` (sign-in included) must come from
//! the gateway's own pages: its `Origin` (or, when a browser sends none,
//! its `Referer`) must name the requested `Host` or the public URL.
//! `SameSite=Strict` already keeps the cookie off cross-site posts; the
//! check is the second lock.
//!
//! **Invariant:** buttons do what the API does, through the same engine
//! calls (the writer's operations, `publish::redeliver`), so a dashboard
//! action and an API call cannot disagree.

mod endpoints;
mod events;
pub(crate) mod html;
mod payments;
mod subscriptions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use ipn_core::id::MerchantId;

use crate::http::{ApiError, AppState, Caller, Client};
use html::{Bar, Section};

/// The session cookie's name.
pub const COOKIE: &str = "ipn_dashboard";
/// How long a sign-in lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The dashboard's routes, to merge into the gateway's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/", get(home))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/events", get(events::list))
        .route("/dashboard/events/{id}", get(events::show))
        .route("/dashboard/events/{id}/resend", post(events::resend))
        .route("/dashboard/endpoints", get(endpoints::list))
        .route("/dashboard/endpoints/{id}/{action}", post(endpoints::act))
        .route("/dashboard/payments", get(payments::list))
        .route("/dashboard/payments/{id}", get(payments::show))
        .route("/dashboard/payments/{id}/{action}", post(payments::act))
        .route("/dashboard/subscriptions", get(subscriptions::list))
        .route("/dashboard/subscriptions/{id}", get(subscriptions::show))
        .route(
            "/dashboard/subscriptions/{id}/cancel",
            post(subscriptions::cancel),
        )
        .route("/dashboard/live.js", get(ipn_web::live_js))
        .route("/dashboard/{*rest}", get(not_found).post(not_found))
        .layer(Extension(Arc::new(Sessions::default())))
}

/// Signed-in browsers: token → who, until when; and the forms already
/// sent (their nonce → until when it is remembered).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    sent: Mutex<HashMap<String, Instant>>,
    /// Sessions made so far: each one's number, to know the oldest.
    made: std::sync::atomic::AtomicU64,
}

/// One signed-in browser.
#[derive(Debug, Clone, Copy)]
struct Session {
    caller: Caller,
    /// Its number in the order sessions were made.
    number: u64,
    /// Signed out then, however active.
    expires: Instant,
    /// Signed out after [`IDLE_TTL`] without a request.
    last_seen: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        self.expires > now && now.duration_since(self.last_seen) < IDLE_TTL
    }
}

/// A session unused this long is over.
const IDLE_TTL: Duration = Duration::from_secs(3600);
/// The most sessions one key holds; signing in again beyond it ends the
/// oldest, so scripted sign-ins cannot grow the map without bound.
const SESSIONS_PER_CALLER: usize = 20;

/// How long a sent form's nonce is remembered: longer than anyone keeps a
/// page open before pressing its button again.
const NONCE_TTL: Duration = Duration::from_secs(6 * 3600);

/// A fresh nonce for a state-changing form: it rides in the form's action
/// URL, so the same form sent twice (a double click, a reload of the
/// answer) acts once.
pub(crate) fn nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Sessions {
    fn create(&self, caller: Caller) -> String {
        // 256 bits from the thread's CSPRNG.
        let token = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, session| session.live(now));
        let mut mine: Vec<(u64, String)> = map
            .iter()
            .filter(|(_, session)| session.caller == caller)
            .map(|(token, session)| (session.number, token.clone()))
            .collect();
        if mine.len() >= SESSIONS_PER_CALLER {
            mine.sort();
            for (_, token) in mine.iter().take(mine.len() + 1 - SESSIONS_PER_CALLER) {
                map.remove(token);
            }
        }
        let session = Session {
            caller,
            number: self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            expires: now + SESSION_TTL,
            last_seen: now,
        };
        map.insert(token.clone(), session);
        token
    }

    /// The caller of a live session, which counts as activity.
    fn get(&self, token: &str) -> Option<Caller> {
        self.lookup(token, true)
    }

    /// The same without counting as activity: a page refreshing itself
    /// (`live.js`) must not keep an unattended browser signed in.
    fn peek(&self, token: &str) -> Option<Caller> {
        self.lookup(token, false)
    }

    fn lookup(&self, token: &str, activity: bool) -> Option<Caller> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(token).filter(|session| session.live(now))?;
        if activity {
            session.last_seen = now;
        }
        Some(session.caller)
    }

    /// Records a form's nonce; false when it was sent before.
    fn first_use(&self, nonce: &str) -> bool {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.retain(|_, until| *until > now);
        sent.insert(nonce.to_owned(), now + NONCE_TTL).is_none()
    }

    fn remove(&self, token: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }
}

/// The signed-in caller of a dashboard request, with a name for the bar.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub name: String,
}

impl Viewer {
    /// Only this merchant's objects; `None` for the admin (all of them).
    pub fn scope(&self) -> Option<MerchantId> {
        match self.caller {
            Caller::Admin => None,
            Caller::Merchant(id) => Some(id),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.caller == Caller::Admin
    }

    /// Whether this viewer may see an object of `merchant`.
    pub fn sees(&self, merchant: MerchantId) -> bool {
        self.scope().is_none_or(|m| m == merchant)
    }

    pub fn bar(&self, section: Section) -> Bar<'_> {
        Bar {
            who: &self.name,
            section,
        }
    }

    /// A page in the layout, with the bar.
    pub fn page(&self, section: Section, status: StatusCode, title: &str, main: &str) -> Response {
        html::respond(
            status,
            html::document(Some(&self.bar(section)), title, main, None),
        )
    }

    /// The dashboard's "not found" page (also for another merchant's ids).
    pub fn not_found(&self, what: &str) -> Response {
        html::message(
            Some(&self.bar(Section::None)),
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no such {what}."),
        )
    }

    /// A failure of the gateway (logged once by `ApiError::internal`).
    pub fn failed(&self, error: ApiError) -> Response {
        html::message(
            Some(&self.bar(Section::None)),
            error.status,
            "Something went wrong",
            &error.message,
        )
    }
}

/// The session cookie's value. Two cookies of that name (one planted from a
/// sibling domain beside ours) count as none: which is ours is unknowable.
fn cookie(headers: &HeaderMap) -> Option<String> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned());
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

fn sessions(parts: &Parts) -> Option<Arc<Sessions>> {
    parts.extensions.get::<Arc<Sessions>>().cloned()
}

fn caller_name(state: &AppState, caller: Caller) -> String {
    match caller {
        Caller::Admin => "admin (all merchants)".to_owned(),
        Caller::Merchant(id) => state
            .engine
            .directory
            .merchant(id)
            .map(|m| format!("{} · {id}", m.name))
            .unwrap_or_else(|| id.to_string()),
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || html::see_other("/dashboard/login");
        let sessions = sessions(parts).ok_or_else(to_login)?;
        let token = cookie(&parts.headers).ok_or_else(to_login)?;
        let caller = if parts.headers.contains_key(ipn_web::LIVE_HEADER) {
            sessions.peek(&token)
        } else {
            sessions.get(&token)
        }
        .ok_or_else(to_login)?;
        if let Caller::Merchant(id) = caller
            && state.engine.directory.merchant(id).is_none()
        {
            return Err(to_login());
        }
        Ok(Self {
            caller,
            name: caller_name(state, caller),
        })
    }
}

/// A signed-in viewer whose `POST` came from the gateway's own pages.
#[derive(Debug, Clone)]
pub struct Poster(pub Viewer);

impl FromRequestParts<AppState> for Poster {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if !same_origin(&parts.headers, &state.public_url) {
            return Err(cross_site());
        }
        let viewer = Viewer::from_request_parts(parts, state).await?;
        // As in the API: the admin key sees every merchant but acts for
        // none (no refunds, resends or rotations in a merchant's name).
        if viewer.is_admin() {
            return Err(html::message(
                None,
                StatusCode::FORBIDDEN,
                "Refused",
                "The admin key can look at every merchant but act for none: sign in with \
                 the merchant's API key to change its payments, events or endpoints.",
            ));
        }
        let nonce = parts.uri.query().and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "nonce")
                .map(|(_, value)| value.into_owned())
        });
        if let (Some(nonce), Some(sessions)) = (nonce, parts.extensions.get::<Arc<Sessions>>())
            && !sessions.first_use(&nonce)
        {
            return Err(html::message(
                None,
                StatusCode::CONFLICT,
                "Already done",
                "This form was already sent, and nothing was done a second time. \
                 Go back and reload the page to see where things stand.",
            ));
        }
        Ok(Self(viewer))
    }
}

fn cross_site() -> Response {
    html::message(
        None,
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was not sent from the gateway's own pages.",
    )
}

pub use ipn_web::same_origin;

async fn home(viewer: Result<Viewer, Response>) -> Response {
    match viewer {
        Ok(_) => html::see_other("/dashboard/events"),
        Err(to_login) => to_login,
    }
}

async fn not_found(viewer: Result<Viewer, Response>) -> Response {
    match viewer {
        Ok(viewer) => viewer.not_found("page"),
        Err(to_login) => to_login,
    }
}

async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = html::banners(None, problem);
    let main = format!(
        "<div class=\"card login\"><h1>Sign in</h1>\n{problem}\
         <p class=\"muted\">Use the admin key to see every merchant, or a merchant's API key \
         to see its own events, endpoints and payments.</p>\n\
         <form method=\"post\" action=\"/dashboard/login\">\
         <label for=\"api_key\">API key</label>\
         <input type=\"password\" id=\"api_key\" name=\"api_key\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form></div>\n"
    );
    html::respond(status, html::document(None, "Sign in", &main, None))
}

/// The caller an API key names, checked as the API checks it.
fn caller_of(state: &AppState, key: &str) -> Option<Caller> {
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    crate::http::caller_of(state, key)
}

async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&headers, &state.public_url) {
        return cross_site();
    }
    let key = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "api_key")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    // Wrong keys count with the API's (`api/auth.rs`); a right key signs in
    // even from an address that sent too many wrong ones.
    let Some(caller) = caller_of(&state, &key) else {
        if let Some(ip) = client {
            let now = Instant::now();
            if let Some(wait) = state.key_failures.locked(&ip, now) {
                let seconds = ipn_web::throttle::retry_after(wait);
                let mut response = login_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(&format!(
                        "Too many wrong keys came from your address. Try again in {seconds} s."
                    )),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
                return response;
            }
            state.key_failures.count(ip, now);
        }
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That key is not the admin key or a merchant's API key."),
        );
    };
    // The browser's earlier session, if any, ends here: one browser, one
    // session.
    if let Some(old) = cookie(&headers) {
        sessions.remove(&old);
    }
    let token = sessions.create(caller);
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let mut response = html::see_other("/dashboard/events");
    let value = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers, &state.public_url) {
        return cross_site();
    }
    if let Some(token) = cookie(&headers) {
        sessions.remove(&token);
    }
    let mut response = html::see_other("/dashboard/login");
    let value = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Runs a blocking read off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// Reads a form body into pairs.
pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A non-empty, trimmed query value.
pub(crate) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn sessions_are_opaque_and_end() {
        let sessions = Sessions::default();
        let token = sessions.create(Caller::Admin);
        assert_eq!(token.len(), 64);
        assert_eq!(sessions.get(&token), Some(Caller::Admin));
        assert_ne!(sessions.create(Caller::Admin), token);
        sessions.remove(&token);
        assert_eq!(sessions.get(&token), None);
        let cookies = with(&[(header::COOKIE, "a=b; ipn_dashboard=tok; c=d")]);
        assert_eq!(cookie(&cookies).as_deref(), Some("tok"));
    }

    #[test]
    fn a_key_holds_at_most_twenty_sessions_the_oldest_ending_first() {
        let sessions = Sessions::default();
        let merchant = Caller::Merchant(MerchantId::generate(time::OffsetDateTime::now_utc()));
        let tokens: Vec<String> = (0..25).map(|_| sessions.create(merchant)).collect();
        let live: Vec<bool> = tokens.iter().map(|t| sessions.get(t).is_some()).collect();
        assert_eq!(live.iter().filter(|l| **l).count(), SESSIONS_PER_CALLER);
        assert!(live[..5].iter().all(|l| !l), "the oldest ended: {live:?}");
        assert!(live[5..].iter().all(|l| *l));
        // Another caller's sessions are not touched.
        let admin = sessions.create(Caller::Admin);
        assert_eq!(sessions.get(&admin), Some(Caller::Admin));
        assert_eq!(sessions.get(&tokens[24]), Some(merchant));
    }

    #[test]
    fn a_page_refreshing_itself_does_not_keep_a_session_alive() {
        let sessions = Sessions::default();
        let token = sessions.create(Caller::Admin);
        let seen = |sessions: &Sessions| sessions.map.lock().unwrap()[&token].last_seen;
        let before = seen(&sessions);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(sessions.peek(&token), Some(Caller::Admin));
        assert_eq!(seen(&sessions), before, "a refresh is no activity");
        assert_eq!(sessions.get(&token), Some(Caller::Admin));
        assert!(seen(&sessions) > before, "a request from a person is");
    }

    #[test]
    fn an_idle_or_expired_session_is_over() {
        let now = Instant::now();
        let session = Session {
            caller: Caller::Admin,
            number: 0,
            expires: now + SESSION_TTL,
            last_seen: now,
        };
        assert!(session.live(now));
        assert!(!session.live(now + IDLE_TTL));
        let expired = Session {
            expires: now,
            ..session
        };
        assert!(!expired.live(now));
    }
}
