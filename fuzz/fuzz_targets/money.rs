//! Money parsing: `Currency::parse` and `Money::parse_decimal` never panic on
//! any text, and an amount that parses formats to a canonical string that
//! parses back to the same `Money` (and survives JSON the same way).
//!
//! Input: a three-byte currency code, then the amount (`USD19.99`). A code
//! that is not a known currency picks one of each exponent by its first byte,
//! so mutated codes still exercise every decimal rule.

#![no_main]

use ipn_core::money::{Currency, Money};
use libfuzzer_sys::fuzz_target;

const BY_EXPONENT: [Currency; 4] = [Currency::JPY, Currency::USD, Currency::KWD, Currency::CLF];

fuzz_target!(|data: &[u8]| {
    let Some((code, amount)) = data.split_at_checked(3) else {
        return;
    };
    let currency = std::str::from_utf8(code)
        .ok()
        .and_then(|code| Currency::parse(code).ok())
        .unwrap_or(BY_EXPONENT[usize::from(code[0]) % BY_EXPONENT.len()]);
    let Ok(amount) = std::str::from_utf8(amount) else {
        return;
    };
    let Ok(money) = Money::parse_decimal(amount, currency) else {
        return;
    };
    assert_eq!(money.currency(), currency);

    let text = money.to_decimal_string();
    assert_eq!(
        Money::parse_decimal(&text, currency),
        Ok(money),
        "{amount:?} formats as {text:?}"
    );
    let json = serde_json::to_string(&money).expect("money serializes");
    assert_eq!(
        serde_json::from_str::<Money>(&json).ok(),
        Some(money),
        "{json}"
    );
});
