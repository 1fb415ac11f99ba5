//! A typed view of a PayPal IPN message.
//!
//! The view reads fields on demand from the [`Form`], which keeps the bytes as
//! received (they are what the postback must send back). Values PayPal may add
//! in future (`txn_type`, `payment_status`) are kept as `Other` rather than
//! refused: a listener must store an IPN it does not understand, not drop it.

use time::OffsetDateTime;

use super::date::{DateError, parse_payment_date};
use super::form::{Form, FormError};
use crate::event::EventType;
use crate::money::{Currency, Money, MoneyError};

/// The most cart lines [`IpnMessage::items`] reads: far more than a real
/// order has, few enough that a forged `num_cart_items` costs little.
pub const MAX_CART_ITEMS: u32 = 500;

macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this version does not know, as sent.
            Other(String),
        }

        impl $name {
            /// Reads PayPal's text; an unknown value is kept as `Other`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// PayPal's text for the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(text) => text,
                }
            }
        }
    };
}

open_enum!(
    /// PayPal's `txn_type`: what kind of transaction the IPN is about.
    TxnType {
        WebAccept => "web_accept",
        Cart => "cart",
        ExpressCheckout => "express_checkout",
        SendMoney => "send_money",
        VirtualTerminal => "virtual_terminal",
        SubscrSignup => "subscr_signup",
        SubscrPayment => "subscr_payment",
        SubscrFailed => "subscr_failed",
        SubscrCancel => "subscr_cancel",
        SubscrEot => "subscr_eot",
        SubscrModify => "subscr_modify",
        NewCase => "new_case",
        Adjustment => "adjustment",
    }
);

open_enum!(
    /// PayPal's `payment_status`.
    PaymentStatus {
        CanceledReversal => "Canceled_Reversal",
        Completed => "Completed",
        Created => "Created",
        Denied => "Denied",
        Expired => "Expired",
        Failed => "Failed",
        Pending => "Pending",
        Refunded => "Refunded",
        Reversed => "Reversed",
        Processed => "Processed",
        Voided => "Voided",
    }
);

/// A field that is present but cannot be read as its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{field} is required with {needed_by}")]
    Missing {
        field: &'static str,
        needed_by: &'static str,
    },
    #[error("{field}: {source}")]
    Amount { field: String, source: MoneyError },
    #[error("mc_currency: {0}")]
    Currency(MoneyError),
    #[error("{field}: {source}")]
    Date {
        field: &'static str,
        source: DateError,
    },
    #[error("{field} {value:?} is not a whole number")]
    Number { field: String, value: String },
    /// `num_cart_items` over [`MAX_CART_ITEMS`], or over the message's
    /// number of fields (every line needs one).
    #[error("num_cart_items is {count}, more than the {max} lines this message can hold")]
    CartTooLong { count: u32, max: u32 },
}

/// One line of a cart (`item_name1`, `item_number1`, `quantity1`, `mc_gross_1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartItem {
    /// `item_name`: what the buyer saw.
    pub name: String,
    /// `item_number`: the merchant's product code (our `sku`).
    pub number: String,
    /// `quantity`, 1 when absent.
    pub quantity: u32,
    /// The line's total (PayPal's `mc_gross_N`), when sent.
    pub gross: Option<Money>,
}

/// A PayPal IPN message: the form as received and typed accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpnMessage {
    form: Form,
}

