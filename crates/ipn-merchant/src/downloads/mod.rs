//! Digital download grants (DESIGN §5, "Digital goods").
//!
//! When an order is paid, the notification handler calls [`grant`] once per
//! digital line, inside its own transaction, so the grant commits with the
//! state change that earned it. A refund or chargeback calls
//! [`revoke_order`]; a canceled chargeback calls [`restore_order`].
//!
//! - `mod.rs` (here): the `downloads` table, the grant's rules and its
//!   states.
//! - `token.rs`: the link's token, `base64url(id).base64url(HMAC-SHA256)`.
//! - `route.rs`: `GET /downloads/{token}`, which takes one use and streams
//!   the file from the downloads directory.
//!
//! **Invariant:** the row is the truth. The token only proves that we issued
//! the grant id (so ids cannot be guessed or enumerated); expiry, the use
//! count and revocation are read from the row at every request, so a
//! revocation takes effect at once, without a list of dead tokens.

mod route;
pub mod token;

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OptionalExtension as _, Row, Transaction, params};
use time::OffsetDateTime;

use crate::clock::millis;

pub use route::{DownloadError, Downloads, router};
pub use token::{SigningKey, signing_key};

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

/// A download grant, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `dl_<ULID>`.
    pub id: String,
    pub order_id: String,
    pub sku: String,
    pub name: String,
    pub file: String,
    pub created_at: OffsetDateTime,
    /// The first instant at which the link no longer works.
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
    /// Downloads started so far.
    pub uses: u32,
    pub revoked_at: Option<OffsetDateTime>,
    /// Why: `refunded`, `reversed`. Set exactly when `revoked_at` is.
    pub revoked_reason: Option<String>,
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

impl Grant {
    /// The token for this grant's link (see [`path`]).
    pub fn token(&self, key: &SigningKey) -> String {
        token::sign(key, &self.id)
    }

    /// Where the grant stands at `now`. Agrees with the route's `UPDATE`,
    /// which takes a use only while `expires_at > now`.
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
    tx: &Transaction<'_>,
    request: &GrantRequest<'_>,
    policy: &Policy,
    now: OffsetDateTime,
) -> anyhow::Result<Grant> {
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
    tx.prepare_cached(
        "INSERT INTO downloads
             (id, order_id, sku, name, file, created_at, expires_at, max_uses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (order_id, sku) DO NOTHING",
    )?
    .execute(params![
        format!("dl_{}", ulid::Ulid::new()),
        request.order_id,
        request.sku,
        request.name,
        request.file,
        millis(now),
        millis(expires_at),
        policy.max_uses,
    ])
    .with_context(|| format!("granting the download of order {}", request.order_id))?;
    tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM downloads WHERE order_id = ?1 AND sku = ?2"
    ))?
    .query_row(params![request.order_id, request.sku], from_row)
    .context("reading back a download grant")
}

/// Revokes every grant of `order_id` not already revoked, with `reason`
/// (`refunded`, `reversed`); returns how many changed. A second call changes
/// nothing, and keeps the first reason.
pub fn revoke_order(
    tx: &Transaction<'_>,
    order_id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> anyhow::Result<usize> {
    if reason.is_empty() {
        bail!("a revocation needs a reason");
    }
    tx.prepare_cached(
        "UPDATE downloads SET revoked_at = ?1, revoked_reason = ?2
         WHERE order_id = ?3 AND revoked_at IS NULL",
    )?
    .execute(params![millis(now), reason, order_id])
    .with_context(|| format!("revoking the downloads of order {order_id}"))
}

/// Lifts the revocations of `order_id` made with `reason` (a canceled
/// chargeback lifts `reversed`, the order being paid again); returns how many
/// changed. A revocation for another reason stays.
pub fn restore_order(tx: &Transaction<'_>, order_id: &str, reason: &str) -> anyhow::Result<usize> {
    tx.prepare_cached(
        "UPDATE downloads SET revoked_at = NULL, revoked_reason = NULL
         WHERE order_id = ?1 AND revoked_reason = ?2",
    )?
    .execute(params![order_id, reason])
    .with_context(|| format!("restoring the downloads of order {order_id}"))
}

/// The grants of an order, in the order they were made.
pub fn for_order(conn: &Connection, order_id: &str) -> anyhow::Result<Vec<Grant>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM downloads WHERE order_id = ?1 ORDER BY rowid"
    ))?
    .query_map([order_id], from_row)?
    .collect::<Result<_, _>>()
    .with_context(|| format!("reading the downloads of order {order_id}"))
}

