//! A hosted checkout session as stored, and where it stands at a given time.
//! The order it carries never changes after creation; only what paid it,
//! and when, is set, once. Expiry is not stored: a session is expired when
//! the gateway clock passes `expires_at`.

use std::fmt;

use ipn_core::billing::Plan;
use ipn_core::id::{CheckoutSessionId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::Money;
use ipn_core::payment::{Custom, Item};
use time::OffsetDateTime;
use url::Url;

/// The query parameter that carries the session id back to the shop on
/// `success_url` and `cancel_url`.
pub const RETURN_PARAMETER: &str = "session_id";

/// A checkout session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: CheckoutSessionId,
    pub merchant_id: MerchantId,
    pub invoice: Option<String>,
    /// The total, more than zero (the items' total when there are items);
    /// with a plan, the amount charged each period.
    pub amount: Money,
    pub items: Vec<Item>,
    pub custom: Option<Custom>,
    /// Prefills the page's email field.
    pub customer_email: Option<String>,
    /// Absolute http(s) URLs, as the merchant gave them.
    pub success_url: String,
    pub cancel_url: String,
    /// Subscription mode: paying starts a subscription on these terms.
    pub plan: Option<Plan>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The payment that paid it, once paid (payment mode).
    pub payment_id: Option<PaymentId>,
    /// The subscription that paid it, once paid (subscription mode).
    pub subscription_id: Option<SubscriptionId>,
    pub paid_at: Option<OffsetDateTime>,
}

/// What paid a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidBy {
    Payment(PaymentId),
    Subscription(SubscriptionId),
}

impl fmt::Display for PaidBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payment(id) => write!(f, "payment {id}"),
            Self::Subscription(id) => write!(f, "subscription {id}"),
        }
    }
}

/// Where a session stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for the customer.
    Open,
    /// A payment was accepted (completed, or pending review); final.
    Paid,
    /// Not paid before `expires_at`; final.
    Expired,
}

impl SessionStatus {
    /// The name on the wire: `open`, `paid`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Expired => "expired",
        }
    }
}

/// Why a session cannot be paid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRefusal {
    #[error("no such checkout session")]
    NotFound,
    #[error("this checkout session is already paid ({0})")]
    Paid(PaidBy),
    #[error("this checkout session has expired")]
    Expired,
}

impl CheckoutSession {
    /// The name of its mode on the wire: `payment` or `subscription`.
    pub fn mode(&self) -> &'static str {
        if self.plan.is_some() {
            "subscription"
        } else {
            "payment"
        }
    }

    /// The payment or subscription that paid it, if any.
    pub fn paid_by(&self) -> Option<PaidBy> {
        match (self.payment_id, self.subscription_id) {
            (Some(id), _) => Some(PaidBy::Payment(id)),
            (None, Some(id)) => Some(PaidBy::Subscription(id)),
            (None, None) => None,
        }
    }

    pub fn status(&self, now: OffsetDateTime) -> SessionStatus {
        // Paid wins over expired: a session paid in time stays paid.
        if self.paid_by().is_some() {
            SessionStatus::Paid
        } else if now >= self.expires_at {
            SessionStatus::Expired
        } else {
            SessionStatus::Open
        }
    }

    /// Whether a payment (or subscription) may be made for this session at
    /// `now`.
    pub fn payable(&self, now: OffsetDateTime) -> Result<(), CheckoutRefusal> {
        match (self.paid_by(), self.status(now)) {
            (Some(by), _) => Err(CheckoutRefusal::Paid(by)),
            (None, SessionStatus::Expired) => Err(CheckoutRefusal::Expired),
            _ => Ok(()),
        }
    }

    /// `success_url` with the session id added, where the customer goes
    /// after paying.
    pub fn success_redirect(&self) -> Result<Url, url::ParseError> {
        with_session_id(&self.success_url, self.id)
    }

    /// `cancel_url` with the session id added, the page's way back.
    pub fn cancel_redirect(&self) -> Result<Url, url::ParseError> {
        with_session_id(&self.cancel_url, self.id)
    }
}

fn with_session_id(base: &str, id: CheckoutSessionId) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(base)?;
    url.query_pairs_mut()
        .append_pair(RETURN_PARAMETER, &id.to_string());
    Ok(url)
}

/// A session of $19.99 in payment mode, open for a day from `now`.
#[cfg(test)]
pub(crate) fn sample(now: OffsetDateTime) -> CheckoutSession {
    CheckoutSession {
        id: CheckoutSessionId::generate(now),
        merchant_id: MerchantId::generate(now),
        invoice: Some("order-1".to_owned()),
        amount: Money::new(1999, ipn_core::money::Currency::USD),
        items: Vec::new(),
        custom: None,
        customer_email: None,
        success_url: "https://shop.example/paid?order=1".to_owned(),
        cancel_url: "https://shop.example/cart".to_owned(),
        plan: None,
        created_at: now,
        expires_at: now + time::Duration::hours(24),
        payment_id: None,
        subscription_id: None,
        paid_at: None,
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    fn session(now: OffsetDateTime) -> CheckoutSession {
        sample(now)
    }

    #[test]
    fn a_session_is_open_until_it_expires_and_paid_for_good() {
        let now = OffsetDateTime::now_utc();
        let mut s = session(now);
        assert_eq!(s.status(now), SessionStatus::Open);
        assert_eq!(s.payable(now), Ok(()));
        let later = now + Duration::hours(24);
        assert_eq!(s.status(later), SessionStatus::Expired);
        assert_eq!(s.payable(later), Err(CheckoutRefusal::Expired));
        let payment_id = PaymentId::generate(now);
        s.payment_id = Some(payment_id);
        assert_eq!(s.status(later), SessionStatus::Paid);
        let paid = CheckoutRefusal::Paid(PaidBy::Payment(payment_id));
        assert_eq!(s.payable(now), Err(paid));
        assert_eq!(s.payable(later), Err(paid));

        let mut s = session(now);
        s.plan = Some(Plan::new(ipn_core::subscription::Interval::Month, 1, 0, None).unwrap());
        assert_eq!(s.mode(), "subscription");
        let subscription_id = SubscriptionId::generate(now);
        s.subscription_id = Some(subscription_id);
        assert_eq!(s.status(later), SessionStatus::Paid);
        let paid = CheckoutRefusal::Paid(PaidBy::Subscription(subscription_id));
        assert_eq!(s.payable(now), Err(paid));
    }

    #[test]
    fn the_session_id_is_added_to_the_return_url() {
        let now = OffsetDateTime::now_utc();
        let s = session(now);
        assert_eq!(
            s.success_redirect().unwrap().as_str(),
            format!("https://shop.example/paid?order=1&session_id={}", s.id)
        );
        assert_eq!(
            s.cancel_redirect().unwrap().as_str(),
            format!("https://shop.example/cart?session_id={}", s.id)
        );
    }
}
