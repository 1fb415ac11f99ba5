//! An order's state, derived from the payments known for it.
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

use crate::model::{ChargeStatus, Fact, PaymentKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Created,
    Pending,
    Paid,
    /// A subscription order whose subscription started with nothing
    /// charged yet (a free trial).
    Subscribed,
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
            Self::Subscribed => "subscribed",
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

/// A completed charge with what came back of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge<'a> {
    pub fact: &'a Fact,
    /// Minor units refunded, positive.
    pub refunded: i64,
    pub reversals: Vec<&'a Fact>,
    pub cancellations: Vec<&'a Fact>,
    pub refunds: Vec<&'a Fact>,
}

impl Charge<'_> {
    /// Reversed more often than a reversal was canceled: the money is with
    /// the payer's bank.
    pub fn is_reversed(&self) -> bool {
        self.reversals.len() > self.cancellations.len()
    }

    /// The shop still has (some of) this charge's money.
    pub fn stands(&self) -> bool {
        !self.is_reversed() && self.refunded < self.fact.amount
    }
}

/// The completed charges among `facts`, each with its refunds and
/// reversals, by charge id.
pub fn completed_charges(facts: &[Fact]) -> Vec<Charge<'_>> {
    let mut charges: Vec<Charge<'_>> = facts
        .iter()
        .filter(|fact| fact.kind == PaymentKind::Charge(ChargeStatus::Completed))
        .map(|fact| Charge {
            fact,
            refunded: 0,
            reversals: Vec::new(),
            cancellations: Vec::new(),
            refunds: Vec::new(),
        })
        .collect();
    charges.sort_by(|a, b| a.fact.txn_id.cmp(&b.fact.txn_id));
    for child in facts {
        let Some(charge) = charges
            .iter_mut()
            .find(|c| child.parent_id.as_deref() == Some(c.fact.txn_id.as_str()))
        else {
            continue;
        };
        match child.kind {
            PaymentKind::Refund => {
                charge.refunded = charge.refunded.saturating_sub(child.amount);
                charge.refunds.push(child);
            }
            PaymentKind::Reversal => charge.reversals.push(child),
            PaymentKind::ReversalCanceled => charge.cancellations.push(child),
            PaymentKind::Charge(_) => {}
        }
    }
    charges
}

/// What the facts come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The state shown: `flagged` when a flag is open.
    pub status: OrderStatus,
    /// The state the payments alone give.
    pub payment_status: OrderStatus,
    /// Some charge completed: the order was paid at least once.
    pub paid: bool,
    /// Minor units refunded over all charges, positive.
    pub refunded: i64,
}

/// The order's state. Paid while any completed charge still stands (so a
/// customer who paid twice and had one refunded is still paid); refunded
/// or reversed only once none does.
pub fn derive(facts: &[Fact], flagged: bool, fulfilled: bool) -> Derived {
    let charges = completed_charges(facts);
    let refunded = charges.iter().map(|c| c.refunded).sum();
    let any = |status| {
        facts
            .iter()
            .any(|fact| fact.kind == PaymentKind::Charge(status))
    };
    let payment_status = if charges.is_empty() {
        if any(ChargeStatus::Pending) {
            OrderStatus::Pending
        } else if facts
            .iter()
            .any(|fact| matches!(fact.kind, PaymentKind::Charge(_)))
        {
            OrderStatus::Failed
        } else {
            OrderStatus::Created
        }
    } else {
        let standing: Vec<&Charge<'_>> = charges.iter().filter(|c| c.stands()).collect();
        if standing.iter().any(|c| c.refunded > 0) {
            OrderStatus::PartiallyRefunded
        } else if !standing.is_empty() && fulfilled {
            OrderStatus::Fulfilled
        } else if !standing.is_empty() {
            OrderStatus::Paid
        } else if charges.iter().any(Charge::is_reversed) {
            OrderStatus::Reversed
        } else {
            OrderStatus::Refunded
        }
    };
    Derived {
        status: if flagged {
            OrderStatus::Flagged
        } else {
            payment_status
        },
        payment_status,
        paid: !charges.is_empty(),
        refunded,
    }
}

/// The state of an order for a subscription, derived the same way from
/// the facts of the subscription it started (its period payments): paid
/// while any period payment stands, refunded or reversed once none does.
/// Started with nothing charged yet (a free trial), it is `subscribed`.
pub fn derive_subscribed(facts: &[Fact], started: bool, flagged: bool) -> Derived {
    let mut derived = derive(facts, flagged, false);
    if started && derived.payment_status == OrderStatus::Created {
        derived.payment_status = OrderStatus::Subscribed;
        if !flagged {
            derived.status = OrderStatus::Subscribed;
        }
    }
    derived
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
    fn a_second_chargeback_after_a_won_one_counts() {
        let facts = [
            charge("pay_a", ChargeStatus::Completed),
            child("pay_v1", PaymentKind::Reversal, -1000),
            child("pay_w", PaymentKind::ReversalCanceled, 1000),
            child("pay_v2", PaymentKind::Reversal, -1000),
        ];
        assert_eq!(status(&facts), OrderStatus::Reversed);
    }

    #[test]
    fn paid_twice_stays_paid_until_both_are_given_back() {
        let a = charge("pay_a", ChargeStatus::Completed);
        let mut b = charge("pay_b", ChargeStatus::Completed);
        b.txn_id = "pay_b".into();
        let refund_a = child("pay_ra", PaymentKind::Refund, -1000);
        let mut refund_b = child("pay_rb", PaymentKind::Refund, -1000);
        refund_b.parent_id = Some("pay_b".into());
        let mut reverse_b = child("pay_vb", PaymentKind::Reversal, -1000);
        reverse_b.parent_id = Some("pay_b".into());
        assert_eq!(status(&[a.clone(), b.clone()]), OrderStatus::Paid);
        assert_eq!(
            status(&[a.clone(), b.clone(), refund_a.clone()]),
            OrderStatus::Paid
        );
        assert_eq!(
            status(&[a.clone(), b.clone(), refund_b.clone()]),
            OrderStatus::Paid
        );
        assert_eq!(
            status(&[a.clone(), b.clone(), refund_a.clone(), refund_b]),
            OrderStatus::Refunded
        );
        assert_eq!(status(&[a, b, refund_a, reverse_b]), OrderStatus::Reversed);
    }

    #[test]
    fn a_flag_shows_over_everything() {
        let facts = [charge("pay_a", ChargeStatus::Completed)];
        let derived = derive(&facts, true, false);
        assert_eq!(derived.status, OrderStatus::Flagged);
        assert_eq!(derived.payment_status, OrderStatus::Paid);
    }

    #[test]
    fn a_subscription_order_is_paid_by_its_periods_and_subscribed_in_a_trial() {
        let paid = [charge("pay_a", ChargeStatus::Completed)];
        assert_eq!(
            derive_subscribed(&paid, true, false).status,
            OrderStatus::Paid
        );
        assert!(derive_subscribed(&paid, true, false).paid);
        let trial = derive_subscribed(&[], true, false);
        assert_eq!(trial.status, OrderStatus::Subscribed);
        assert!(!trial.paid, "no money moved");
        assert_eq!(
            derive_subscribed(&[], false, false).status,
            OrderStatus::Created
        );
        assert_eq!(
            derive_subscribed(&[], true, true).status,
            OrderStatus::Flagged
        );
        let refunded = [
            charge("pay_a", ChargeStatus::Completed),
            child("ref_a", PaymentKind::Refund, -1000),
        ];
        assert_eq!(
            derive_subscribed(&refunded, true, false).status,
            OrderStatus::Refunded
        );
    }
}
