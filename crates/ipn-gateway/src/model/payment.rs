//! A payment as stored: the payment events carry, and how it was paid.

use ipn_core::card::{CardBehaviour, CardBrand};
use ipn_core::payment::Payment;
use serde::{Deserialize, Serialize};

/// How a payment was paid. Only the last four digits of a card are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentMethod {
    Card {
        brand: CardBrand,
        last4: String,
        /// What the test card does (kept for later charges: disputes,
        /// subscription renewals).
        behaviour: CardBehaviour,
    },
    BankTransfer,
}

impl PaymentMethod {
    /// What the API shows of it.
    pub fn view(&self) -> serde_json::Value {
        match self {
            Self::Card { brand, last4, .. } => {
                serde_json::json!({"type": "card", "brand": brand, "last4": last4})
            }
            Self::BankTransfer => serde_json::json!({"type": "bank_transfer"}),
        }
    }
}

/// A payment row: the payment as events carry it, and how it was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    pub payment: Payment,
    pub method: PaymentMethod,
}
