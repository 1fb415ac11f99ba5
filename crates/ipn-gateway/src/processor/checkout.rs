//! Hosted checkout sessions: an order the merchant registers
//! (`POST /v1/checkout/sessions`) and its customer pays on the gateway's own
//! page (`/checkout/{id}`, see `api/checkout_page.rs`).
//!
//! A session is in one of two modes, fixed at creation: `payment` (a
//! one-time payment of the order) or `subscription` (the amount is charged
//! every period of its [`Plan`]).
//!
//! A session is paid at most once. That guarantee lives in the writer's
//! transaction ([`pay`], [`subscribe`]): the session is read and checked
//! open, the payment or subscription is created by the same operation as
//! `POST /v1/payments` ([`payments::commit`]) or `POST /v1/subscriptions`
//! ([`subscriptions::commit`]), and the session is marked paid, all in one
//! transaction of the one writer. Two submits that race are applied one
//! after the other, so the second finds the session paid and creates
//! nothing.
//!
//! The order (amount, items, plan, URLs) never changes after creation; only
//! `payment_id` or `subscription_id`, and `paid_at`, are set, once. Expiry
//! is not stored: a session is expired when the gateway clock passes
//! `expires_at`, so the test clock expires sessions without any sweeper
//! (`model::CheckoutSession`).

use anyhow::anyhow;
use ipn_core::id::{CheckoutSessionId, MerchantId};
use ipn_core::payment::PaymentStatus;
use time::Duration;
use url::Url;

pub use crate::model::{CheckoutRefusal, CheckoutSession, PaidBy, RETURN_PARAMETER, SessionStatus};

use super::payments::{self, PaymentDone, PaymentRefusal, PaymentWrite};
use super::subscriptions::{self, SubscriptionDone, SubscriptionRefusal, SubscriptionWrite};
use crate::storage::{StoreError, Tx};

/// How long a session can be paid after it is created.
pub const LIFETIME: Duration = Duration::hours(24);

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

/// How paying a session went, when the session could be paid.
#[derive(Debug)]
pub enum Paying<D, R> {
    /// The operation ran: applied (the session marked paid when it settles)
    /// or refused (the session left open).
    Ran(Result<D, R>),
    /// The session could not be paid (unknown, paid, expired); nothing
    /// changed.
    Refused(CheckoutRefusal),
}

/// Pays a checkout session if it is open at the write's time: the check,
/// the payment (the same create operation as the payments API) and the mark
/// happen in this one transaction of the one writer, so a session is paid
/// at most once however many submits race.
pub fn pay(
    tx: &dyn Tx,
    write: &CheckoutPayment,
) -> Result<Paying<PaymentDone, PaymentRefusal>, StoreError> {
    let payment = &write.payment;
    let open = open_session(
        tx,
        write.session_id,
        payment.merchant_id,
        payment.now,
        Mode::Payment,
    )?;
    if let Err(refusal) = open {
        return Ok(Paying::Refused(refusal));
    }
    let done = payments::commit(tx, payment)?;
    if let Ok(done) = &done
        && done
            .rows
            .first()
            .is_some_and(|row| settles(row.payment.status))
    {
        mark_paid(
            tx,
            write.session_id,
            PaidBy::Payment(payment.payment_id),
            payment.now,
        )?;
    }
    Ok(Paying::Ran(done))
}

/// Pays a subscription-mode checkout session if it is open at the write's
/// time: the same check, then the signup (the same create operation as the
/// subscriptions API), then the mark, in this one transaction, so a session
/// starts at most one subscription however many submits race.
pub fn subscribe(
    tx: &dyn Tx,
    write: &CheckoutSubscription,
) -> Result<Paying<SubscriptionDone, SubscriptionRefusal>, StoreError> {
    let subscription = &write.subscription;
    let (id, merchant, now) = (write.session_id, subscription.merchant_id, subscription.now);
    if let Err(refusal) = open_session(tx, id, merchant, now, Mode::Subscription)? {
        return Ok(Paying::Refused(refusal));
    }
    let done = subscriptions::commit(tx, subscription)?;
    if let Ok(done) = &done {
        let by = PaidBy::Subscription(done.row.subscription.id);
        mark_paid(tx, write.session_id, by, subscription.now)?;
    }
    Ok(Paying::Ran(done))
}

/// A session's two modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Payment,
    Subscription,
}