impl IpnMessage {
    /// Parses a body as [`Form::parse`] does; fields are read on demand.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        Form::parse(body).map(Self::from)
    }

    /// The form as received.
    pub fn form(&self) -> &Form {
        &self.form
    }

    /// The exact bytes received.
    pub fn as_bytes(&self) -> &[u8] {
        self.form.as_bytes()
    }

    /// A field's decoded value; an empty value (PayPal sends `custom=`) reads
    /// as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form.get(name).filter(|v| !v.is_empty())
    }

    /// The transaction id: with `payment_status`, what makes an IPN unique.
    pub fn txn_id(&self) -> Option<&str> {
        self.get("txn_id")
    }

    /// The original transaction of a refund, reversal or canceled reversal.
    pub fn parent_txn_id(&self) -> Option<&str> {
        self.get("parent_txn_id")
    }

    /// What kind of transaction this is; refunds and reversals have none.
    pub fn txn_type(&self) -> Option<TxnType> {
        self.get("txn_type").map(TxnType::parse)
    }

    /// Where the payment stands.
    pub fn payment_status(&self) -> Option<PaymentStatus> {
        self.get("payment_status").map(PaymentStatus::parse)
    }

    /// The merchant account paid: a listener checks it is its own.
    pub fn receiver_email(&self) -> Option<&str> {
        self.get("receiver_email")
    }

    /// The buyer's email.
    pub fn payer_email(&self) -> Option<&str> {
        self.get("payer_email")
    }

    /// The merchant's order reference.
    pub fn invoice(&self) -> Option<&str> {
        self.get("invoice")
    }

    /// The merchant's pass-through value.
    pub fn custom(&self) -> Option<&str> {
        self.get("custom")
    }

    /// The subscription a `subscr_*` message is about.
    pub fn subscr_id(&self) -> Option<&str> {
        self.get("subscr_id")
    }

    /// PayPal's id of this notification (ours: the event id).
    pub fn ipn_track_id(&self) -> Option<&str> {
        self.get("ipn_track_id")
    }

    /// Sandbox messages carry `test_ipn=1`.
    pub fn is_test(&self) -> bool {
        self.get("test_ipn") == Some("1")
    }

    /// `mc_currency`, the currency of every `mc_…` amount.
    pub fn currency(&self) -> Result<Option<Currency>, FieldError> {
        self.get("mc_currency")
            .map(|code| Currency::parse(code).map_err(FieldError::Currency))
            .transpose()
    }

    /// `mc_gross` in `mc_currency` (negative on refunds and reversals).
    pub fn gross(&self) -> Result<Option<Money>, FieldError> {
        self.amount("mc_gross")
    }

    /// `mc_fee` in `mc_currency`.
    pub fn fee(&self) -> Result<Option<Money>, FieldError> {
        self.amount("mc_fee")
    }

    /// Any `mc_…` amount field, read exactly in `mc_currency`.
    pub fn amount(&self, field: &str) -> Result<Option<Money>, FieldError> {
        let Some(text) = self.get(field) else {
            return Ok(None);
        };
        let currency = self.currency()?.ok_or(FieldError::Missing {
            field: "mc_currency",
            needed_by: "an amount",
        })?;
        Money::parse_decimal(text, currency)
            .map(Some)
            .map_err(|source| FieldError::Amount {
                field: field.to_owned(),
                source,
            })
    }

    /// `payment_date` in UTC.
    pub fn payment_date(&self) -> Result<Option<OffsetDateTime>, FieldError> {
        self.get("payment_date")
            .map(|text| {
                parse_payment_date(text).map_err(|source| FieldError::Date {
                    field: "payment_date",
                    source,
                })
            })
            .transpose()
    }

    /// The cart lines (`num_cart_items` of them, at most [`MAX_CART_ITEMS`]),
    /// or the single `item_name` of a one-item payment; empty when the
    /// message names no item. A malformed `quantity` is an error either way.
    pub fn items(&self) -> Result<Vec<CartItem>, FieldError> {
        let Some(count) = self.get("num_cart_items") else {
            let Some(name) = self.get("item_name") else {
                return Ok(Vec::new());
            };
            return Ok(vec![CartItem {
                name: name.to_owned(),
                number: self.get("item_number").unwrap_or_default().to_owned(),
                quantity: self.number("quantity")?.unwrap_or(1),
                gross: None,
            }]);
        };
        let count = parse_number("num_cart_items", count)?;
        // Each item needs at least one field; a larger count is a forgery or a
        // typo, and must not make us build a huge list.
        let fields = u32::try_from(self.form.len()).unwrap_or(u32::MAX);
        let max = MAX_CART_ITEMS.min(fields);
        if count > max {
            return Err(FieldError::CartTooLong { count, max });
        }
        (1..=count)
            .map(|n| {
                Ok(CartItem {
                    name: self
                        .get(&format!("item_name{n}"))
                        .unwrap_or_default()
                        .to_owned(),
                    number: self
                        .get(&format!("item_number{n}"))
                        .unwrap_or_default()
                        .to_owned(),
                    quantity: self.number(&format!("quantity{n}"))?.unwrap_or(1),
                    gross: self.amount(&format!("mc_gross_{n}"))?,
                })
            })
            .collect()
    }

    fn number(&self, field: &str) -> Result<Option<u32>, FieldError> {
        self.get(field).map(|v| parse_number(field, v)).transpose()
    }

    /// The `ipn` event type this message stands for (the encoder's
    /// `txn_type` and `payment_status` read backwards), when it is one of
    /// them.
    pub fn event_type(&self) -> Option<EventType> {
        use PaymentStatus as S;
        use TxnType as T;
        let status = self.payment_status();
        Some(match (self.txn_type(), status) {
            (Some(T::SubscrSignup), _) => EventType::SubscriptionCreated,
            (Some(T::SubscrPayment), Some(S::Completed)) => EventType::SubscriptionPayment,
            (Some(T::SubscrFailed), _) => EventType::SubscriptionPaymentFailed,
            (Some(T::SubscrCancel), _) => EventType::SubscriptionCanceled,
            (Some(T::SubscrEot), _) => EventType::SubscriptionExpired,
            (_, Some(S::Refunded)) => EventType::PaymentRefunded,
            (_, Some(S::Reversed)) => EventType::PaymentReversed,
            (_, Some(S::CanceledReversal)) => EventType::PaymentReversalCanceled,
            (Some(T::SubscrPayment), _) => return None,
            (_, Some(S::Pending)) => EventType::PaymentPending,
            (_, Some(S::Completed)) => EventType::PaymentCompleted,
            (_, Some(S::Failed)) => EventType::PaymentFailed,
            (_, Some(S::Denied)) => EventType::PaymentDenied,
            _ => return None,
        })
    }
}