/// One grant by id.
fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<Grant>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM downloads WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
        .with_context(|| format!("reading download {id}"))
}

/// Takes one use of a grant if it is active at `now`; false if it is not
/// (anymore). One statement, so two racing requests can never both take the
/// last use.
fn take_use(conn: &Connection, id: &str, now: OffsetDateTime) -> anyhow::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE downloads SET uses = uses + 1
             WHERE id = ?1 AND uses < max_uses AND revoked_at IS NULL AND expires_at > ?2",
        )?
        .execute(params![id, millis(now)])
        .with_context(|| format!("taking a use of download {id}"))?;
    Ok(changed == 1)
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

const COLUMNS: &str = "id, order_id, sku, name, file, created_at, expires_at, max_uses, uses, \
                       revoked_at, revoked_reason";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: row.get(0)?,
        order_id: row.get(1)?,
        sku: row.get(2)?,
        name: row.get(3)?,
        file: row.get(4)?,
        created_at: at(row, 5)?,
        expires_at: at(row, 6)?,
        max_uses: row.get(7)?,
        uses: row.get(8)?,
        revoked_at: row
            .get::<_, Option<i64>>(9)?
            .map(|ms| from_millis(ms, 9))
            .transpose()?,
        revoked_reason: row.get(10)?,
    })
}

fn at(row: &Row<'_>, index: usize) -> rusqlite::Result<OffsetDateTime> {
    from_millis(row.get(index)?, index)
}

