//! An order's state, derived from the payments known for it (DESIGN §5).
//!
//! The state is never moved step by step by each message: it is recomputed
//! from the set of valid payment facts every time one is added. A set has no
//! order, so the same notices give the same state whatever order they
//! arrive in, and a refund that comes before its payment simply has no
//! effect until the payment is known (it is "held").
//!
//! | facts | state |
//! |---|---|
//! | no charge | `created` |
//! | a pending charge, none completed | `pending` |
//! | only failed or denied charges | `failed` |
//! | a completed charge … | `paid` (`fulfilled` once shipped) |
//! | … refunded in part / in full | `partially_refunded` / `refunded` |
//! | … reversed, not canceled | `reversed` (back when the reversal is canceled) |
//! | any open flag | `flagged`, whatever the above says |

use super::notice::{ChargeStatus, PaymentKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Created,
    Pending,
    Paid,
    Fulfilled,
    PartiallyRefunded,
    Refunded,
    Reversed,
    Failed,
    Flagged,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Reversed => "reversed",
            Self::Failed => "failed",
            Self::Flagged => "flagged",
        }
    }

    /// The customer has what they paid for: downloads work.
    pub fn is_paid_up(self) -> bool {
        matches!(self, Self::Paid | Self::Fulfilled)
    }
}

/// One valid payment fact of an order: a charge with the order as invoice,
/// or a refund or reversal of such a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub txn_id: String,
    pub parent_id: Option<String>,
    pub kind: PaymentKind,
    /// Signed minor units.
    pub amount: i64,
}

/// What the facts come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The state shown: `flagged` when a flag is open.
    pub status: OrderStatus,
    /// The state the payments alone give.
    pub payment_status: OrderStatus,
    /// The completed charge that paid the order (the first by id, should
    /// there be two).
    pub paid_by: Option<String>,
    /// Minor units refunded, positive.
    pub refunded: i64,
    /// A reversal of the paying charge that was not canceled.
    pub reversed: bool,
}

pub fn derive(facts: &[Fact], flagged: bool, fulfilled: bool) -> Derived {
    let charges = || {
        facts.iter().filter_map(|fact| match fact.kind {
            PaymentKind::Charge(status) => Some((fact, status)),
            _ => None,
        })
    };
    let paid = charges()
        .filter(|(_, status)| *status == ChargeStatus::Completed)
        .map(|(fact, _)| fact)
        .min_by(|a, b| a.txn_id.cmp(&b.txn_id));
    let mut refunded = 0i64;
    let mut reversed = false;
    let payment_status = match paid {
        Some(charge) => {
            let children = facts
                .iter()
                .filter(|fact| fact.parent_id.as_deref() == Some(charge.txn_id.as_str()));
            let (mut reversal, mut canceled) = (false, false);
            for child in children {
                match child.kind {
                    PaymentKind::Refund => refunded = refunded.saturating_sub(child.amount),
                    PaymentKind::Reversal => reversal = true,
                    PaymentKind::ReversalCanceled => canceled = true,
                    PaymentKind::Charge(_) => {}
                }
            }
            reversed = reversal && !canceled;
            if reversed {
                OrderStatus::Reversed
            } else if refunded > 0 && refunded >= charge.amount {
                OrderStatus::Refunded
            } else if refunded > 0 {
                OrderStatus::PartiallyRefunded
            } else if fulfilled {
                OrderStatus::Fulfilled
            } else {
                OrderStatus::Paid
            }
        }
        None if charges().any(|(_, s)| s == ChargeStatus::Pending) => OrderStatus::Pending,
        None if charges().next().is_some() => OrderStatus::Failed,
        None => OrderStatus::Created,
    };
    Derived {
        status: if flagged {
            OrderStatus::Flagged
        } else {
            payment_status
        },
        payment_status,
        paid_by: paid.map(|fact| fact.txn_id.clone()),
        refunded,
        reversed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(id: &str, status: ChargeStatus) -> Fact {
        Fact {
            txn_id: id.into(),
            parent_id: None,
            kind: PaymentKind::Charge(status),
            amount: 1000,
        }
    }

    fn child(id: &str, kind: PaymentKind, amount: i64) -> Fact {
        Fact {
            txn_id: id.into(),
            parent_id: Some("pay_a".into()),
            kind,
            amount,
        }
    }

    fn status(facts: &[Fact]) -> OrderStatus {
        derive(facts, false, false).status
    }

    #[test]
    fn charges_alone() {
        use ChargeStatus::*;
        assert_eq!(status(&[]), OrderStatus::Created);
        assert_eq!(status(&[charge("pay_a", Pending)]), OrderStatus::Pending);
        assert_eq!(status(&[charge("pay_a", Denied)]), OrderStatus::Failed);
        assert_eq!(
            status(&[charge("pay_a", Denied), charge("pay_b", Pending)]),
            OrderStatus::Pending
        );
        assert_eq!(
            status(&[charge("pay_b", Failed), charge("pay_a", Completed)]),
            OrderStatus::Paid
        );
        assert_eq!(
            derive(&[charge("pay_a", Completed)], false, true).status,
            OrderStatus::Fulfilled
        );
    }

    #[test]
    fn money_going_back() {
        let paid = charge("pay_a", ChargeStatus::Completed);
        let part = child("pay_r1", PaymentKind::Refund, -300);
        let rest = child("pay_r2", PaymentKind::Refund, -700);
        let reversal = child("pay_v", PaymentKind::Reversal, -700);
        let won = child("pay_w", PaymentKind::ReversalCanceled, 700);
        assert_eq!(
            status(&[paid.clone(), part.clone()]),
            OrderStatus::PartiallyRefunded
        );
        assert_eq!(
            derive(&[paid.clone(), part.clone()], false, false).refunded,
            300
        );
        assert_eq!(
            status(&[paid.clone(), part.clone(), rest]),
            OrderStatus::Refunded
        );
        assert_eq!(
            status(&[paid.clone(), reversal.clone()]),
            OrderStatus::Reversed
        );
        assert_eq!(
            status(&[paid.clone(), reversal.clone(), won.clone()]),
            OrderStatus::Paid
        );
        assert_eq!(
            status(&[paid, part.clone(), reversal.clone(), won.clone()]),
            OrderStatus::PartiallyRefunded
        );
        // Held: nothing to apply them to yet.
        assert_eq!(status(&[part, reversal, won]), OrderStatus::Created);
    }

    #[test]
    fn a_flag_shows_over_everything() {
        let facts = [charge("pay_a", ChargeStatus::Completed)];
        let derived = derive(&facts, true, false);
        assert_eq!(derived.status, OrderStatus::Flagged);
        assert_eq!(derived.payment_status, OrderStatus::Paid);
    }
}
