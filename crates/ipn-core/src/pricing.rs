//! How much a payment is for, and what the gateway keeps of it.
//!
//! - Amounts given to the API are positive integer minor units of their
//!   currency ([`positive_amount`]); decimal strings are read exactly by
//!   [`Money::parse_decimal`] ([`parse_positive_decimal`]), so `"19.999"` USD
//!   and `"1.5"` JPY are refused rather than rounded.
//! - A cart's total is the sum of `quantity × unit_amount`, checked for
//!   overflow; an amount given with items must equal it ([`order_amount`]).
//! - The test fee is 2.9 % + 0.30 (see [`fee`]), computed in integers and
//!   rounded half up. Refunds and reversals give back the fee in proportion
//!   to the money they return, as PayPal does ([`crate::payment_flow`]).

use crate::money::{Currency, Money, MoneyError};
use crate::payment::Item;
use crate::paypal::MAX_CART_ITEMS;

/// Why an amount or a cart was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be more than zero, not {amount}")]
    NotPositive { amount: Money },
    /// A decimal string that is not an exact amount of the currency.
    #[error(transparent)]
    Decimal(#[from] MoneyError),
    #[error("an amount or items are required")]
    Missing,
    #[error("{count} items are more than the {max} a payment may have")]
    TooManyItems { count: usize, max: usize },
    /// `line` counts from 1, as PayPal's `quantity1`, `quantity2`, … do.
    #[error("item {line} has quantity 0: at least 1 is required")]
    ZeroQuantity { line: usize },
    #[error("item {line} has a negative unit_amount {unit_amount}")]
    NegativeUnitAmount { line: usize, unit_amount: Money },
    #[error("item {line}: {quantity} × {unit_amount} is too large")]
    LineOverflow {
        line: usize,
        quantity: u32,
        unit_amount: Money,
    },
    #[error("the items' total is too large")]
    TotalOverflow,
    #[error("amount {amount} is not the items' total {items_total}")]
    TotalMismatch { amount: Money, items_total: Money },
}

/// An amount in minor units for the API: more than zero.
pub fn positive_amount(minor: i64, currency: Currency) -> Result<Money, AmountError> {
    let amount = Money::new(minor, currency);
    if amount.is_positive() {
        Ok(amount)
    } else {
        Err(AmountError::NotPositive { amount })
    }
}

/// A decimal string (`"19.99"`) read exactly in `currency`, more than zero.
/// Too many decimals for the currency is an error, never a rounding.
pub fn parse_positive_decimal(text: &str, currency: Currency) -> Result<Money, AmountError> {
    let amount = Money::parse_decimal(text, currency)?;
    positive_amount(amount.minor(), currency)
}

/// The sum of the items' `quantity × unit_amount`.
///
/// Each line needs a quantity of at least 1 and a unit amount of at least 0
/// (a free item is fine; discounts are not lines, as in PayPal carts). At
/// most [`MAX_CART_ITEMS`] lines, the most a PayPal-dialect message carries.
/// An empty cart totals zero.
pub fn cart_total(items: &[Item], currency: Currency) -> Result<Money, AmountError> {
    let max = MAX_CART_ITEMS as usize;
    if items.len() > max {
        return Err(AmountError::TooManyItems {
            count: items.len(),
            max,
        });
    }
    let mut total = Money::new(0, currency);
    for (index, item) in items.iter().enumerate() {
        let line = index + 1;
        let unit_amount = Money::new(item.unit_amount, currency);
        if item.quantity == 0 {
            return Err(AmountError::ZeroQuantity { line });
        }
        if unit_amount.is_negative() {
            return Err(AmountError::NegativeUnitAmount { line, unit_amount });
        }
        let line_total =
            unit_amount
                .checked_mul(item.quantity)
                .map_err(|_| AmountError::LineOverflow {
                    line,
                    quantity: item.quantity,
                    unit_amount,
                })?;
        total = total
            .checked_add(line_total)
            .map_err(|_| AmountError::TotalOverflow)?;
    }
    Ok(total)
}

