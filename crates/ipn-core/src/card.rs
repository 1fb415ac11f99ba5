//! Test cards: what a card number typed at checkout means in test mode.
//!
//! A [`CardNumber`] is parsed from what a person types (`4242 4242 4242
//! 4242`, `4242-4242-…`) and is valid once it exists: 12 to 19 digits that
//! pass the Luhn check. It never shows itself in full: `Debug` and `Display`
//! print `•••• 4242`, and it cannot be serialized, so it cannot reach a log or
//! a database by accident; keep [`CardNumber::last4`] and
//! [`CardNumber::brand`] instead.
//!
//! As in common sandboxes, the number chooses the outcome: [`TEST_CARDS`] is
//! the one table of numbers with a special [`CardBehaviour`] (the README and
//! the checkout page list it), and every other valid number completes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::payment_flow::{InitialStatus, PendingReason};

/// Why a typed card number was refused. The messages never repeat the
/// number, since they may be logged or shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card number is empty")]
    Empty,
    #[error(
        "card number has {character:?} at byte {offset}: only digits, spaces and dashes are allowed"
    )]
    InvalidCharacter { character: char, offset: usize },
    #[error(
        "card number has {digits} digits, at least {min} are needed",
        min = CardNumber::MIN_DIGITS
    )]
    TooShort { digits: usize },
    #[error(
        "card number has {digits} digits, at most {max} are allowed",
        max = CardNumber::MAX_DIGITS
    )]
    TooLong { digits: usize },
    #[error("card number fails the Luhn check: a digit is probably mistyped")]
    FailedLuhnCheck,
}

/// A card number that has the length of one and passes the Luhn check.
///
/// Equal numbers compare equal however they were typed (spaces, dashes).
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber {
    /// ASCII digits only, 12 to 19 of them.
    digits: String,
}

impl CardNumber {
    /// The shortest number accepted (ISO/IEC 7812 allows 8, but no card
    /// network issues fewer than 12).
    pub const MIN_DIGITS: usize = 12;
    /// The longest number ISO/IEC 7812 allows.
    pub const MAX_DIGITS: usize = 19;

    /// Reads a number as a person types it: digits, with spaces and dashes
    /// anywhere for grouping.
    pub fn parse(input: &str) -> Result<Self, CardError> {
        let mut digits = String::with_capacity(Self::MAX_DIGITS);
        let mut count = 0;
        for (offset, character) in input.char_indices() {
            match character {
                '0'..='9' => {
                    count += 1;
                    // Past the maximum only the count matters (for the
                    // error), so a huge input costs no memory.
                    if count <= Self::MAX_DIGITS {
                        digits.push(character);
                    }
                }
                ' ' | '-' => {}
                _ => return Err(CardError::InvalidCharacter { character, offset }),
            }
        }
        match count {
            0 => Err(CardError::Empty),
            n if n < Self::MIN_DIGITS => Err(CardError::TooShort { digits: n }),
            n if n > Self::MAX_DIGITS => Err(CardError::TooLong { digits: n }),
            _ if !passes_luhn(&digits) => Err(CardError::FailedLuhnCheck),
            _ => Ok(Self { digits }),
        }
    }

    /// The last four digits, the only part that may be stored or shown.
    pub fn last4(&self) -> &str {
        // At least 12 ASCII digits, so the slice is in range and on a
        // character boundary.
        &self.digits[self.digits.len() - 4..]
    }

    /// The card network, from the number's leading digits.
    pub fn brand(&self) -> CardBrand {
        CardBrand::of_digits(&self.digits)
    }

    /// How the test gateway treats this number.
    pub fn behaviour(&self) -> CardBehaviour {
        behaviour(self)
    }

    fn digits_equal(&self, formatted: &str) -> bool {
        formatted
            .bytes()
            .filter(u8::is_ascii_digit)
            .eq(self.digits.bytes())
    }
}

/// The Luhn (mod 10) check: doubling every second digit from the right
/// catches any single mistyped digit and most swaps of neighbours.
fn passes_luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            match (index % 2 == 1, digit * 2) {
                (false, _) => digit,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum % 10 == 0
}

/// `•••• 4242`.
impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "•••• {}", self.last4())
    }
}

/// `CardNumber(•••• 4242)`: the full number stays out of logs and panics.
impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({self})")
    }
}