/// Whether the merchant's session can be paid at `now` in this mode, read
/// in the writer's transaction.
fn open_session(
    tx: &dyn Tx,
    id: CheckoutSessionId,
    merchant: MerchantId,
    now: time::OffsetDateTime,
    mode: Mode,
) -> Result<Result<(), CheckoutRefusal>, StoreError> {
    let Some(session) = tx
        .checkout_session(id)?
        .filter(|s| s.merchant_id == merchant)
    else {
        return Ok(Err(CheckoutRefusal::NotFound));
    };
    if let Err(refusal) = session.payable(now) {
        return Ok(Err(refusal));
    }
    let is = if session.plan.is_some() {
        Mode::Subscription
    } else {
        Mode::Payment
    };
    if is != mode {
        // The page pays a session in its own mode; this is a gateway bug.
        return Err(anyhow!(
            "checkout session {id} is in {} mode, not the mode it is being paid in",
            session.mode()
        ));
    }
    Ok(Ok(()))
}

fn mark_paid(
    tx: &dyn Tx,
    id: CheckoutSessionId,
    by: PaidBy,
    at: time::OffsetDateTime,
) -> Result<(), StoreError> {
    if tx.mark_checkout_paid(id, by, crate::clock::to_millis(at))? {
        Ok(())
    } else {
        // Found open above in this same transaction, so this cannot happen;
        // if it does, the error rolls the payment back too.
        Err(anyhow!(
            "checkout session {id} was paid twice in one transaction"
        ))
    }
}

#[cfg(test)]
mod tests {
    use ipn_core::billing::Plan;
    use ipn_core::id::{PaymentId, SubscriptionId};
    use time::OffsetDateTime;

    use super::*;
    use crate::storage::Store;
    use crate::writes::{Write, WriteRequest, Written, commit};

    fn session(now: OffsetDateTime) -> CheckoutSession {
        crate::model::checkout_sample(now)
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

    /// The guarantee where it lives: two pay writes for one session in the
    /// same writer batch (as racing submits are) pay it once.
    #[test]
    fn the_writer_pays_a_session_once_within_one_batch() {
        use ipn_core::card::{CardBehaviour, CardBrand};
        use ipn_core::payment::{Payer, Payment};
        use ipn_core::payment_flow::InitialStatus;

        use crate::model::{Merchant, PaymentMethod};
        use crate::processor::payments::PaymentChange;

        fn respond(_: Result<&PaymentDone, &PaymentRefusal>) -> (u16, Vec<u8>) {
            (200, Vec::new())
        }
        let request = |write| WriteRequest {
            write,
            idempotency: None,
        };
        crate::storage::testing::each_store(
            "the_writer_pays_a_session_once_within_one_batch",
            |store: &dyn Store| {
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
                commit(
                    store,
                    &[
                        request(Write::CreateMerchant(merchant.clone())),
                        request(Write::CreateCheckoutSession(Box::new(open.clone()))),
                    ],
                )
                .unwrap();
                let (first, second) = (PaymentId::generate(now), PaymentId::generate(now));
                let results = commit(store, &[pay(first), pay(second)]).unwrap();
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
                        expires_at: crate::clock::from_millis(crate::clock::to_millis(
                            open.expires_at
                        )),
                        ..open
                    }
                );
            },
        );
    }

    /// The same for subscription mode: two signups for one session in the
    /// same writer batch start one subscription.
    #[test]
    fn the_writer_starts_one_subscription_per_session_within_one_batch() {
        use ipn_core::card::{CardBehaviour, CardBrand};
        use ipn_core::payment::Payer;
        use ipn_core::subscription::{Interval, Subscription, SubscriptionStatus};

        use crate::model::{Merchant, PaymentMethod};
        use crate::processor::subscriptions::SubscriptionChange;

        let request = |write| WriteRequest {
            write,
            idempotency: None,
        };
        crate::storage::testing::each_store(
            "the_writer_starts_one_subscription_per_session_within_one_batch",
            |store: &dyn Store| {
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
                commit(
                    store,
                    &[
                        request(Write::CreateMerchant(merchant.clone())),
                        request(Write::CreateCheckoutSession(Box::new(open.clone()))),
                    ],
                )
                .unwrap();
                let (first, second) =
                    (SubscriptionId::generate(now), SubscriptionId::generate(now));
                let results = commit(store, &[subscribe(first), subscribe(second)]).unwrap();
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
            },
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