/// The amount of a payment or checkout session from what the request gave:
/// an amount, items, or both.
///
/// With items, the amount may be left out (it is their total); when given it
/// must equal their total exactly, so the amount charged and the lines the
/// merchant's listener checks can never disagree. Either way the result is
/// more than zero.
pub fn order_amount(
    amount: Option<i64>,
    currency: Currency,
    items: &[Item],
) -> Result<Money, AmountError> {
    if items.is_empty() {
        let minor = amount.ok_or(AmountError::Missing)?;
        return positive_amount(minor, currency);
    }
    let items_total = cart_total(items, currency)?;
    match amount {
        None => positive_amount(items_total.minor(), currency),
        Some(minor) => {
            let amount = positive_amount(minor, currency)?;
            if amount == items_total {
                Ok(amount)
            } else {
                Err(AmountError::TotalMismatch {
                    amount,
                    items_total,
                })
            }
        }
    }
}

/// The percentage part of the test fee, in basis points: 2.9 %.
pub const FEE_BASIS_POINTS: i64 = 290;

/// The fixed part of the test fee: 0.30 of the major unit (30 cents, 0.300
/// KWD), or 30 units of a currency without minor units (30 JPY: 0.30 JPY
/// could not be charged, and 30 JPY is close to the 40 JPY PayPal takes).
pub fn fixed_fee(currency: Currency) -> Money {
    let extra_digits = u32::from(currency.exponent().saturating_sub(2));
    Money::new(30 * 10_i64.pow(extra_digits), currency)
}

/// The test fee on a payment of `amount`: [`FEE_BASIS_POINTS`] of it,
/// rounded half up to a minor unit, plus [`fixed_fee`], but never more than
/// the amount itself (so a merchant never ends up owing money on a tiny
/// payment). Zero for an amount that is not positive.
///
/// 19.99 USD pays 0.88 (0.57971 rounds to 0.58, plus 0.30); 1000 JPY pays
/// 59 (29 + 30); 10.000 KWD pays 0.590.
pub fn fee(amount: Money) -> Money {
    let currency = amount.currency();
    if !amount.is_positive() {
        return Money::new(0, currency);
    }
    let minor = i128::from(amount.minor());
    let percentage = div_round_half_up(minor * i128::from(FEE_BASIS_POINTS), 10_000);
    let total = (percentage + i128::from(fixed_fee(currency).minor())).min(minor);
    // At most `amount`, so it fits.
    Money::new(i64::try_from(total).unwrap_or(amount.minor()), currency)
}

/// The share of `fee` that goes with `part` of `amount`, rounded half up.
///
/// Callers keep `0 <= part <= amount`, `amount > 0` and `0 <= fee <=
/// amount`. The fee given back by a refund is the difference between the
/// shares after and before it, so the shares of successive partial refunds
/// always add up to exactly the fee, whatever the rounding.
pub(crate) fn fee_share(fee: Money, amount: Money, part: Money) -> Money {
    let whole = i128::from(amount.minor());
    if whole <= 0 {
        return Money::new(0, fee.currency());
    }
    let part = i128::from(part.minor()).clamp(0, whole);
    let share = div_round_half_up(i128::from(fee.minor()) * part, whole);
    // |share| <= |fee|, so it fits.
    Money::new(i64::try_from(share).unwrap_or(fee.minor()), fee.currency())
}

