//! Digital download grants: the rules of a grant, its link, and the route
//! that serves it.
//!
//! When an order is paid, the notification handler calls [`grant`] once per
//! digital line, inside its own transaction, so the grant commits with the
//! state change that earned it; a refund or chargeback revokes the order's
//! grants, a canceled chargeback restores them.
//!
//! - `mod.rs` (here): the grant's rules: what it may hold, its states
//!   ([`Grant::state`]), and [`take`], which decides whether a use may be
//!   taken and takes it, in one write of the writer.
//! - `token.rs`: the link's token, `base64url(id).base64url(HMAC-SHA256)`.
//! - `route.rs`: `GET /downloads/{token}`, which takes one use and streams
//!   the file from the downloads directory.
//!
//! **Invariant:** the row is the truth. The token only proves that we issued
//! the grant id (so ids cannot be guessed or enumerated); expiry, the use
//! count and revocation are read from the row at every request, so a
//! revocation takes effect at once, without a list of dead tokens. A grant
//! with N uses is taken at most N times: [`take`] checks and counts a use
//! in one write, and the writer runs one write at a time.

mod route;
pub mod token;

use anyhow::{Context as _, bail};
use time::OffsetDateTime;

use crate::clock::millis;
use crate::storage::{Grant, NewGrant, StoreError, Tx};

pub use route::{DownloadError, Downloads, router};
pub use token::SigningKey;

/// How long a grant lasts and how often it may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// From the grant's creation; 7 days by default.
    pub expires_after: time::Duration,
    /// Successful downloads allowed; 5 by default, so a customer can fetch
    /// the file again on another device, or after a mail scanner has
    /// followed the link once.
    pub max_uses: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            expires_after: time::Duration::days(7),
            max_uses: 5,
        }
    }
}

/// One digital line of a paid order, as the handler knows it.
#[derive(Debug, Clone, Copy)]
pub struct GrantRequest<'a> {
    pub order_id: &'a str,
    pub sku: &'a str,
    /// The product's name, for the email and the admin pages.
    pub name: &'a str,
    /// The catalog's `download`: a plain file name in the downloads
    /// directory.
    pub file: &'a str,
}

/// Whether a grant can be downloaded now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantState {
    Active,
    /// `now` has reached `expires_at`.
    Expired,
    /// All `max_uses` are spent.
    UsedUp,
    /// Revoked (refund, chargeback); wins over the other reasons, since it
    /// is the one the customer most needs to hear.
    Revoked {
        reason: String,
    },
}

/// The rules of a stored grant (`storage::Grant`).
impl Grant {
    /// The token for this grant's link (see [`path`]).
    pub fn token(&self, key: &SigningKey) -> String {
        token::sign(key, &self.id)
    }

    /// Where the grant stands at `now`: only an active one may be taken.
    pub fn state(&self, now: OffsetDateTime) -> GrantState {
        if self.revoked_at.is_some() {
            GrantState::Revoked {
                reason: self.revoked_reason.clone().unwrap_or_default(),
            }
        } else if millis(now) >= millis(self.expires_at) {
            GrantState::Expired
        } else if self.uses >= self.max_uses {
            GrantState::UsedUp
        } else {
            GrantState::Active
        }
    }
}

/// The URL path of a grant's link: `/downloads/{token}`. The token is
/// URL-safe, so it needs no escaping.
pub fn path(token: &str) -> String {
    format!("/downloads/{token}")
}

/// Grants the download for one digital line of a paid order, in the
/// caller's transaction.
///
/// Idempotent: if `(order_id, sku)` already has a grant, that grant is
/// returned unchanged (its uses, expiry and any revocation included), so an
/// IPN applied twice or replayed grants once.
pub fn grant(
    tx: &dyn Tx,
    request: &GrantRequest<'_>,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Grant, StoreError> {
    if !is_plain_file_name(request.file) {
        bail!(
            "order {} sku {}: download {:?} is not a plain file name",
            request.order_id,
            request.sku,
            request.file
        );
    }
    if policy.max_uses == 0 || !policy.expires_after.is_positive() {
        bail!("a download policy needs at least one use and a positive lifetime");
    }
    let expires_at = now
        .checked_add(policy.expires_after)
        .context("the download's expiry is out of range")?;
    tx.grant(&NewGrant {
        id: &format!("dl_{}", ulid::Ulid::new()),
        order_id: request.order_id,
        sku: request.sku,
        name: request.name,
        file: request.file,
        created_at: now,
        expires_at,
        max_uses: policy.max_uses,
    })
}

/// What asking for one use of a grant came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// A use was counted; the grant as it was before.
    Taken(Grant),
    /// The grant is not active (anymore): it as it is now.
    Refused(Grant),
    /// No such grant.
    NotFound,
}

