//! Wrong admin passwords, counted per client: after [`LIMIT`] within
//! [`WINDOW`], the client gets `429 Too Many Requests` for the rest of the
//! window, whatever it sends, so a password cannot be guessed at the speed
//! of the network. A right password clears the count.
//!
//! **Who is counted.** A browser that once signed in carries a *known
//! device* cookie: a random id signed with the shop's HMAC key (the key
//! that signs download links, stored in the database, so the cookie
//! outlives restarts), `HttpOnly; SameSite=Strict; Path=/admin`. A request
//! with a valid one is counted per device, not per address; every other
//! request per address (the TCP peer's, `ipn_web::throttle`).
//!
//! Why: counting only per address let any client that shares the owner's
//! address (anyone on the same machine, or behind the same proxy or NAT)
//! lock the owner out by sending wrong passwords, for as long as it kept
//! doing so. A cookie that only a right password earns cannot be made by
//! such a client, so the owner's browser keeps its own count, and a
//! stranger's guessing still locks out every cookieless client of that
//! address. A device's own wrong passwords still count (against the
//! device), so a stolen cookie is no way around the limit.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use ipn_web::throttle::{Client, Throttle};

use super::auth::{self, Access};
use super::html;
use crate::config::Hidden;
use crate::downloads::SigningKey;
use crate::downloads::token;

/// Wrong passwords a client may send within [`WINDOW`].
pub const LIMIT: u32 = 10;
/// How long wrong passwords are remembered, counted from the first.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The known-device cookie's name.
pub const DEVICE_COOKIE: &str = "ipn_admin_device";
/// How long a device stays known without signing in again.
const DEVICE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// What a device id is prefixed with before it is signed, so that a
/// device cookie is never a download token and a download token never a
/// device cookie (one key signs both).
const DEVICE_PREFIX: &str = "admin-device:";

/// What the admin routes' layer needs.
#[derive(Debug, Clone)]
pub struct Guard {
    pub addresses: Arc<Throttle<IpAddr>>,
    pub devices: Arc<Throttle<String>>,
    /// Signs and checks known-device cookies.
    pub key: SigningKey,
    /// Whether the cookie is `Secure` (the shop is served over https).
    pub secure: bool,
    pub shop_name: String,
    /// The admin's credentials, checked here by themselves: whether a
    /// password was right is never read off the answer's status, which a
    /// request can make anything but 401 without a right password (a path
    /// axum refuses before the handler checks).
    admin_user: String,
    admin_password: Option<Hidden>,
}

impl Guard {
    pub fn new(
        key: SigningKey,
        secure: bool,
        shop_name: String,
        admin_user: String,
        admin_password: Option<String>,
    ) -> Self {
        Self {
            addresses: Arc::new(Throttle::new(LIMIT, WINDOW)),
            devices: Arc::new(Throttle::new(LIMIT, WINDOW)),
            key,
            secure,
            shop_name,
            admin_user,
            admin_password: admin_password.map(Hidden::new),
        }
    }

    /// The device id of a valid known-device cookie.
    fn device(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == DEVICE_COOKIE)
            .find_map(|(_, value)| token::verify(&self.key, value))
            .and_then(|id| id.strip_prefix(DEVICE_PREFIX).map(str::to_owned))
    }

    /// A `Set-Cookie` value for a new known device.
    fn new_device_cookie(&self) -> Option<HeaderValue> {
        let id = format!("{DEVICE_PREFIX}{:032x}", rand::random::<u128>());
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{DEVICE_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={}{secure}",
            token::sign(&self.key, &id),
            DEVICE_TTL.as_secs()
        ))
        .ok()
    }
}

/// Who a request is counted as.
enum Counted {
    Device(String),
    Address(IpAddr),
}

/// The layer on `/admin…`: refuses a locked-out client before anything
/// else, counts the answers that refused a password given, and makes a
/// browser that gave the right one a known device.
pub async fn guard(
    State(guard): State<Guard>,
    Client(client): Client,
    request: Request,
    next: Next,
) -> Response {
    let counted = match guard.device(request.headers()) {
        Some(device) => Counted::Device(device),
        None => Counted::Address(client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
    };
    let now = Instant::now();
    let locked = match &counted {
        Counted::Device(device) => guard.devices.locked(device, now),
        Counted::Address(ip) => guard.addresses.locked(ip, now),
    };
    if let Some(wait) = locked {
        let mut response = html::message(
            &guard.shop_name,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords",
            "Too many wrong admin passwords came from your address. Wait a minute, then try again.",
        );
        let seconds = ipn_web::throttle::retry_after(wait);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
        return response;
    }
    let tried = request.headers().contains_key(header::AUTHORIZATION);
    let access = auth::check(
        request.headers(),
        &guard.admin_user,
        guard.admin_password.as_ref().map(Hidden::reveal),
    );
    let mut response = next.run(request).await;
    if !tried {
        return response;
    }
    match access {
        // Admin is off: there is no password to guess.
        Access::Disabled => {}
        Access::Denied => match counted {
            Counted::Device(device) => guard.devices.count(device, Instant::now()),
            Counted::Address(ip) => guard.addresses.count(ip, Instant::now()),
        },
        Access::Granted => match counted {
            Counted::Device(device) => guard.devices.clear(&device),
            Counted::Address(ip) => {
                guard.addresses.clear(&ip);
                if let Some(cookie) = guard.new_device_cookie() {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
        },
    }
    response
}
