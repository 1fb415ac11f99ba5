//! A subscription as stored: the object events carry, and what billing needs.

use ipn_core::subscription::Subscription;
use time::OffsetDateTime;

use super::payment::PaymentMethod;

/// A subscription row: the object events carry, and what billing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub subscription: Subscription,
    pub method: PaymentMethod,
    /// Failed charges of the cycle being billed.
    pub failed_attempts: u32,
    /// When billing must act next (charge, retry, expire); `None` once
    /// expired.
    pub next_action_at: Option<OffsetDateTime>,
}
