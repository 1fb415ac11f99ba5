//! Hosted checkout sessions: an order the merchant registers
//! (`POST /v1/checkout/sessions`) and its customer pays on the gateway's own
//! page (`/checkout/{id}`, see `api/checkout_page.rs`).
//!
//! A session is in one of two modes, fixed at creation: `payment` (a
//! one-time payment of the order) or `subscription` (the amount is charged
//! every period of its [`Plan`]).
//!
//! A session is paid at most once. That guarantee lives in the writer's
//! transaction (`storage::sqlite`, `Write::CheckoutPayment` and
//! `Write::CheckoutSubscription`): the session is read and checked open, the
//! payment or subscription is created by the same operation as
//! `POST /v1/payments` ([`crate::payments::apply`]) or `POST
//! /v1/subscriptions` ([`crate::subscriptions::apply`]), and the session is
//! marked paid, all in one transaction of the one writer. Two submits that
//! race are applied one after the other, so the second finds the session
//! paid and creates nothing.
//!
//! The order (amount, items, plan, URLs) never changes after creation; only
//! `payment_id` or `subscription_id`, and `paid_at`, are set, once. Expiry
//! is not stored: a session is expired when the gateway clock passes
//! `expires_at`, so the test clock expires sessions without any sweeper.

use std::fmt;

use ipn_core::billing::Plan;
use ipn_core::id::{CheckoutSessionId, MerchantId, PaymentId, SubscriptionId};
use ipn_core::money::Money;
use ipn_core::payment::{Custom, Item, PaymentStatus};
use time::{Duration, OffsetDateTime};
use url::Url;

use crate::payments::PaymentWrite;
use crate::subscriptions::SubscriptionWrite;

/// How long a session can be paid after it is created.
pub const LIFETIME: Duration = Duration::hours(24);

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

/// Whether a new payment in this state pays its session. A declined (or
/// failed) charge leaves the session open, so the customer can try another
/// card; a charge pending review does pay it, as the money is on its way and
/// the payment's own events say how it ends.
pub fn settles(status: PaymentStatus) -> bool {
    !matches!(status, PaymentStatus::Denied | PaymentStatus::Failed)
}

/// Why a return URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error("must be an absolute http(s) URL: {0}")]
    Malformed(#[from] url::ParseError),
    #[error("must be an http or https URL, not {0}:")]
    Scheme(String),
    #[error("must be at most {max} bytes long", max = MAX_URL)]
    TooLong,
}

/// Longest return URL accepted: what browsers and servers commonly allow.
pub const MAX_URL: usize = 2048;

/// Checks a `success_url` or `cancel_url`: an absolute http(s) URL with a
/// host. Anything else (a relative path, `javascript:`) could not take the
/// customer back to the shop, or would run in the gateway's page.
pub fn check_return_url(text: &str) -> Result<(), ReturnUrlError> {
    if text.len() > MAX_URL {
        return Err(ReturnUrlError::TooLong);
    }
    let url = Url::parse(text)?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(()),
        "http" | "https" => Err(ReturnUrlError::Malformed(url::ParseError::EmptyHost)),
        other => Err(ReturnUrlError::Scheme(other.to_owned())),
    }
}

fn with_session_id(base: &str, id: CheckoutSessionId) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(base)?;
    url.query_pairs_mut()
        .append_pair(RETURN_PARAMETER, &id.to_string());
    Ok(url)
}

/// Pays a session: the payment's create operation, applied only while the
/// session is open, and marking it paid when the charge is accepted.
#[derive(Debug, Clone)]
pub struct CheckoutPayment {
    pub session_id: CheckoutSessionId,
    /// A `PaymentChange::Create` for the session's merchant.
    pub payment: PaymentWrite,
}

/// Pays a subscription-mode session: the subscription's signup, applied
/// only while the session is open, and marking it paid when the subscription
/// is created. A refused signup (declined card) leaves the session open.
#[derive(Debug, Clone)]
pub struct CheckoutSubscription {
    pub session_id: CheckoutSessionId,
    /// A `SubscriptionChange::Create` for the session's merchant.
    pub subscription: SubscriptionWrite,
}

#[cfg(test)]
mod tests {
    use ipn_core::money::Currency;

    use super::*;

    fn session(now: OffsetDateTime) -> CheckoutSession {
        CheckoutSession {
            id: CheckoutSessionId::generate(now),
            merchant_id: MerchantId::generate(now),
            invoice: Some("order-1".to_owned()),
            amount: Money::new(1999, Currency::USD),
            items: Vec::new(),
            custom: None,
            customer_email: None,
            success_url: "https://shop.example/paid?order=1".to_owned(),
            cancel_url: "https://shop.example/cart".to_owned(),
            plan: None,
            created_at: now,
            expires_at: now + LIFETIME,
            payment_id: None,
            subscription_id: None,
            paid_at: None,
        }
    }