impl From<Form> for IpnMessage {
    fn from(form: Form) -> Self {
        Self { form }
    }
}

fn parse_number(field: &str, value: &str) -> Result<u32, FieldError> {
    // Digits only: `u32::from_str` would also take "+1".
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| FieldError::Number {
            field: field.to_owned(),
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> IpnMessage {
        IpnMessage::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn statuses_and_types_it_does_not_know_are_kept() {
        let m = msg("txn_type=mystery&payment_status=Held&charset=UTF-8");
        assert_eq!(m.txn_type(), Some(TxnType::Other("mystery".into())));
        assert_eq!(
            m.payment_status(),
            Some(PaymentStatus::Other("Held".into()))
        );
        assert_eq!(m.event_type(), None);
    }

    #[test]
    fn amounts_are_exact_in_the_message_currency() {
        let m = msg("mc_gross=1000&mc_fee=40&mc_currency=JPY");
        assert_eq!(m.gross(), Ok(Some(Money::new(1000, Currency::JPY))));
        let m = msg("mc_gross=1.234&mc_currency=KWD");
        assert_eq!(m.gross(), Ok(Some(Money::new(1234, Currency::KWD))));
        assert!(matches!(
            msg("mc_gross=19.999&mc_currency=USD").gross(),
            Err(FieldError::Amount { .. })
        ));
        assert!(matches!(
            msg("mc_gross=19.99").gross(),
            Err(FieldError::Missing {
                field: "mc_currency",
                ..
            })
        ));
        assert!(matches!(
            msg("mc_gross=19.99&mc_currency=XYZ").gross(),
            Err(FieldError::Currency(_))
        ));
        assert_eq!(msg("mc_currency=USD").gross(), Ok(None));
    }

    #[test]
    fn cart_items_are_read_in_order() {
        let m = msg(
            "num_cart_items=2&item_name1=Mug&item_number1=M1&quantity1=2&mc_gross_1=10.00\
             &item_name2=Ebook&item_number2=E1&quantity2=1&mc_gross_2=5.50&mc_currency=EUR",
        );
        let items = m.items().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Mug");
        assert_eq!(items[0].quantity, 2);
        assert_eq!(items[1].gross, Some(Money::new(550, Currency::EUR)));
        assert!(matches!(
            msg("num_cart_items=+1").items(),
            Err(FieldError::Number { .. })
        ));
        assert!(matches!(
            msg("num_cart_items=4000000000").items(),
            Err(FieldError::CartTooLong { .. })
        ));
        assert!(matches!(
            msg("num_cart_items=1&quantity1=x").items(),
            Err(FieldError::Number { .. })
        ));
    }

    fn cart_body(lines: u32) -> String {
        let mut body = format!("num_cart_items={lines}&mc_currency=USD");
        for n in 1..=lines {
            body.push_str(&format!("&item_name{n}=Item+{n}&quantity{n}=1"));
        }
        body
    }

    #[test]
    fn carts_are_read_up_to_the_limit_and_no_further() {
        let items = msg(&cart_body(MAX_CART_ITEMS)).items().unwrap();
        assert_eq!(items.len(), 500);
        assert_eq!(items[499].name, "Item 500");
        assert_eq!(
            msg(&cart_body(MAX_CART_ITEMS + 1)).items(),
            Err(FieldError::CartTooLong {
                count: 501,
                max: 500
            })
        );
        // As many fields as the count claims, so only the limit refuses it.
        let mut huge = String::from("num_cart_items=20000");
        for n in 1..=20_000 {
            huge.push_str(&format!("&item_name{n}=x"));
        }
        assert_eq!(
            msg(&huge).items(),
            Err(FieldError::CartTooLong {
                count: 20_000,
                max: 500
            })
        );
        // Fewer fields than lines claimed.
        assert_eq!(
            msg("num_cart_items=3&item_name1=x").items(),
            Err(FieldError::CartTooLong { count: 3, max: 2 })
        );
    }

    #[test]
    fn a_single_item_with_a_bad_quantity_is_an_error() {
        let m = msg("item_name=Mug&item_number=M1&quantity=two");
        assert_eq!(
            m.items(),
            Err(FieldError::Number {
                field: "quantity".into(),
                value: "two".into()
            })
        );
        let m = msg("item_name=Mug&item_number=M1");
        assert_eq!(m.items().unwrap()[0].quantity, 1);
        let m = msg("item_name=Mug&quantity=3");
        assert_eq!(m.items().unwrap()[0].quantity, 3);
        assert_eq!(msg("quantity=3").items(), Ok(vec![]));
    }
}