/// `n / d` rounded to the nearest integer, halves away from zero; `d > 0`.
fn div_round_half_up(n: i128, d: i128) -> i128 {
    let half_up = (2 * n.abs() + d) / (2 * d);
    if n < 0 { -half_up } else { half_up }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::payment::ItemKind;

    const USD: Currency = Currency::USD;
    const JPY: Currency = Currency::JPY;
    const KWD: Currency = Currency::KWD;

    fn item(quantity: u32, unit_amount: i64) -> Item {
        Item {
            sku: "SKU".into(),
            name: "Thing".into(),
            quantity,
            unit_amount,
            kind: ItemKind::Physical,
        }
    }

    #[test]
    fn api_amounts_are_positive_minor_units() {
        assert_eq!(positive_amount(1999, USD), Ok(Money::new(1999, USD)));
        assert_eq!(positive_amount(1, JPY), Ok(Money::new(1, JPY)));
        for minor in [0, -1, i64::MIN] {
            let amount = Money::new(minor, USD);
            assert_eq!(
                positive_amount(minor, USD),
                Err(AmountError::NotPositive { amount })
            );
        }
        assert_eq!(
            positive_amount(-500, USD).unwrap_err().to_string(),
            "amount must be more than zero, not -5.00 USD"
        );
    }

    #[test]
    fn decimal_amounts_must_fit_the_currency_exactly() {
        let ok = [
            ("19.99", USD, 1999),
            ("5", USD, 500),
            ("1000", JPY, 1000),
            ("1.234", KWD, 1234),
            ("0.001", KWD, 1),
        ];
        for (text, currency, minor) in ok {
            assert_eq!(
                parse_positive_decimal(text, currency),
                Ok(Money::new(minor, currency)),
                "{text} {currency}"
            );
        }
        let refused = [
            (
                "19.999",
                USD,
                "has more than the 2 decimals allowed for USD",
            ),
            ("1.5", JPY, "has more than the 0 decimals allowed for JPY"),
            (
                "1.2345",
                KWD,
                "has more than the 3 decimals allowed for KWD",
            ),
            ("0.00", USD, "more than zero"),
            ("-1.00", USD, "more than zero"),
            ("1,00", USD, "invalid character"),
            ("", USD, "empty amount"),
        ];
        for (text, currency, message) in refused {
            let error = parse_positive_decimal(text, currency).unwrap_err();
            assert!(error.to_string().contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn carts_total_their_lines() {
        let cases: [(&[Item], i64); 4] = [
            (&[], 0),
            (&[item(1, 1999)], 1999),
            (&[item(2, 1500), item(1, 999), item(3, 0)], 3999),
            (&[item(u32::MAX, 1)], i64::from(u32::MAX)),
        ];
        for (items, total) in cases {
            assert_eq!(cart_total(items, USD), Ok(Money::new(total, USD)));
        }
    }

    #[test]
    fn bad_carts_are_refused_naming_the_line() {
        let cases = [
            (
                vec![item(1, 100), item(0, 100)],
                AmountError::ZeroQuantity { line: 2 },
            ),
            (
                vec![item(1, -100)],
                AmountError::NegativeUnitAmount {
                    line: 1,
                    unit_amount: Money::new(-100, USD),
                },
            ),
            (
                vec![item(1, 1), item(2, i64::MAX)],
                AmountError::LineOverflow {
                    line: 2,
                    quantity: 2,
                    unit_amount: Money::new(i64::MAX, USD),
                },
            ),
            (
                vec![item(1, i64::MAX), item(1, 1)],
                AmountError::TotalOverflow,
            ),
            (
                vec![item(1, 1); 501],
                AmountError::TooManyItems {
                    count: 501,
                    max: 500,
                },
            ),
        ];
        for (items, error) in cases {
            assert_eq!(cart_total(&items, USD), Err(error));
        }
        assert!(cart_total(&vec![item(1, 1); 500], USD).is_ok());
        assert_eq!(
            AmountError::ZeroQuantity { line: 2 }.to_string(),
            "item 2 has quantity 0: at least 1 is required"
        );
    }

    type Expected = Result<Money, AmountError>;

    #[test]
    fn an_order_amount_comes_from_the_amount_the_items_or_both() {
        let usd = |minor| Money::new(minor, USD);
        let cart = [item(2, 500), item(1, 999)];
        let cases: [(Option<i64>, &[Item], Expected); 8] = [
            (Some(1999), &[], Ok(usd(1999))),
            (None, &cart, Ok(usd(1999))),
            (Some(1999), &cart, Ok(usd(1999))),
            (None, &[], Err(AmountError::Missing)),
            (
                Some(0),
                &[],
                Err(AmountError::NotPositive { amount: usd(0) }),
            ),
            (
                Some(2000),
                &cart,
                Err(AmountError::TotalMismatch {
                    amount: usd(2000),
                    items_total: usd(1999),
                }),
            ),
            (
                None,
                &[item(1, 0)],
                Err(AmountError::NotPositive { amount: usd(0) }),
            ),
            (
                Some(-1999),
                &cart,
                Err(AmountError::NotPositive { amount: usd(-1999) }),
            ),
        ];
        for (amount, items, expected) in cases {
            assert_eq!(order_amount(amount, USD, items), expected, "{amount:?}");
        }
        assert_eq!(
            order_amount(Some(2000), USD, &cart)
                .unwrap_err()
                .to_string(),
            "amount 20.00 USD is not the items' total 19.99 USD"
        );
    }

    #[test]
    fn the_test_fee_is_2_9_percent_plus_30_cents() {
        let cases = [
            (1999, USD, 88),    // 57.971 -> 58, + 30
            (10_000, USD, 320), // 290 + 30
            (1724, USD, 80),    // 49.996 -> 50, + 30
            (1707, USD, 80),    // 49.503 -> 50, + 30
            (1706, USD, 79),    // 49.474 -> 49, + 30
            (50, USD, 31),      // 1.45 -> 1, + 30
            (31, USD, 31),      // capped at the amount
            (1, USD, 1),        // capped at the amount
            (1000, JPY, 59),    // 29 + 30
            (100, JPY, 33),     // 2.9 -> 3, + 30
            (10_000, KWD, 590), // 290 + 300
            (1, KWD, 1),        // capped
            (0, USD, 0),        // nothing moved
            (-1999, USD, 0),    // not a payment
            (i64::MAX, JPY, 267_477_789_068_788_528),
        ];
        for (minor, currency, fee_minor) in cases {
            assert_eq!(
                fee(Money::new(minor, currency)),
                Money::new(fee_minor, currency),
                "{minor} {currency}"
            );
        }
        assert_eq!(fixed_fee(Currency::CLF), Money::new(3000, Currency::CLF));
        assert_eq!(fixed_fee(JPY), Money::new(30, JPY));
    }

    #[test]
    fn fee_shares_round_half_up_and_add_up() {
        let usd = |minor| Money::new(minor, USD);
        let cases = [
            (88, 1999, 0, 0),
            (88, 1999, 1999, 88),
            (88, 1999, 500, 22),  // 22.01
            (88, 1999, 1000, 44), // 44.02
            (3, 4, 2, 2),         // 1.5 -> 2
            (1, 3, 1, 0),         // 0.33
            (1, 3, 2, 1),         // 0.67
        ];
        for (fee, amount, part, share) in cases {
            assert_eq!(
                fee_share(usd(fee), usd(amount), usd(part)),
                usd(share),
                "{fee} of {amount} for {part}"
            );
        }
        assert_eq!(div_round_half_up(-3, 2), -2);
        assert_eq!(div_round_half_up(-1, 3), 0);
    }

    proptest! {
        #[test]
        fn the_fee_stays_between_zero_and_the_amount(minor in any::<i64>()) {
            for currency in [JPY, USD, KWD] {
                let fee = fee(Money::new(minor, currency)).minor();
                prop_assert!(fee >= 0 && fee <= minor.max(0));
            }
        }

        #[test]
        fn a_larger_payment_never_pays_a_smaller_fee(a in 1..i64::MAX / 2, b in 1..i64::MAX / 2) {
            let (small, large) = (a.min(b), a.max(b));
            prop_assert!(fee(Money::new(small, USD)).minor() <= fee(Money::new(large, USD)).minor());
        }

        #[test]
        fn shares_grow_with_the_part(amount in 1..i64::MAX, x in any::<i64>(), y in any::<i64>()) {
            let usd = |minor| Money::new(minor, USD);
            let fee = fee(usd(amount));
            let (p, q) = (x.rem_euclid(amount + 1).min(y.rem_euclid(amount + 1)),
                          x.rem_euclid(amount + 1).max(y.rem_euclid(amount + 1)));
            let (sp, sq) = (fee_share(fee, usd(amount), usd(p)), fee_share(fee, usd(amount), usd(q)));
            prop_assert!(sp.minor() <= sq.minor());
            prop_assert_eq!(fee_share(fee, usd(amount), usd(amount)), fee);
            prop_assert_eq!(fee_share(fee, usd(amount), usd(0)), usd(0));
        }

        #[test]
        fn cart_totals_match_an_independent_sum(
            lines in prop::collection::vec((1u32..1000, 0i64..1_000_000), 0..20),
        ) {
            let items: Vec<Item> = lines.iter().map(|&(q, u)| item(q, u)).collect();
            let expected: i64 = lines.iter().map(|&(q, u)| i64::from(q) * u).sum();
            prop_assert_eq!(cart_total(&items, USD), Ok(Money::new(expected, USD)));
        }
    }
}