fn from_millis(ms: i64, index: usize) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            Box::new(error),
        )
    })
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    /// The two orders the grants belong to (a grant references its order).
    pub(super) const ORDERS: &str = "INSERT INTO orders (id, status, customer_email, currency,
             total, checkout_session_id, checkout_url, created_at)
         VALUES ('ord_1', 'paid', 'ann@example.com', 'USD', 100, 'cs_1', 'u', 0),
                ('ord_2', 'paid', 'ann@example.com', 'USD', 100, 'cs_2', 'u', 0);";

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::storage::sqlite::migrate(&mut conn).unwrap();
        conn.execute_batch(ORDERS).unwrap();
        conn
    }

    fn request<'a>(order_id: &'a str, sku: &'a str) -> GrantRequest<'a> {
        GrantRequest {
            order_id,
            sku,
            name: "The Book",
            file: "book.pdf",
        }
    }

    fn grant_one(conn: &mut Connection, order_id: &str, sku: &str, policy: &Policy) -> Grant {
        let tx = conn.transaction().unwrap();
        let grant = grant(&tx, &request(order_id, sku), policy, NOW).unwrap();
        tx.commit().unwrap();
        grant
    }

    #[test]
    fn a_grant_is_made_once_per_order_and_sku() {
        let mut conn = db();
        let policy = Policy::default();
        let first = grant_one(&mut conn, "ord_1", "book", &policy);
        assert!(first.id.starts_with("dl_"), "{}", first.id);
        assert_eq!(first.expires_at, NOW + Duration::days(7));
        assert_eq!((first.uses, first.max_uses), (0, 5));
        assert_eq!(first.state(NOW), GrantState::Active);

        // A replayed IPN, later and under another policy: the same grant.
        take_use(&conn, &first.id, NOW).unwrap();
        let tx = conn.transaction().unwrap();
        let other = Policy {
            expires_after: Duration::days(1),
            max_uses: 1,
        };
        let again = grant(
            &tx,
            &request("ord_1", "book"),
            &other,
            NOW + Duration::hours(1),
        );
        tx.commit().unwrap();
        assert_eq!(
            again.unwrap(),
            Grant {
                uses: 1,
                ..first.clone()
            }
        );

        let second_line = grant_one(&mut conn, "ord_1", "song", &policy);
        let other_order = grant_one(&mut conn, "ord_2", "book", &policy);
        assert_ne!(second_line.id, first.id);
        assert_ne!(other_order.id, first.id);
        let ids: Vec<_> = for_order(&conn, "ord_1")
            .unwrap()
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(ids, [first.id, second_line.id]);
    }

    #[test]
    fn a_file_name_that_could_leave_the_directory_is_refused() {
        let mut conn = db();
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
            let tx = conn.transaction().unwrap();
            let request = GrantRequest {
                file,
                ..request("ord_1", "book")
            };
            assert!(
                grant(&tx, &request, &Policy::default(), NOW).is_err(),
                "{file:?} was granted"
            );
        }
        assert!(is_plain_file_name("v1..2 final.zip"));
    }

    #[test]
    fn a_grant_expires_at_its_expiry_to_the_millisecond() {
        let mut conn = db();
        let grant = grant_one(&mut conn, "ord_1", "book", &Policy::default());
        let end = grant.expires_at;
        let just_before = end - Duration::milliseconds(1);
        assert_eq!(grant.state(just_before), GrantState::Active);
        assert_eq!(grant.state(end), GrantState::Expired);
        assert_eq!(grant.state(end + Duration::days(1)), GrantState::Expired);
        // The route's update agrees with `state` on both sides of the line.
        assert!(!take_use(&conn, &grant.id, end).unwrap());
        assert!(take_use(&conn, &grant.id, just_before).unwrap());
    }

    #[test]
    fn uses_run_out_at_the_limit() {
        let mut conn = db();
        let policy = Policy {
            max_uses: 2,
            ..Policy::default()
        };
        let grant = grant_one(&mut conn, "ord_1", "book", &policy);
        assert!(take_use(&conn, &grant.id, NOW).unwrap());
        assert!(take_use(&conn, &grant.id, NOW).unwrap());
        assert!(!take_use(&conn, &grant.id, NOW).unwrap());
        let spent = get(&conn, &grant.id).unwrap().unwrap();
        assert_eq!(spent.uses, 2);
        assert_eq!(spent.state(NOW), GrantState::UsedUp);

        assert!(get(&conn, "dl_nope").unwrap().is_none());
    }

    #[test]
    fn revoking_counts_what_changed_and_wins_over_other_states() {
        let mut conn = db();
        let policy = Policy::default();
        let book = grant_one(&mut conn, "ord_1", "book", &policy);
        grant_one(&mut conn, "ord_1", "song", &policy);
        let untouched = grant_one(&mut conn, "ord_2", "book", &policy);

        let tx = conn.transaction().unwrap();
        assert_eq!(revoke_order(&tx, "ord_1", "refunded", NOW).unwrap(), 2);
        assert_eq!(revoke_order(&tx, "ord_1", "reversed", NOW).unwrap(), 0);
        assert_eq!(revoke_order(&tx, "ord_9", "refunded", NOW).unwrap(), 0);
        tx.commit().unwrap();

        let revoked = get(&conn, &book.id).unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(NOW));
        let refunded = GrantState::Revoked {
            reason: "refunded".into(),
        };
        // Revocation is what the customer hears, even once expired.
        assert_eq!(revoked.state(NOW), refunded);
        assert_eq!(revoked.state(NOW + Duration::days(30)), refunded);
        assert!(!take_use(&conn, &book.id, NOW).unwrap());
        let other = get(&conn, &untouched.id).unwrap().unwrap();
        assert_eq!(other.state(NOW), GrantState::Active);
    }

    #[test]
    fn a_restore_lifts_only_revocations_for_its_reason() {
        let mut conn = db();
        let grant = grant_one(&mut conn, "ord_1", "book", &Policy::default());
        let tx = conn.transaction().unwrap();
        assert_eq!(revoke_order(&tx, "ord_1", "reversed", NOW).unwrap(), 1);
        assert_eq!(restore_order(&tx, "ord_1", "refunded").unwrap(), 0);
        assert_eq!(restore_order(&tx, "ord_1", "reversed").unwrap(), 1);
        assert_eq!(restore_order(&tx, "ord_1", "reversed").unwrap(), 0);
        tx.commit().unwrap();
        let restored = get(&conn, &grant.id).unwrap().unwrap();
        assert_eq!(restored, grant);
        assert_eq!(restored.state(NOW), GrantState::Active);
        assert!(take_use(&conn, &grant.id, NOW).unwrap());
    }

    #[test]
    fn the_schema_makes_one_random_key_per_database() {
        let a = signing_key(&db()).unwrap();
        let b = signing_key(&db()).unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "SigningKey(***)");
        assert!(
            db().execute(
                "INSERT INTO download_secret (id, key) VALUES (2, randomblob(32))",
                []
            )
            .is_err()
        );
    }

    #[test]
    fn the_path_holds_the_token() {
        let mut conn = db();
        let key = signing_key(&conn).unwrap();
        let grant = grant_one(&mut conn, "ord_1", "book", &Policy::default());
        let token = grant.token(&key);
        assert_eq!(path(&token), format!("/downloads/{token}"));
        assert_eq!(
            token::verify(&key, &token).as_deref(),
            Some(grant.id.as_str())
        );
    }
}