impl FromStr for CardNumber {
    type Err = CardError;
    fn from_str(s: &str) -> Result<Self, CardError> {
        Self::parse(s)
    }
}

/// Reads a JSON string as [`CardNumber::parse`] does. There is deliberately
/// no `Serialize`: a full number is never written anywhere.
impl<'de> Deserialize<'de> for CardNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The card network a number belongs to, by its leading digits (IIN ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    /// Starts with 4.
    Visa,
    /// 51–55, or 2221–2720.
    Mastercard,
    /// American Express: 34 or 37.
    Amex,
    /// 6011, 644–649 or 65.
    Discover,
    /// Any other range.
    Other,
}

impl CardBrand {
    fn of_digits(digits: &str) -> Self {
        // The first four digits decide every range below; a prefix is read
        // as a number so ranges compare numerically.
        let prefix = |len: usize| -> u32 {
            digits
                .bytes()
                .take(len)
                .fold(0, |n, b| n * 10 + u32::from(b - b'0'))
        };
        match (prefix(1), prefix(2), prefix(3), prefix(4)) {
            (4, _, _, _) => Self::Visa,
            (_, 51..=55, _, _) | (_, _, _, 2221..=2720) => Self::Mastercard,
            (_, 34 | 37, _, _) => Self::Amex,
            (_, 65, _, _) | (_, _, 644..=649, _) | (_, _, _, 6011) => Self::Discover,
            _ => Self::Other,
        }
    }

    /// The name on the wire: `visa`, `mastercard`, `amex`, `discover`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Other => "other",
        }
    }

    /// The name a person reads: `Visa`, `American Express`, …
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Visa => "Visa",
            Self::Mastercard => "Mastercard",
            Self::Amex => "American Express",
            Self::Discover => "Discover",
            Self::Other => "Card",
        }
    }
}

impl fmt::Display for CardBrand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the test gateway does with a payment made with a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBehaviour {
    /// The payment completes.
    Completes,
    /// The payment is declined (`payment.denied`).
    Declines,
    /// The payment stays pending (`pending_reason=paymentreview`) until it is
    /// completed or failed through the API.
    StaysPending,
    /// The payment completes, then the payer disputes it: the gateway reverses
    /// it (`payment.reversed`, chargeback) right after completion.
    CompletesThenDisputed,
    /// A subscription's first charge completes and every later charge is
    /// declined, to exercise failed renewals and retries. A one-time payment
    /// completes.
    DeclinesRenewals,
}

impl CardBehaviour {
    /// What happens to one charge with this card.
    pub fn outcome(self, attempt: ChargeAttempt) -> CardOutcome {
        match (self, attempt) {
            (Self::Completes, _) => CardOutcome::Completes,
            (Self::Declines, _) => CardOutcome::Declines,
            (Self::StaysPending, _) => CardOutcome::StaysPending,
            (Self::CompletesThenDisputed, _) => CardOutcome::CompletesThenReversed,
            (Self::DeclinesRenewals, ChargeAttempt::SubscriptionRenewal) => CardOutcome::Declines,
            (Self::DeclinesRenewals, _) => CardOutcome::Completes,
        }
    }
}

/// Which charge a card is used for, since some test cards behave differently
/// at a subscription's renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeAttempt {
    /// A one-time payment (API or checkout).
    OneTime,
    /// A subscription's first charge (cycle 0, at signup or when the trial
    /// ends).
    SubscriptionFirst,
    /// Any later charge of a subscription, retries included.
    SubscriptionRenewal,
}

/// What happens to one charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardOutcome {
    /// Completed at once.
    Completes,
    /// Declined at once.
    Declines,
    /// Pending for review.
    StaysPending,
    /// Completed, then reversed by a chargeback.
    CompletesThenReversed,
}

impl CardOutcome {
    /// The status the payment is created with
    /// ([`crate::payment_flow::Charge::create`]).
    pub fn initial_status(self) -> InitialStatus {
        match self {
            Self::Completes | Self::CompletesThenReversed => InitialStatus::Completed,
            Self::Declines => InitialStatus::Denied,
            Self::StaysPending => InitialStatus::Pending,
        }
    }

    /// Why the payment is pending, when it is.
    pub fn pending_reason(self) -> Option<PendingReason> {
        (self == Self::StaysPending).then_some(PendingReason::PaymentReview)
    }

    /// Whether the gateway reverses the payment right after completing it.
    pub fn reversed_after_completion(self) -> bool {
        self == Self::CompletesThenReversed
    }
}

