//! Who may see `/admin`, and which admin form posts are honoured.
//!
//! **Password.** HTTP Basic (the scheme in any case, RFC 7235): the user
//! name must equal `--admin-user` (`admin` by default) and the password
//! `--admin-password`. Each side is hashed (SHA-256) and the digests
//! compared in constant time (`subtle`), both always, so neither the
//! secrets' bytes nor their lengths nor which one was wrong show in the
//! timing. Without a configured password the admin pages do not exist
//! (404): they are never open.
//!
//! **Cross-site posts (CSRF).** A browser sends Basic credentials with
//! every request to the site, including a form another site makes it
//! submit, so the password alone does not prove the operator meant the
//! post. Admin `POST`s must also come from one of the shop's own pages:
//! their `Origin` (or, when a browser sends none, their `Referer`, which
//! the pages' `Referrer-Policy: same-origin` keeps for same-site posts)
//! must name the host the request was sent to (`Host`), or the shop's
//! public URL. Browsers set both headers themselves; a page elsewhere
//! cannot forge them. A post with neither, or with `Origin: null`, is
//! refused.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The realm browsers show in their password prompt.
pub const REALM: &str = "ipn shop admin";

/// What a request to an admin page may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No admin password is configured: there is no admin.
    Disabled,
    /// No credentials, or the wrong password.
    Denied,
    Granted,
}

/// Checks the request's Basic credentials against `user` and `password`.
pub fn check(headers: &HeaderMap, user: &str, password: Option<&str>) -> Access {
    let Some(password) = password else {
        return Access::Disabled;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(basic_credentials);
    match given {
        Some((given_user, given_password))
            if bool::from(
                same_secret(&given_user, user) & same_secret(&given_password, password),
            ) =>
        {
            Access::Granted
        }
        _ => Access::Denied,
    }
}

/// The user name and password of an `Authorization: Basic …` value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn same_secret(given: &str, expected: &str) -> subtle::Choice {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected)
}

pub use ipn_web::same_origin;

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn basic(user_and_password: &str) -> HeaderMap {
        let value = format!("Basic {}", STANDARD.encode(user_and_password));
        with(&[(header::AUTHORIZATION, &value)])
    }

    #[test]
    fn the_user_and_the_password_are_required_and_must_match() {
        let pw = Some("s3cret:pw");
        let check = |headers: &HeaderMap| check(headers, "admin", pw);
        assert_eq!(check(&HeaderMap::new()), Access::Denied);
        assert_eq!(check(&basic("admin:wrong")), Access::Denied);
        assert_eq!(check(&basic("admin:s3cret")), Access::Denied);
        assert_eq!(check(&basic("admin:s3cret:pwx")), Access::Denied);
        assert_eq!(check(&basic("s3cret:pw")), Access::Denied, "user, not pw");
        assert_eq!(check(&basic("admin:s3cret:pw")), Access::Granted);
        assert_eq!(check(&basic(":s3cret:pw")), Access::Denied, "no user");
        assert_eq!(
            check(&basic("root:s3cret:pw")),
            Access::Denied,
            "other user"
        );
        assert_eq!(
            check(&basic("Admin:s3cret:pw")),
            Access::Denied,
            "user is exact"
        );
        let bearer = with(&[(header::AUTHORIZATION, "Bearer s3cret:pw")]);
        assert_eq!(check(&bearer), Access::Denied);
        let garbage = with(&[(header::AUTHORIZATION, "Basic !!!")]);
        assert_eq!(check(&garbage), Access::Denied);
        let encoded = STANDARD.encode("admin:s3cret:pw");
        for scheme in ["basic", "BASIC", "bAsIc"] {
            let lower = with(&[(header::AUTHORIZATION, &format!("{scheme} {encoded}"))]);
            assert_eq!(check(&lower), Access::Granted, "{scheme}");
        }
    }

    #[test]
    fn without_a_password_admin_is_disabled_whatever_is_sent() {
        assert_eq!(check(&HeaderMap::new(), "admin", None), Access::Disabled);
        assert_eq!(check(&basic("admin:"), "admin", None), Access::Disabled);
        assert_eq!(
            check(&basic("admin:anything"), "admin", None),
            Access::Disabled
        );
    }
}
