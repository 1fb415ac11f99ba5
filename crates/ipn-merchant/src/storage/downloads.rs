//! Download grants, one per digital line of a paid order, and the key
//! their links are signed with. The row is the truth: expiry, the use
//! count and revocation are read from it at every request.

use time::OffsetDateTime;

use super::StoreError;

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

/// A grant to make.
#[derive(Debug, Clone, Copy)]
pub struct NewGrant<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub sku: &'a str,
    pub name: &'a str,
    pub file: &'a str,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
}

pub trait DownloadReads {
    fn download(&self, id: &str) -> Result<Option<Grant>, StoreError>;
    /// The 32 random bytes that sign download links, made by the schema.
    fn download_key(&self) -> Result<[u8; 32], StoreError>;
}

pub trait DownloadWrites {
    /// Stores a grant unless its order and sku have one already; returns
    /// the grant stored (that one unchanged, uses and revocation included).
    fn grant(&self, grant: &NewGrant<'_>) -> Result<Grant, StoreError>;
    /// Revokes every grant of the order not already revoked, with `reason`;
    /// returns how many changed. A second call keeps the first reason.
    fn revoke_downloads(&self, order_id: &str, reason: &str, now: i64)
    -> Result<usize, StoreError>;
    /// Lifts the revocations of the order made with `reason`; returns how
    /// many changed. A revocation for another reason stays.
    fn restore_downloads(&self, order_id: &str, reason: &str) -> Result<usize, StoreError>;
    /// Counts one use of a grant.
    fn count_download_use(&self, id: &str) -> Result<(), StoreError>;
}