/// One row of [`TEST_CARDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    /// As printed on the card, in groups of four (Amex: 4-6-5).
    pub number: &'static str,
    /// What the gateway does with it.
    pub behaviour: CardBehaviour,
    /// One line for people, for the README and the checkout page.
    pub description: &'static str,
}

/// The test cards with a documented behaviour, most common first. Numbers
/// follow the sandboxes developers know (Stripe's) where one exists; any
/// valid number not listed completes.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242 4242 4242 4242",
        behaviour: CardBehaviour::Completes,
        description: "Visa: the payment completes",
    },
    TestCard {
        number: "5555 5555 5555 4444",
        behaviour: CardBehaviour::Completes,
        description: "Mastercard: the payment completes",
    },
    TestCard {
        number: "3782 822463 10005",
        behaviour: CardBehaviour::Completes,
        description: "American Express: the payment completes",
    },
    TestCard {
        number: "4000 0000 0000 0002",
        behaviour: CardBehaviour::Declines,
        description: "declined (payment.denied)",
    },
    TestCard {
        number: "4000 0000 0000 0077",
        behaviour: CardBehaviour::StaysPending,
        description: "stays pending until completed or failed through the API",
    },
    TestCard {
        number: "4000 0000 0000 0259",
        behaviour: CardBehaviour::CompletesThenDisputed,
        description: "completes, then is disputed: reversed by a chargeback right away",
    },
    TestCard {
        number: "4000 0000 0000 0341",
        behaviour: CardBehaviour::DeclinesRenewals,
        description: "a subscription's first charge completes, every renewal is declined",
    },
];