    #[test]
    fn a_session_is_open_until_it_expires_and_paid_for_good() {
        let now = OffsetDateTime::now_utc();
        let mut s = session(now);
        assert_eq!(s.status(now), SessionStatus::Open);
        assert_eq!(s.payable(now), Ok(()));
        let later = now + LIFETIME;
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
    fn return_urls_must_be_absolute_http() {
        for good in [
            "https://shop.example/ok",
            "http://127.0.0.1:7701/orders/1?x=1",
        ] {
            assert_eq!(check_return_url(good), Ok(()), "{good}");
        }
        for bad in [
            "/orders/1",
            "shop.example/ok",
            "javascript:alert(1)",
            "ftp://shop.example/",
            "http://",
            "",
        ] {
            assert!(check_return_url(bad).is_err(), "{bad}");
        }
        assert!(check_return_url(&format!("https://a.example/{}", "x".repeat(MAX_URL))).is_err());
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

    /// The guarantee where it lives: two pay writes for one session in the
    /// same writer batch (as racing submits are) pay it once.
    #[test]
    fn the_writer_pays_a_session_once_within_one_batch() {
        use ipn_core::card::{CardBehaviour, CardBrand};
        use ipn_core::payment::{Payer, Payment};
        use ipn_core::payment_flow::InitialStatus;

        use crate::model::Merchant;
        use crate::payments::{PaymentChange, PaymentMethod, PaymentRefusal};
        use crate::storage::sqlite::{Durability, Sqlite};
        use crate::storage::{PaymentDone, Store, Write, WriteRequest, Written};

        fn respond(_: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
            (200, Vec::new())
        }
        let request = |write| WriteRequest {
            write,
            idempotency: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(
            &dir.path().join("t.db"),
            Durability::Normal,
            crate::EncryptionKey::generate().unwrap(),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let open = session(now);
        let merchant = Merchant {
            id: open.merchant_id,
            name: "shop".to_owned(),
            receiver_email: "shop@example.com".to_owned(),
            api_key_hash: "hash".to_owned(),
            created_at: 0,
        };
        let pay = |payment_id: PaymentId| {
            let payment = Payment {
                id: payment_id,
                parent_id: None,
                status: PaymentStatus::Pending,
                previous_status: None,
                amount: open.amount.minor(),
                fee: 0,
                currency: open.amount.currency(),
                refunded_amount: 0,
                merchant_id: open.merchant_id,
                receiver_email: merchant.receiver_email.clone(),
                payer: Payer {
                    email: "ann@example.com".to_owned(),
                    name: None,
                    id: None,
                },
                invoice: open.invoice.clone(),
                custom: None,
                items: Vec::new(),
                subscription_id: None,
                pending_reason: None,
                reason_code: None,
                created_at: now,
            };
            request(Write::CheckoutPayment(Box::new(CheckoutPayment {
                session_id: open.id,
                payment: PaymentWrite {
                    merchant_id: open.merchant_id,
                    payment_id,
                    change: PaymentChange::Create {
                        payment: Box::new(payment),
                        method: PaymentMethod::Card {
                            brand: CardBrand::Visa,
                            last4: "4242".to_owned(),
                            behaviour: CardBehaviour::Completes,
                        },
                        initial: InitialStatus::Completed,
                        disputed: false,
                    },
                    subscribers: Vec::new(),
                    now,
                    respond,
                },
            })))
        };
        store
            .apply(&[
                request(Write::CreateMerchant(merchant.clone())),
                request(Write::CreateCheckoutSession(Box::new(open.clone()))),
            ])
            .unwrap();
        let (first, second) = (PaymentId::generate(now), PaymentId::generate(now));
        let results = store.apply(&[pay(first), pay(second)]).unwrap();
        assert!(matches!(results[0], Ok(Written::Payment(_))), "{results:?}");
        assert!(
            matches!(
                results[1],
                Ok(Written::CheckoutRefused(CheckoutRefusal::Paid(PaidBy::Payment(id)))) if id == first
            ),
            "{results:?}"
        );
        let stored = store.checkout_session(open.id).unwrap().unwrap();
        assert_eq!(stored.payment_id, Some(first));
        assert_eq!(stored.status(now), SessionStatus::Paid);
        assert!(store.payment(open.merchant_id, second).unwrap().is_none());
        // Everything else read back as written.
        assert_eq!(
            CheckoutSession {
                payment_id: None,
                paid_at: None,
                ..stored
            },
            CheckoutSession {
                created_at: crate::clock::from_millis(crate::clock::to_millis(now)),
                expires_at: crate::clock::from_millis(crate::clock::to_millis(open.expires_at)),
                ..open
            }
        );
    }

    /// The same for subscription mode: two signups for one session in the
    /// same writer batch start one subscription.
    #[test]
    fn the_writer_starts_one_subscription_per_session_within_one_batch() {
        use ipn_core::card::{CardBehaviour, CardBrand};
        use ipn_core::payment::Payer;
        use ipn_core::subscription::{Interval, Subscription, SubscriptionStatus};

        use crate::model::Merchant;
        use crate::payments::PaymentMethod;
        use crate::storage::sqlite::{Durability, Sqlite};
        use crate::storage::{Store, Write, WriteRequest, Written};
        use crate::subscriptions::SubscriptionChange;

        let request = |write| WriteRequest {
            write,
            idempotency: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(
            &dir.path().join("t.db"),
            Durability::Normal,
            crate::EncryptionKey::generate().unwrap(),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let plan = Plan::new(Interval::Month, 1, 0, Some(12)).unwrap();
        let open = CheckoutSession {
            plan: Some(plan),
            ..session(now)
        };
        let merchant = Merchant {
            id: open.merchant_id,
            name: "shop".to_owned(),
            receiver_email: "shop@example.com".to_owned(),
            api_key_hash: "hash".to_owned(),
            created_at: 0,
        };
        let subscribe = |subscription_id: SubscriptionId| {
            let subscription = Subscription {
                id: subscription_id,
                status: SubscriptionStatus::Active,
                previous_status: None,
                merchant_id: open.merchant_id,
                receiver_email: merchant.receiver_email.clone(),
                payer: Payer {
                    email: "ann@example.com".to_owned(),
                    name: None,
                    id: None,
                },
                amount: open.amount.minor(),
                currency: open.amount.currency(),
                interval: plan.interval(),
                interval_count: plan.interval_count(),
                trial_days: plan.trial_days(),
                total_cycles: plan.total_cycles(),
                cycles_paid: 0,
                paid_through: None,
                cancel_at_period_end: false,
                invoice: open.invoice.clone(),
                custom: None,
                created_at: now,
            };
            request(Write::CheckoutSubscription(Box::new(
                CheckoutSubscription {
                    session_id: open.id,
                    subscription: SubscriptionWrite {
                        merchant_id: open.merchant_id,
                        subscription_id,
                        change: SubscriptionChange::Create {
                            subscription: Box::new(subscription),
                            method: PaymentMethod::Card {
                                brand: CardBrand::Visa,
                                last4: "4242".to_owned(),
                                behaviour: CardBehaviour::Completes,
                            },
                        },
                        subscribers: Vec::new(),
                        now,
                        respond: None,
                    },
                },
            )))
        };
        store
            .apply(&[
                request(Write::CreateMerchant(merchant.clone())),
                request(Write::CreateCheckoutSession(Box::new(open.clone()))),
            ])
            .unwrap();
        let (first, second) = (SubscriptionId::generate(now), SubscriptionId::generate(now));
        let results = store.apply(&[subscribe(first), subscribe(second)]).unwrap();
        assert!(
            matches!(&results[0], Ok(Written::Subscription(done)) if done.row.subscription.id == first),
            "{results:?}"
        );
        assert!(
            matches!(
                results[1],
                Ok(Written::CheckoutRefused(CheckoutRefusal::Paid(PaidBy::Subscription(id)))) if id == first
            ),
            "{results:?}"
        );
        let stored = store.checkout_session(open.id).unwrap().unwrap();
        assert_eq!(stored.subscription_id, Some(first));
        assert_eq!(stored.payment_id, None);
        assert_eq!(stored.status(now), SessionStatus::Paid);
        assert_eq!(stored.plan, Some(plan), "the plan reads back as written");
        let started = store
            .subscription(open.merchant_id, first)
            .unwrap()
            .unwrap();
        assert_eq!(started.subscription.status, SubscriptionStatus::Active);
        assert_eq!(started.subscription.cycles_paid, 1);
        assert!(
            store
                .subscription(open.merchant_id, second)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn only_a_refused_charge_leaves_a_session_open() {
        assert!(settles(PaymentStatus::Completed));
        assert!(settles(PaymentStatus::Pending));
        assert!(!settles(PaymentStatus::Denied));
        assert!(!settles(PaymentStatus::Failed));
    }
}