/// Takes one use of grant `id` if it is active at `now`, in the writer's
/// transaction: the check and the count are one write, so racing requests
/// can never share the last use.
pub fn take(tx: &dyn Tx, id: &str, now: OffsetDateTime) -> Result<Take, StoreError> {
    let Some(grant) = tx.download(id)? else {
        return Ok(Take::NotFound);
    };
    if grant.state(now) != GrantState::Active {
        return Ok(Take::Refused(grant));
    }
    tx.count_download_use(id)?;
    Ok(Take::Taken(grant))
}

/// A file name that names a file inside the downloads directory and nothing
/// else: one normal path component, no separator of any platform, no
/// control character (NUL included). The catalog checks this at start; the
/// grant and the route check again, since the row could come from anywhere.
fn is_plain_file_name(file: &str) -> bool {
    let mut components = std::path::Path::new(file).components();
    !file.is_empty()
        && file != "."
        && file != ".."
        && !file.contains(['/', '\\'])
        && !file.chars().any(char::is_control)
        && matches!(
            (components.next(), components.next()),
            (Some(std::path::Component::Normal(_)), None)
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::storage::testing::{TestStore, each_store};
    use crate::storage::{Line, Order, Store};

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    /// Puts two orders, `ord_1` and `ord_2`, to grant downloads of in a
    /// fresh database.
    pub(crate) fn shop(store: &TestStore) {
        store
            .write_with(|tx| {
                for id in ["ord_1", "ord_2"] {
                    tx.insert_order(&order(id))?;
                }
                Ok(())
            })
            .unwrap();
    }

    fn order(id: &str) -> Order {
        let usd = ipn_core::money::Currency::USD;
        let price = ipn_core::money::Money::new(100, usd);
        Order {
            id: id.to_owned(),
            status: "paid".into(),
            customer_email: "ann@example.com".into(),
            total: price,
            lines: vec![Line {
                sku: "book".into(),
                name: "The Book".into(),
                kind: ipn_core::payment::ItemKind::Digital,
                quantity: 1,
                unit_price: price,
                total: price,
            }],
            checkout_session_id: format!("cs_{id}"),
            checkout_url: "u".into(),
            merchant_id: None,
            created_at: 0,
            paid_at: None,
            fulfilled_at: None,
            plan: None,
            subscription_id: None,
        }
    }

    pub(crate) fn request<'a>(order_id: &'a str, sku: &'a str) -> GrantRequest<'a> {
        GrantRequest {
            order_id,
            sku,
            name: "The Book",
            file: "book.pdf",
        }
    }

    fn grant_one(store: &dyn Store, order_id: &str, sku: &str, policy: &Policy) -> Grant {
        store
            .write_with(|tx| grant(tx, &request(order_id, sku), policy, NOW))
            .unwrap()
    }

    fn take_one(store: &dyn Store, id: &str, now: OffsetDateTime) -> bool {
        let take = store.write_with(|tx| take(tx, id, now)).unwrap();
        matches!(take, Take::Taken(_))
    }

    fn get(store: &dyn Store, id: &str) -> Option<Grant> {
        store.read_with(|r| r.download(id)).unwrap()
    }

    #[test]
    fn a_grant_is_made_once_per_order_and_sku() {
        each_store("a_grant_is_made_once_per_order_and_sku", |store| {
            shop(store);
            let policy = Policy::default();
            let first = grant_one(store, "ord_1", "book", &policy);
            assert!(first.id.starts_with("dl_"), "{}", first.id);
            assert_eq!(first.expires_at, NOW + Duration::days(7));
            assert_eq!((first.uses, first.max_uses), (0, 5));
            assert_eq!(first.state(NOW), GrantState::Active);

            // A replayed IPN, later and under another policy: the same grant.
            assert!(take_one(store, &first.id, NOW));
            let other = Policy {
                expires_after: Duration::days(1),
                max_uses: 1,
            };
            let again = store
                .write_with(|tx| {
                    grant(
                        tx,
                        &request("ord_1", "book"),
                        &other,
                        NOW + Duration::hours(1),
                    )
                })
                .unwrap();
            assert_eq!(
                again,
                Grant {
                    uses: 1,
                    ..first.clone()
                }
            );

            let second_line = grant_one(store, "ord_1", "song", &policy);
            let other_order = grant_one(store, "ord_2", "book", &policy);
            assert_ne!(second_line.id, first.id);
            assert_ne!(other_order.id, first.id);
            let ids: Vec<_> = store
                .read_with(|r| r.order_downloads("ord_1"))
                .unwrap()
                .into_iter()
                .map(|g| g.id)
                .collect();
            assert_eq!(ids, [first.id, second_line.id]);
        });
    }

    #[test]
    fn a_file_name_that_could_leave_the_directory_is_refused() {
        each_store(
            "a_file_name_that_could_leave_the_directory_is_refused",
            |store| {
                shop(store);
                for file in [
                    "",
                    ".",
                    "..",
                    "../x",
                    "a/b",
                    "a\\b",
                    "/etc/passwd",
                    "a\0b",
                    "a\nb",
                ] {
                    let request = GrantRequest {
                        file,
                        ..request("ord_1", "book")
                    };
                    let granted =
                        store.write_with(|tx| grant(tx, &request, &Policy::default(), NOW));
                    assert!(granted.is_err(), "{file:?} was granted");
                }
                assert!(is_plain_file_name("v1..2 final.zip"));
            },
        );
    }

    #[test]
    fn a_grant_expires_at_its_expiry_to_the_millisecond() {
        each_store(
            "a_grant_expires_at_its_expiry_to_the_millisecond",
            |store| {
                shop(store);
                let grant = grant_one(store, "ord_1", "book", &Policy::default());
                let end = grant.expires_at;
                let just_before = end - Duration::milliseconds(1);
                assert_eq!(grant.state(just_before), GrantState::Active);
                assert_eq!(grant.state(end), GrantState::Expired);
                assert_eq!(grant.state(end + Duration::days(1)), GrantState::Expired);
                // Taking a use agrees with `state` on both sides of the line.
                assert!(!take_one(store, &grant.id, end));
                assert!(take_one(store, &grant.id, just_before));
            },
        );
    }

    #[test]
    fn uses_run_out_at_the_limit() {
        each_store("uses_run_out_at_the_limit", |store| {
            shop(store);
            let policy = Policy {
                max_uses: 2,
                ..Policy::default()
            };
            let grant = grant_one(store, "ord_1", "book", &policy);
            assert!(take_one(store, &grant.id, NOW));
            assert!(take_one(store, &grant.id, NOW));
            let third = store.write_with(|tx| take(tx, &grant.id, NOW)).unwrap();
            let Take::Refused(spent) = third else {
                panic!("{third:?}")
            };
            assert_eq!(spent.uses, 2);
            assert_eq!(spent.state(NOW), GrantState::UsedUp);

            assert!(get(store, "dl_nope").is_none());
            let none = store.write_with(|tx| take(tx, "dl_nope", NOW)).unwrap();
            assert_eq!(none, Take::NotFound);
        });
    }

    #[test]
    fn revoking_wins_over_other_states() {
        each_store("revoking_wins_over_other_states", |store| {
            shop(store);
            let policy = Policy::default();
            let book = grant_one(store, "ord_1", "book", &policy);
            grant_one(store, "ord_1", "song", &policy);
            let untouched = grant_one(store, "ord_2", "book", &policy);
            store
                .write_with(|tx| tx.revoke_downloads("ord_1", "refunded", millis(NOW)))
                .unwrap();

            let revoked = get(store, &book.id).unwrap();
            assert_eq!(revoked.revoked_at, Some(NOW));
            let refunded = GrantState::Revoked {
                reason: "refunded".into(),
            };
            // Revocation is what the customer hears, even once expired.
            assert_eq!(revoked.state(NOW), refunded);
            assert_eq!(revoked.state(NOW + Duration::days(30)), refunded);
            assert!(!take_one(store, &book.id, NOW));
            let other = get(store, &untouched.id).unwrap();
            assert_eq!(other.state(NOW), GrantState::Active);
        });
    }

    #[test]
    fn a_restore_lifts_only_revocations_for_its_reason() {
        each_store("a_restore_lifts_only_revocations_for_its_reason", |store| {
            shop(store);
            let grant = grant_one(store, "ord_1", "book", &Policy::default());
            store
                .write_with(|tx| {
                    assert_eq!(tx.revoke_downloads("ord_1", "reversed", millis(NOW))?, 1);
                    assert_eq!(tx.restore_downloads("ord_1", "refunded")?, 0);
                    assert_eq!(tx.restore_downloads("ord_1", "reversed")?, 1);
                    assert_eq!(tx.restore_downloads("ord_1", "reversed")?, 0);
                    Ok(())
                })
                .unwrap();
            let restored = get(store, &grant.id).unwrap();
            assert_eq!(restored, grant);
            assert_eq!(restored.state(NOW), GrantState::Active);
            assert!(take_one(store, &grant.id, NOW));
        });
    }

    #[test]
    fn the_path_holds_the_token() {
        each_store("the_path_holds_the_token", |store| {
            shop(store);
            let key = SigningKey::from_bytes(store.read_with(|r| r.download_key()).unwrap());
            let grant = grant_one(store, "ord_1", "book", &Policy::default());
            let token = grant.token(&key);
            assert_eq!(path(&token), format!("/downloads/{token}"));
            assert_eq!(
                token::verify(&key, &token).as_deref(),
                Some(grant.id.as_str())
            );
        });
    }
}