/// How the test gateway treats a card: as its [`TEST_CARDS`] row says, or
/// [`CardBehaviour::Completes`] for any number not listed.
pub fn behaviour(card: &CardNumber) -> CardBehaviour {
    TEST_CARDS
        .iter()
        .find(|row| card.digits_equal(row.number))
        .map_or(CardBehaviour::Completes, |row| row.behaviour)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_lists_every_test_card() {
        let readme = include_str!("../../../README.md");
        for card in TEST_CARDS {
            assert!(
                readme.contains(card.number),
                "README.md does not list {}",
                card.number
            );
        }
    }

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn typed_numbers_parse_with_spaces_and_dashes() {
        let cases = [
            ("4242424242424242", "4242"),
            ("4242 4242 4242 4242", "4242"),
            ("4242-4242-4242-4242", "4242"),
            (" 4242 - 4242  4242 4242 ", "4242"),
            ("3782 822463 10005", "0005"),
            ("0000 0000 0000", "0000"),
            ("4000 0000 0000 0000 006", "0006"),
        ];
        for (input, last4) in cases {
            let card = CardNumber::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(card.last4(), last4, "{input:?}");
        }
        assert_eq!(
            CardNumber::parse("4242 4242 4242 4242"),
            "4242-4242-4242-4242".parse()
        );
    }

    #[test]
    fn each_kind_of_bad_number_has_its_own_error() {
        let cases = [
            ("", CardError::Empty),
            ("  - ", CardError::Empty),
            (
                "4242 4242 4242 424x",
                CardError::InvalidCharacter {
                    character: 'x',
                    offset: 18,
                },
            ),
            (
                "4242.4242.4242.4242",
                CardError::InvalidCharacter {
                    character: '.',
                    offset: 4,
                },
            ),
            (
                "４242424242424242",
                CardError::InvalidCharacter {
                    character: '４',
                    offset: 0,
                },
            ),
            (
                "4242\t4242424242424242",
                CardError::InvalidCharacter {
                    character: '\t',
                    offset: 4,
                },
            ),
            (
                "+4242424242424242",
                CardError::InvalidCharacter {
                    character: '+',
                    offset: 0,
                },
            ),
            ("42424242424", CardError::TooShort { digits: 11 }),
            ("4", CardError::TooShort { digits: 1 }),
            ("42424242424242424242", CardError::TooLong { digits: 20 }),
            ("4242 4242 4242 4241", CardError::FailedLuhnCheck),
            ("4242 4242 4242 2442", CardError::FailedLuhnCheck),
        ];
        for (input, error) in cases {
            assert_eq!(CardNumber::parse(input), Err(error), "{input:?}");
        }
        assert_eq!(
            CardNumber::parse(&"4".repeat(100_000)),
            Err(CardError::TooLong { digits: 100_000 })
        );
    }

    #[test]
    fn error_messages_explain_without_repeating_the_number() {
        let cases = [
            ("", "card number is empty"),
            (
                "4242 4242 4242 424x",
                "card number has 'x' at byte 18: only digits, spaces and dashes are allowed",
            ),
            (
                "42424242424",
                "card number has 11 digits, at least 12 are needed",
            ),
            (
                "42424242424242424242",
                "card number has 20 digits, at most 19 are allowed",
            ),
            (
                "4242424242424241",
                "card number fails the Luhn check: a digit is probably mistyped",
            ),
        ];
        for (input, message) in cases {
            let error = CardNumber::parse(input).unwrap_err().to_string();
            assert_eq!(error, message);
            assert!(!error.ends_with('.'));
        }
    }

    #[test]
    fn a_number_never_shows_itself_in_full() {
        let card = CardNumber::parse("4000 0566 5566 5556").unwrap();
        assert_eq!(card.to_string(), "•••• 5556");
        assert_eq!(format!("{card:?}"), "CardNumber(•••• 5556)");
        assert_eq!(format!("{:?}", Some(&card)), "Some(CardNumber(•••• 5556))");
    }

    #[test]
    fn json_strings_parse_like_typed_input() {
        let card: CardNumber = serde_json::from_str("\"4242 4242 4242 4242\"").unwrap();
        assert_eq!(card.last4(), "4242");
        let error = serde_json::from_str::<CardNumber>("\"4242424242424241\"").unwrap_err();
        assert!(error.to_string().contains("Luhn"), "{error}");
        assert!(!error.to_string().contains("4242424242424241"), "{error}");
        assert!(serde_json::from_str::<CardNumber>("4242424242424242").is_err());
    }

    #[test]
    fn brands_follow_the_leading_digits() {
        let cases = [
            ("4242424242424242", CardBrand::Visa),
            ("4000056655665556", CardBrand::Visa),
            ("5555555555554444", CardBrand::Mastercard),
            ("5105105105105100", CardBrand::Mastercard),
            ("2223003122003222", CardBrand::Mastercard),
            ("2720990000000007", CardBrand::Mastercard),
            ("2221000000000009", CardBrand::Mastercard),
            ("2220990000000002", CardBrand::Other),
            ("2721000000000004", CardBrand::Other),
            ("5600000000000003", CardBrand::Other),
            ("378282246310005", CardBrand::Amex),
            ("371449635398431", CardBrand::Amex),
            ("6011111111111117", CardBrand::Discover),
            ("6445644564456445", CardBrand::Discover),
            ("6500000000000002", CardBrand::Discover),
            ("6430000000000007", CardBrand::Other),
            ("3056930009020004", CardBrand::Other),
            ("000000000000", CardBrand::Other),
        ];
        for (number, brand) in cases {
            let card = CardNumber::parse(number).unwrap_or_else(|e| panic!("{number}: {e}"));
            assert_eq!(card.brand(), brand, "{number}");
        }
        assert_eq!(CardBrand::Amex.as_str(), "amex");
        assert_eq!(CardBrand::Amex.display_name(), "American Express");
        assert_eq!(serde_json::to_string(&CardBrand::Visa).unwrap(), "\"visa\"");
    }

    #[test]
    fn the_table_is_consistent() {
        for (index, row) in TEST_CARDS.iter().enumerate() {
            let card =
                CardNumber::parse(row.number).unwrap_or_else(|e| panic!("{}: {e}", row.number));
            assert_eq!(behaviour(&card), row.behaviour, "{}", row.number);
            assert!(!row.description.ends_with('.'), "{}", row.number);
            for other in &TEST_CARDS[index + 1..] {
                assert!(!card.digits_equal(other.number), "{} twice", row.number);
            }
        }
        // The issue names these two numbers; scripts rely on them.
        assert_eq!(TEST_CARDS[0].number, "4242 4242 4242 4242");
        for wanted in [
            CardBehaviour::Completes,
            CardBehaviour::Declines,
            CardBehaviour::StaysPending,
            CardBehaviour::CompletesThenDisputed,
            CardBehaviour::DeclinesRenewals,
        ] {
            assert!(
                TEST_CARDS.iter().any(|row| row.behaviour == wanted),
                "{wanted:?} has no card"
            );
        }
    }

    #[test]
    fn numbers_choose_the_outcome() {
        use CardOutcome as O;
        use ChargeAttempt::{OneTime, SubscriptionFirst, SubscriptionRenewal};
        let cases = [
            ("4242424242424242", OneTime, O::Completes),
            ("4242424242424242", SubscriptionRenewal, O::Completes),
            ("4000-0000-0000-0002", OneTime, O::Declines),
            ("4000000000000002", SubscriptionFirst, O::Declines),
            ("4000000000000077", OneTime, O::StaysPending),
            ("4000000000000259", OneTime, O::CompletesThenReversed),
            ("4000000000000341", OneTime, O::Completes),
            ("4000000000000341", SubscriptionFirst, O::Completes),
            ("4000000000000341", SubscriptionRenewal, O::Declines),
            // Not in the table: completes.
            ("4000056655665556", OneTime, O::Completes),
            ("6011111111111117", SubscriptionRenewal, O::Completes),
        ];
        for (number, attempt, outcome) in cases {
            let card = CardNumber::parse(number).unwrap();
            assert_eq!(card.behaviour().outcome(attempt), outcome, "{number}");
        }
    }

    #[test]
    fn outcomes_map_to_payment_states() {
        let cases = [
            (
                CardOutcome::Completes,
                InitialStatus::Completed,
                None,
                false,
            ),
            (CardOutcome::Declines, InitialStatus::Denied, None, false),
            (
                CardOutcome::StaysPending,
                InitialStatus::Pending,
                Some(PendingReason::PaymentReview),
                false,
            ),
            (
                CardOutcome::CompletesThenReversed,
                InitialStatus::Completed,
                None,
                true,
            ),
        ];
        for (outcome, status, reason, reversed) in cases {
            assert_eq!(outcome.initial_status(), status, "{outcome:?}");
            assert_eq!(outcome.pending_reason(), reason, "{outcome:?}");
            assert_eq!(outcome.reversed_after_completion(), reversed, "{outcome:?}");
        }
    }

    /// Appends the digit that makes `body` pass the Luhn check, computed the
    /// textbook way (independently of [`passes_luhn`]).
    fn with_check_digit(body: &str) -> String {
        let sum: u32 = body
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                // With the check digit appended, the body's rightmost digit
                // is second from the right: it is doubled.
                if i % 2 == 0 {
                    (d * 2) / 10 + (d * 2) % 10
                } else {
                    d
                }
            })
            .sum();
        format!("{body}{}", (10 - sum % 10) % 10)
    }

    proptest! {
        #[test]
        fn luhn_valid_numbers_parse(body in "[0-9]{11,18}") {
            let number = with_check_digit(&body);
            let card = CardNumber::parse(&number).unwrap();
            prop_assert_eq!(card.last4(), &number[number.len() - 4..]);
        }

        #[test]
        fn one_mistyped_digit_is_caught(
            body in "[0-9]{11,18}",
            position in any::<prop::sample::Index>(),
            shift in 1u8..10,
        ) {
            let mut number = with_check_digit(&body).into_bytes();
            let i = position.index(number.len());
            number[i] = b'0' + (number[i] - b'0' + shift) % 10;
            let number = String::from_utf8(number).unwrap();
            prop_assert_eq!(CardNumber::parse(&number), Err(CardError::FailedLuhnCheck));
        }

        #[test]
        fn grouping_does_not_change_the_number(
            body in "[0-9]{11,18}",
            separators in prop::collection::vec(prop::sample::select(vec!["", " ", "-", "  ", " - "]), 19),
        ) {
            let number = with_check_digit(&body);
            let typed: String = number
                .chars()
                .zip(&separators)
                .flat_map(|(digit, separator)| std::iter::once(digit).chain(separator.chars()))
                .collect();
            prop_assert_eq!(CardNumber::parse(&typed), CardNumber::parse(&number));
        }

        #[test]
        fn printing_shows_only_the_last_four(body in "[0-9]{11,18}") {
            let number = with_check_digit(&body);
            let card = CardNumber::parse(&number).unwrap();
            let shown = format!("{card} {card:?}");
            let shown_digits: String = shown.chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(shown_digits, format!("{0}{0}", card.last4()));
        }

        #[test]
        fn any_input_is_answered_without_panicking(input in any::<String>()) {
            if let Ok(card) = CardNumber::parse(&input) {
                prop_assert_eq!(card.last4().len(), 4);
            }
        }
    }
}
