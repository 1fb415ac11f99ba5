//! Currencies and amounts of money, always as integer minor units.
//!
//! A [`Money`] is an `i64` count of the smallest unit of a [`Currency`] (cents
//! for USD, yen for JPY, fils for KWD), so sums are exact and there is no
//! float anywhere. Decimal strings such as PayPal's `mc_gross=19.99` are parsed
//! strictly against the currency's ISO 4217 exponent: anything that would need
//! rounding, guessing or a float is refused.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a currency code, an amount or a sum of money was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("invalid currency code {0:?}: expected 3 uppercase ASCII letters")]
    InvalidCurrencyCode(String),
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    #[error("empty amount")]
    Empty,
    #[error("invalid character {character:?} at byte {offset} of amount {input:?}")]
    InvalidCharacter {
        input: String,
        character: char,
        offset: usize,
    },
    /// No digits before the decimal point, or a decimal point with none after it.
    #[error("amount {input:?} is missing digits")]
    MissingDigits { input: String },
    #[error("amount {input:?} has more than the {max} decimals allowed for {currency}")]
    TooManyDecimals {
        input: String,
        currency: Currency,
        max: u8,
    },
    #[error("amount {input:?} does not fit in 64-bit minor units of {currency}")]
    Overflow { input: String, currency: Currency },
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("adding {right} to {left} overflows")]
    AddOverflow { left: Money, right: Money },
    #[error("subtracting {right} from {left} overflows")]
    SubOverflow { left: Money, right: Money },
    #[error("multiplying {amount} by {quantity} overflows")]
    MulOverflow { amount: Money, quantity: u32 },
    #[error("negating {amount} overflows")]
    NegOverflow { amount: Money },
}

/// One row of the currency table.
#[derive(PartialEq, Eq, Hash)]
struct CurrencyInfo {
    code: &'static str,
    exponent: u8,
}

const fn c(code: &'static str, exponent: u8) -> CurrencyInfo {
    CurrencyInfo { code, exponent }
}

/// ISO 4217 currencies with their minor-unit exponents, sorted by code.
///
/// Every code in ISO 4217 use on or after 2025-01-01 is here, so a refund of an
/// older payment still parses (ANG gave way to XCG in 2025, BGN to EUR in
/// 2026; HRK and ZWL, withdrawn earlier, are gone). The X-codes that are not
/// money one can be paid in (precious metals, SDR, bond market units, testing,
/// "no currency") are left out on purpose.
const CURRENCIES: &[CurrencyInfo] = &[
    c("AED", 2), // UAE dirham
    c("AFN", 2), // Afghani
    c("ALL", 2), // Lek
    c("AMD", 2), // Armenian dram
    c("ANG", 2), // Netherlands Antillean guilder (replaced by XCG in 2025)
    c("AOA", 2), // Kwanza
    c("ARS", 2), // Argentine peso
    c("AUD", 2), // Australian dollar
    c("AWG", 2), // Aruban florin
    c("AZN", 2), // Azerbaijan manat
    c("BAM", 2), // Convertible mark
    c("BBD", 2), // Barbados dollar
    c("BDT", 2), // Taka
    c("BGN", 2), // Bulgarian lev (replaced by EUR in 2026)
    c("BHD", 3), // Bahraini dinar
    c("BIF", 0), // Burundi franc
    c("BMD", 2), // Bermudian dollar
    c("BND", 2), // Brunei dollar
    c("BOB", 2), // Boliviano
    c("BOV", 2), // Mvdol
    c("BRL", 2), // Brazilian real
    c("BSD", 2), // Bahamian dollar
    c("BTN", 2), // Ngultrum
    c("BWP", 2), // Pula
    c("BYN", 2), // Belarusian ruble
    c("BZD", 2), // Belize dollar
    c("CAD", 2), // Canadian dollar
    c("CDF", 2), // Congolese franc
    c("CHE", 2), // WIR euro
    c("CHF", 2), // Swiss franc
    c("CHW", 2), // WIR franc
    c("CLF", 4), // Unidad de fomento
    c("CLP", 0), // Chilean peso
    c("CNY", 2), // Yuan renminbi
    c("COP", 2), // Colombian peso
    c("COU", 2), // Unidad de valor real
    c("CRC", 2), // Costa Rican colon
    c("CUC", 2), // Peso convertible
    c("CUP", 2), // Cuban peso
    c("CVE", 2), // Cabo Verde escudo
    c("CZK", 2), // Czech koruna
    c("DJF", 0), // Djibouti franc
    c("DKK", 2), // Danish krone
    c("DOP", 2), // Dominican peso
    c("DZD", 2), // Algerian dinar
    c("EGP", 2), // Egyptian pound
    c("ERN", 2), // Nakfa
    c("ETB", 2), // Ethiopian birr
    c("EUR", 2), // Euro
    c("FJD", 2), // Fiji dollar
    c("FKP", 2), // Falkland Islands pound
    c("GBP", 2), // Pound sterling
    c("GEL", 2), // Lari
    c("GHS", 2), // Ghana cedi
    c("GIP", 2), // Gibraltar pound
    c("GMD", 2), // Dalasi
    c("GNF", 0), // Guinean franc
    c("GTQ", 2), // Quetzal
    c("GYD", 2), // Guyana dollar
    c("HKD", 2), // Hong Kong dollar
    c("HNL", 2), // Lempira
    c("HTG", 2), // Gourde
    c("HUF", 2), // Forint
    c("IDR", 2), // Rupiah
    c("ILS", 2), // New Israeli sheqel
    c("INR", 2), // Indian rupee
    c("IQD", 3), // Iraqi dinar
    c("IRR", 2), // Iranian rial
    c("ISK", 0), // Iceland krona
    c("JMD", 2), // Jamaican dollar
    c("JOD", 3), // Jordanian dinar
    c("JPY", 0), // Yen
    c("KES", 2), // Kenyan shilling
    c("KGS", 2), // Som
    c("KHR", 2), // Riel
    c("KMF", 0), // Comorian franc
    c("KPW", 2), // North Korean won
    c("KRW", 0), // Won
    c("KWD", 3), // Kuwaiti dinar
    c("KYD", 2), // Cayman Islands dollar
    c("KZT", 2), // Tenge
    c("LAK", 2), // Lao kip
    c("LBP", 2), // Lebanese pound
    c("LKR", 2), // Sri Lanka rupee
    c("LRD", 2), // Liberian dollar
    c("LSL", 2), // Loti
    c("LYD", 3), // Libyan dinar
    c("MAD", 2), // Moroccan dirham
    c("MDL", 2), // Moldovan leu
    c("MGA", 2), // Malagasy ariary
    c("MKD", 2), // Denar
    c("MMK", 2), // Kyat
    c("MNT", 2), // Tugrik
    c("MOP", 2), // Pataca
    c("MRU", 2), // Ouguiya
    c("MUR", 2), // Mauritius rupee
    c("MVR", 2), // Rufiyaa
    c("MWK", 2), // Malawi kwacha
    c("MXN", 2), // Mexican peso
    c("MXV", 2), // Mexican unidad de inversion
    c("MYR", 2), // Malaysian ringgit
    c("MZN", 2), // Mozambique metical
    c("NAD", 2), // Namibia dollar
    c("NGN", 2), // Naira
    c("NIO", 2), // Cordoba oro
    c("NOK", 2), // Norwegian krone
    c("NPR", 2), // Nepalese rupee
    c("NZD", 2), // New Zealand dollar
    c("OMR", 3), // Rial Omani
    c("PAB", 2), // Balboa
    c("PEN", 2), // Sol
    c("PGK", 2), // Kina
    c("PHP", 2), // Philippine peso
    c("PKR", 2), // Pakistan rupee
    c("PLN", 2), // Zloty
    c("PYG", 0), // Guarani
    c("QAR", 2), // Qatari rial
    c("RON", 2), // Romanian leu
    c("RSD", 2), // Serbian dinar
    c("RUB", 2), // Russian ruble
    c("RWF", 0), // Rwanda franc
    c("SAR", 2), // Saudi riyal
    c("SBD", 2), // Solomon Islands dollar
    c("SCR", 2), // Seychelles rupee
    c("SDG", 2), // Sudanese pound
    c("SEK", 2), // Swedish krona
    c("SGD", 2), // Singapore dollar
    c("SHP", 2), // Saint Helena pound
    c("SLE", 2), // Leone
    c("SLL", 2), // Leone (old)
    c("SOS", 2), // Somali shilling
    c("SRD", 2), // Surinam dollar
    c("SSP", 2), // South Sudanese pound
    c("STN", 2), // Dobra
    c("SVC", 2), // El Salvador colon
    c("SYP", 2), // Syrian pound
    c("SZL", 2), // Lilangeni
    c("THB", 2), // Baht
    c("TJS", 2), // Somoni
    c("TMT", 2), // Turkmenistan new manat
    c("TND", 3), // Tunisian dinar
    c("TOP", 2), // Pa'anga
    c("TRY", 2), // Turkish lira
    c("TTD", 2), // Trinidad and Tobago dollar
    c("TWD", 2), // New Taiwan dollar
    c("TZS", 2), // Tanzanian shilling
    c("UAH", 2), // Hryvnia
    c("UGX", 0), // Uganda shilling
    c("USD", 2), // US dollar
    c("USN", 2), // US dollar (next day)
    c("UYI", 0), // Uruguay peso en unidades indexadas
    c("UYU", 2), // Peso uruguayo
    c("UYW", 4), // Unidad previsional
    c("UZS", 2), // Uzbekistan sum
    c("VED", 2), // Bolivar soberano (digital)
    c("VES", 2), // Bolivar soberano
    c("VND", 0), // Dong
    c("VUV", 0), // Vatu
    c("WST", 2), // Tala
    c("XAF", 0), // CFA franc BEAC
    c("XCD", 2), // East Caribbean dollar
    c("XCG", 2), // Caribbean guilder
    c("XOF", 0), // CFA franc BCEAO
    c("XPF", 0), // CFP franc
    c("YER", 2), // Yemeni rial
    c("ZAR", 2), // Rand
    c("ZMW", 2), // Zambian kwacha
    c("ZWG", 2), // Zimbabwe gold
];

/// An ISO 4217 currency: a code and its exponent (number of minor-unit digits).
///
/// Only currencies in the built-in table exist, so holding a `Currency` means
/// the code is known and its exponent is right. Compares, hashes, prints and
/// serializes as its code (`"USD"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static CurrencyInfo);

impl Currency {
    // The currencies PayPal accepts, plus the unusual exponents (KRW 0,
    // BHD and KWD 3, CLF 4) that tests and examples need.

    /// Australian dollar (2 decimals).
    pub const AUD: Currency = Currency::known("AUD");
    /// Bahraini dinar (3 decimals).
    pub const BHD: Currency = Currency::known("BHD");
    /// Brazilian real (2 decimals).
    pub const BRL: Currency = Currency::known("BRL");
    /// Canadian dollar (2 decimals).
    pub const CAD: Currency = Currency::known("CAD");
    /// Swiss franc (2 decimals).
    pub const CHF: Currency = Currency::known("CHF");
    /// Unidad de fomento (4 decimals).
    pub const CLF: Currency = Currency::known("CLF");
    /// Yuan renminbi (2 decimals).
    pub const CNY: Currency = Currency::known("CNY");
    /// Czech koruna (2 decimals).
    pub const CZK: Currency = Currency::known("CZK");
    /// Danish krone (2 decimals).
    pub const DKK: Currency = Currency::known("DKK");
    /// Euro (2 decimals).
    pub const EUR: Currency = Currency::known("EUR");
    /// Pound sterling (2 decimals).
    pub const GBP: Currency = Currency::known("GBP");
    /// Hong Kong dollar (2 decimals).
    pub const HKD: Currency = Currency::known("HKD");
    /// Forint (2 decimals).
    pub const HUF: Currency = Currency::known("HUF");
    /// New Israeli sheqel (2 decimals).
    pub const ILS: Currency = Currency::known("ILS");
    /// Yen (no decimals).
    pub const JPY: Currency = Currency::known("JPY");
    /// Won (no decimals).
    pub const KRW: Currency = Currency::known("KRW");
    /// Kuwaiti dinar (3 decimals).
    pub const KWD: Currency = Currency::known("KWD");
    /// Mexican peso (2 decimals).
    pub const MXN: Currency = Currency::known("MXN");
    /// Malaysian ringgit (2 decimals).
    pub const MYR: Currency = Currency::known("MYR");
    /// Norwegian krone (2 decimals).
    pub const NOK: Currency = Currency::known("NOK");
    /// New Zealand dollar (2 decimals).
    pub const NZD: Currency = Currency::known("NZD");
    /// Philippine peso (2 decimals).
    pub const PHP: Currency = Currency::known("PHP");
    /// Zloty (2 decimals).
    pub const PLN: Currency = Currency::known("PLN");
    /// Swedish krona (2 decimals).
    pub const SEK: Currency = Currency::known("SEK");
    /// Singapore dollar (2 decimals).
    pub const SGD: Currency = Currency::known("SGD");
    /// Baht (2 decimals).
    pub const THB: Currency = Currency::known("THB");
    /// New Taiwan dollar (2 decimals).
    pub const TWD: Currency = Currency::known("TWD");
    /// US dollar (2 decimals).
    pub const USD: Currency = Currency::known("USD");

    /// Looks a code up at compile time, so a constant above can never
    /// disagree with the table (a missing code fails the build).
    const fn known(code: &str) -> Currency {
        let code = code.as_bytes();
        let mut i = 0;
        while i < CURRENCIES.len() {
            let candidate = CURRENCIES[i].code.as_bytes();
            if candidate.len() == code.len() {
                let mut j = 0;
                while j < code.len() && candidate[j] == code[j] {
                    j += 1;
                }
                if j == code.len() {
                    return Currency(&CURRENCIES[i]);
                }
            }
            i += 1;
        }
        panic!("currency missing from the table")
    }

    /// The currency with this code. Only exactly three uppercase ASCII letters
    /// are accepted: codes are case-sensitive on the wire, and quietly fixing
    /// `usd` would hide a sender's bug.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MoneyError::InvalidCurrencyCode(code.to_owned()));
        }
        CURRENCIES
            .binary_search_by(|info| info.code.cmp(code))
            .map(|index| Currency(&CURRENCIES[index]))
            .map_err(|_| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// The three-letter ISO 4217 code, e.g. `"USD"`.
    pub const fn code(self) -> &'static str {
        self.0.code
    }

    /// How many decimal digits the minor unit has: 2 for USD, 0 for JPY,
    /// 3 for KWD.
    pub const fn exponent(self) -> u8 {
        self.0.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Currency, MoneyError> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        struct CodeVisitor;

        impl Visitor<'_> for CodeVisitor {
            type Value = Currency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 4217 currency code")
            }

            fn visit_str<E: de::Error>(self, code: &str) -> Result<Currency, E> {
                Currency::parse(code).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(CodeVisitor)
    }
}

/// An amount in integer minor units of a currency. Never a float.
///
/// Serializes as `{"amount": 1999, "currency": "USD"}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[serde(rename = "amount")]
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `minor` units (cents for USD) of `currency`.
    pub const fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// The amount in minor units (cents for USD).
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency the amount is in.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// Parses a decimal string exactly: `"19.99"` USD is 1999, `"5"` USD is
    /// 500, `"1000"` JPY is 1000.
    ///
    /// Strict on purpose, as it reads amounts other systems sent: an optional
    /// leading `-`, ASCII digits, then optionally `.` and 1 to `exponent`
    /// digits. No `+`, spaces, separators or exponents, and never rounding:
    /// more decimals than the currency has is an error, not a truncation.
    pub fn parse_decimal(s: &str, currency: Currency) -> Result<Money, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        let mut has_point = false;
        for (offset, character) in s.char_indices() {
            let allowed = character.is_ascii_digit()
                || (character == '-' && offset == 0)
                || (character == '.' && !has_point);
            if !allowed {
                return Err(MoneyError::InvalidCharacter {
                    input: s.to_owned(),
                    character,
                    offset,
                });
            }
            has_point |= character == '.';
        }

        // From here on `s` is a leading '-', ASCII digits and at most one '.'.
        let negative = s.starts_with('-');
        let unsigned = s.strip_prefix('-').unwrap_or(s);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if whole.is_empty() || (has_point && fraction.is_empty()) {
            return Err(MoneyError::MissingDigits {
                input: s.to_owned(),
            });
        }
        let exponent = currency.exponent();
        if fraction.len() > usize::from(exponent) {
            return Err(MoneyError::TooManyDecimals {
                input: s.to_owned(),
                currency,
                max: exponent,
            });
        }

        // Accumulate the negative value, whose range includes i64::MIN, and
        // flip the sign at the end.
        let padding = usize::from(exponent) - fraction.len();
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .map(|b| i64::from(b - b'0'))
            .chain(std::iter::repeat_n(0, padding));
        let overflow = || MoneyError::Overflow {
            input: s.to_owned(),
            currency,
        };
        let mut value: i64 = 0;
        for digit in digits {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_sub(digit))
                .ok_or_else(overflow)?;
        }
        let minor = if negative {
            value
        } else {
            value.checked_neg().ok_or_else(overflow)?
        };
        Ok(Money::new(minor, currency))
    }

    /// The canonical decimal string, with exactly `exponent` decimals:
    /// 1999 USD is `"19.99"`, 5 USD is `"0.05"`, 1000 JPY is `"1000"`.
    /// [`Money::parse_decimal`] reads it back to the same value.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        // unsigned_abs covers i64::MIN, which has no positive i64.
        let magnitude = self.minor.unsigned_abs();
        let exponent = usize::from(self.currency.exponent());
        if exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let digits = format!("{magnitude:0width$}", width = exponent + 1);
        let (whole, fraction) = digits.split_at(digits.len() - exponent);
        format!("{sign}{whole}.{fraction}")
    }

    /// The sum of two amounts in the same currency; an error on a currency
    /// mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::AddOverflow {
                left: self,
                right: other,
            })
    }

    /// The difference of two amounts in the same currency; an error on a
    /// currency mismatch or overflow.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::SubOverflow {
                left: self,
                right: other,
            })
    }

    /// A unit price times a quantity, as for an order line.
    pub fn checked_mul(self, quantity: u32) -> Result<Money, MoneyError> {
        self.minor
            .checked_mul(i64::from(quantity))
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::MulOverflow {
                amount: self,
                quantity,
            })
    }

    /// The opposite amount, as for a refund. Fails only for `i64::MIN`.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.minor
            .checked_neg()
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::NegOverflow { amount: self })
    }

    /// More than zero.
    pub const fn is_positive(self) -> bool {
        self.minor > 0
    }

    /// Less than zero, as a refund is.
    pub const fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// Exactly zero.
    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// `19.99 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const USD: Currency = Currency::USD;
    const JPY: Currency = Currency::JPY;
    const KWD: Currency = Currency::KWD;
    const CLF: Currency = Currency::CLF;

    fn usd(minor: i64) -> Money {
        Money::new(minor, USD)
    }

    #[test]
    fn table_is_sorted_without_duplicates() {
        for pair in CURRENCIES.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} then {}",
                pair[0].code,
                pair[1].code
            );
        }
    }

    #[test]
    fn table_codes_are_well_formed_and_parse_to_themselves() {
        for info in CURRENCIES {
            assert!(info.exponent <= 4, "{}", info.code);
            let currency = Currency::parse(info.code).unwrap();
            assert_eq!(currency.code(), info.code);
            assert_eq!(currency.exponent(), info.exponent);
        }
    }

    #[test]
    fn exponents_follow_iso_4217() {
        let expected = [
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("HUF", 2),
            ("TWD", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("BIF", 0),
            ("CLP", 0),
            ("DJF", 0),
            ("GNF", 0),
            ("ISK", 0),
            ("KMF", 0),
            ("PYG", 0),
            ("RWF", 0),
            ("UGX", 0),
            ("UYI", 0),
            ("VND", 0),
            ("VUV", 0),
            ("XAF", 0),
            ("XOF", 0),
            ("XPF", 0),
            ("BHD", 3),
            ("IQD", 3),
            ("JOD", 3),
            ("KWD", 3),
            ("LYD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("CLF", 4),
            ("UYW", 4),
        ];
        for (code, exponent) in expected {
            assert_eq!(
                Currency::parse(code).unwrap().exponent(),
                exponent,
                "{code}"
            );
        }
    }

    #[test]
    fn constants_match_the_table() {
        let constants = [
            (Currency::USD, "USD", 2),
            (Currency::EUR, "EUR", 2),
            (Currency::GBP, "GBP", 2),
            (Currency::JPY, "JPY", 0),
            (Currency::KRW, "KRW", 0),
            (Currency::KWD, "KWD", 3),
            (Currency::BHD, "BHD", 3),
            (Currency::CAD, "CAD", 2),
            (Currency::AUD, "AUD", 2),
            (Currency::CHF, "CHF", 2),
            (Currency::CLF, "CLF", 4),
        ];
        for (constant, code, exponent) in constants {
            assert_eq!(constant, Currency::parse(code).unwrap());
            assert_eq!(constant.code(), code);
            assert_eq!(constant.exponent(), exponent);
        }
        assert_ne!(Currency::USD, Currency::EUR);
    }

    #[test]
    fn currency_codes_are_checked() {
        let cases = [
            ("", MoneyError::InvalidCurrencyCode("".into())),
            ("usd", MoneyError::InvalidCurrencyCode("usd".into())),
            ("Usd", MoneyError::InvalidCurrencyCode("Usd".into())),
            ("USDX", MoneyError::InvalidCurrencyCode("USDX".into())),
            ("US", MoneyError::InvalidCurrencyCode("US".into())),
            (" USD", MoneyError::InvalidCurrencyCode(" USD".into())),
            ("US1", MoneyError::InvalidCurrencyCode("US1".into())),
            ("ÜSD", MoneyError::InvalidCurrencyCode("ÜSD".into())),
            ("ABC", MoneyError::UnknownCurrency("ABC".into())),
            ("XAU", MoneyError::UnknownCurrency("XAU".into())),
            ("XXX", MoneyError::UnknownCurrency("XXX".into())),
            ("HRK", MoneyError::UnknownCurrency("HRK".into())),
        ];
        for (input, error) in cases {
            assert_eq!(Currency::parse(input), Err(error), "{input:?}");
        }
        assert_eq!("EUR".parse::<Currency>(), Ok(Currency::EUR));
    }

    #[test]
    fn currency_prints_as_its_code() {
        assert_eq!(Currency::KWD.to_string(), "KWD");
        assert_eq!(format!("{:?}", Currency::KWD), "KWD");
        assert_eq!(
            MoneyError::InvalidCurrencyCode("usd".into()).to_string(),
            "invalid currency code \"usd\": expected 3 uppercase ASCII letters"
        );
    }

    #[test]
    fn valid_decimals_parse_exactly() {
        let cases = [
            ("19.99", USD, 1999),
            ("-9.26", USD, -926),
            ("5", USD, 500),
            ("19.9", USD, 1990),
            ("0.05", USD, 5),
            ("007.50", USD, 750),
            ("-0.00", USD, 0),
            ("-0", USD, 0),
            ("0", USD, 0),
            ("92233720368547758.07", USD, i64::MAX),
            ("-92233720368547758.08", USD, i64::MIN),
            ("1000", JPY, 1000),
            ("-1", JPY, -1),
            ("9223372036854775807", JPY, i64::MAX),
            ("-9223372036854775808", JPY, i64::MIN),
            ("1.234", KWD, 1234),
            ("1.2", KWD, 1200),
            ("1.2345", CLF, 12345),
            ("1", CLF, 10000),
        ];
        for (input, currency, minor) in cases {
            assert_eq!(
                Money::parse_decimal(input, currency),
                Ok(Money::new(minor, currency)),
                "{input:?} {currency}"
            );
        }
    }

    #[test]
    fn invalid_decimals_are_refused() {
        fn invalid(input: &str, character: char, offset: usize) -> MoneyError {
            MoneyError::InvalidCharacter {
                input: input.into(),
                character,
                offset,
            }
        }
        fn missing(input: &str) -> MoneyError {
            MoneyError::MissingDigits {
                input: input.into(),
            }
        }
        fn too_many(input: &str, currency: Currency) -> MoneyError {
            MoneyError::TooManyDecimals {
                input: input.into(),
                currency,
                max: currency.exponent(),
            }
        }
        fn overflow(input: &str, currency: Currency) -> MoneyError {
            MoneyError::Overflow {
                input: input.into(),
                currency,
            }
        }
        let cases = [
            ("", USD, MoneyError::Empty),
            ("-", USD, missing("-")),
            (".5", USD, missing(".5")),
            ("-.5", USD, missing("-.5")),
            ("5.", USD, missing("5.")),
            (".", USD, missing(".")),
            ("5.", JPY, missing("5.")),
            ("1.2.3", USD, invalid("1.2.3", '.', 3)),
            ("1e3", USD, invalid("1e3", 'e', 1)),
            ("1E3", USD, invalid("1E3", 'E', 1)),
            ("NaN", USD, invalid("NaN", 'N', 0)),
            ("inf", USD, invalid("inf", 'i', 0)),
            ("Infinity", USD, invalid("Infinity", 'I', 0)),
            ("-inf", USD, invalid("-inf", 'i', 1)),
            ("0x10", USD, invalid("0x10", 'x', 1)),
            ("１２", USD, invalid("１２", '１', 0)),
            ("1２", USD, invalid("1２", '２', 1)),
            ("+5", USD, invalid("+5", '+', 0)),
            ("--5", USD, invalid("--5", '-', 1)),
            ("5-", USD, invalid("5-", '-', 1)),
            ("1,000.00", USD, invalid("1,000.00", ',', 1)),
            ("1 000", USD, invalid("1 000", ' ', 1)),
            ("1_000", USD, invalid("1_000", '_', 1)),
            (" 5", USD, invalid(" 5", ' ', 0)),
            ("5 ", USD, invalid("5 ", ' ', 1)),
            ("5\n", USD, invalid("5\n", '\n', 1)),
            ("19.999", USD, too_many("19.999", USD)),
            ("0.001", USD, too_many("0.001", USD)),
            ("1000.0", JPY, too_many("1000.0", JPY)),
            ("1.2345", KWD, too_many("1.2345", KWD)),
            ("1.23456", CLF, too_many("1.23456", CLF)),
            (
                "92233720368547758.08",
                USD,
                overflow("92233720368547758.08", USD),
            ),
            (
                "-92233720368547758.09",
                USD,
                overflow("-92233720368547758.09", USD),
            ),
            (
                "9223372036854775808",
                JPY,
                overflow("9223372036854775808", JPY),
            ),
            (
                "-9223372036854775809",
                JPY,
                overflow("-9223372036854775809", JPY),
            ),
            ("92233720368547759", USD, overflow("92233720368547759", USD)),
            (
                "99999999999999999999999",
                JPY,
                overflow("99999999999999999999999", JPY),
            ),
        ];
        for (input, currency, error) in cases {
            assert_eq!(
                Money::parse_decimal(input, currency),
                Err(error),
                "{input:?} {currency}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let error = Money::parse_decimal("19.999", USD).unwrap_err();
        assert_eq!(
            error.to_string(),
            "amount \"19.999\" has more than the 2 decimals allowed for USD"
        );
        let error = Money::parse_decimal("1e3", USD).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid character 'e' at byte 1 of amount \"1e3\""
        );
    }

    #[test]
    fn decimals_are_formatted_canonically() {
        let cases = [
            (1999, USD, "19.99"),
            (-926, USD, "-9.26"),
            (5, USD, "0.05"),
            (-5, USD, "-0.05"),
            (0, USD, "0.00"),
            (100, USD, "1.00"),
            (1000, JPY, "1000"),
            (-1000, JPY, "-1000"),
            (0, JPY, "0"),
            (1234, KWD, "1.234"),
            (1, KWD, "0.001"),
            (1, CLF, "0.0001"),
            (i64::MAX, USD, "92233720368547758.07"),
            (i64::MIN, USD, "-92233720368547758.08"),
            (i64::MIN, JPY, "-9223372036854775808"),
            (i64::MIN, CLF, "-922337203685477.5808"),
        ];
        for (minor, currency, text) in cases {
            assert_eq!(Money::new(minor, currency).to_decimal_string(), text);
        }
        assert_eq!(usd(1999).to_string(), "19.99 USD");
        assert_eq!(Money::new(-5, JPY).to_string(), "-5 JPY");
    }

    #[test]
    fn arithmetic_is_checked() {
        let eur = Money::new(100, Currency::EUR);
        assert_eq!(usd(150).checked_add(usd(50)), Ok(usd(200)));
        assert_eq!(usd(150).checked_sub(usd(200)), Ok(usd(-50)));
        assert_eq!(usd(1999).checked_mul(3), Ok(usd(5997)));
        assert_eq!(usd(1999).checked_mul(0), Ok(usd(0)));
        assert_eq!(usd(1999).checked_neg(), Ok(usd(-1999)));

        let mismatch = MoneyError::CurrencyMismatch {
            left: USD,
            right: Currency::EUR,
        };
        assert_eq!(usd(1).checked_add(eur), Err(mismatch.clone()));
        assert_eq!(usd(1).checked_sub(eur), Err(mismatch.clone()));
        assert_eq!(mismatch.to_string(), "currency mismatch: USD and EUR");

        assert_eq!(
            usd(i64::MAX).checked_add(usd(1)),
            Err(MoneyError::AddOverflow {
                left: usd(i64::MAX),
                right: usd(1)
            })
        );
        assert_eq!(
            usd(i64::MIN).checked_sub(usd(1)),
            Err(MoneyError::SubOverflow {
                left: usd(i64::MIN),
                right: usd(1)
            })
        );
        assert_eq!(
            usd(i64::MAX / 2 + 1).checked_mul(2),
            Err(MoneyError::MulOverflow {
                amount: usd(i64::MAX / 2 + 1),
                quantity: 2
            })
        );
        assert_eq!(
            usd(i64::MIN).checked_neg(),
            Err(MoneyError::NegOverflow {
                amount: usd(i64::MIN)
            })
        );
        assert_eq!(
            usd(i64::MIN).checked_neg().unwrap_err().to_string(),
            "negating -92233720368547758.08 USD overflows"
        );
    }

    #[test]
    fn sign_predicates() {
        assert!(usd(1).is_positive() && !usd(1).is_negative() && !usd(1).is_zero());
        assert!(usd(-1).is_negative() && !usd(-1).is_positive() && !usd(-1).is_zero());
        assert!(usd(0).is_zero() && !usd(0).is_positive() && !usd(0).is_negative());
    }

    #[test]
    fn currency_serializes_as_its_code() {
        assert_eq!(serde_json::to_string(&Currency::USD).unwrap(), "\"USD\"");
        assert_eq!(serde_json::from_str::<Currency>("\"JPY\"").unwrap(), JPY);
        let owned = serde_json::Value::String("KWD".into());
        assert_eq!(serde_json::from_value::<Currency>(owned).unwrap(), KWD);
        for refused in ["\"ABC\"", "\"usd\"", "\"\"", "840", "null"] {
            assert!(
                serde_json::from_str::<Currency>(refused).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn money_serializes_as_amount_and_currency() {
        let json = r#"{"amount":1999,"currency":"USD"}"#;
        assert_eq!(serde_json::to_string(&usd(1999)).unwrap(), json);
        assert_eq!(serde_json::from_str::<Money>(json).unwrap(), usd(1999));
        let min = Money::new(i64::MIN, CLF);
        let text = serde_json::to_string(&min).unwrap();
        assert_eq!(serde_json::from_str::<Money>(&text).unwrap(), min);

        let refused = [
            r#"{"amount":19.99,"currency":"USD"}"#,
            r#"{"amount":1999.0,"currency":"USD"}"#,
            r#"{"amount":1e3,"currency":"USD"}"#,
            r#"{"amount":"1999","currency":"USD"}"#,
            r#"{"amount":9223372036854775808,"currency":"USD"}"#,
            r#"{"amount":1999,"currency":"ABC"}"#,
            r#"{"amount":1999,"currency":"usd"}"#,
            r#"{"amount":1999}"#,
            r#"{"currency":"USD"}"#,
            r#"{"amount":1999,"currency":"USD","fee":0}"#,
            r#"{"minor":1999,"currency":"USD"}"#,
        ];
        for json in refused {
            assert!(serde_json::from_str::<Money>(json).is_err(), "{json}");
        }
    }

    /// An independent reading of a well-formed decimal, in i128, to check the
    /// parser's overflow edges against.
    fn oracle(input: &str, currency: Currency) -> Option<i64> {
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let exponent = usize::from(currency.exponent());
        if fraction.len() > exponent {
            return None;
        }
        let padded = format!("{whole}{fraction:0<exponent$}");
        let magnitude: i128 = padded.parse().ok()?;
        i64::try_from(if negative { -magnitude } else { magnitude }).ok()
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec![JPY, USD, KWD, CLF])
    }

    proptest! {
        #[test]
        fn formatting_round_trips(minor in any::<i64>(), currency in any_currency()) {
            let money = Money::new(minor, currency);
            let text = money.to_decimal_string();
            prop_assert_eq!(Money::parse_decimal(&text, currency), Ok(money));
        }

        #[test]
        fn canonical_strings_round_trip(
            whole in "-?[1-9][0-9]{0,13}",
            fraction in "[0-9]{4}",
            currency in any_currency(),
        ) {
            let exponent = usize::from(currency.exponent());
            let text = if exponent == 0 {
                whole
            } else {
                format!("{whole}.{}", &fraction[..exponent])
            };
            let money = Money::parse_decimal(&text, currency).unwrap();
            prop_assert_eq!(money.to_decimal_string(), text);
        }

        #[test]
        fn well_formed_decimals_match_an_independent_reading(
            text in "-?[0-9]{1,21}(\\.[0-9]{1,4})?",
            currency in any_currency(),
        ) {
            let expected = oracle(&text, currency).map(|minor| Money::new(minor, currency));
            prop_assert_eq!(Money::parse_decimal(&text, currency).ok(), expected);
        }

        #[test]
        fn arbitrary_strings_never_panic(text in any::<String>(), currency in any_currency()) {
            if let Ok(money) = Money::parse_decimal(&text, currency) {
                let again = Money::parse_decimal(&money.to_decimal_string(), currency);
                prop_assert_eq!(again, Ok(money));
            }
        }

        #[test]
        fn number_like_strings_never_panic(
            text in "[-+.0-9eE ]{0,25}",
            currency in any_currency(),
        ) {
            let parsed = Money::parse_decimal(&text, currency);
            let expected = oracle(&text, currency).filter(|_| {
                let body = text.strip_prefix('-').unwrap_or(&text);
                let mut parts = body.split('.');
                let whole = parts.next().unwrap_or("");
                let fraction = parts.next();
                parts.next().is_none()
                    && !whole.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
            });
            prop_assert_eq!(parsed.ok().map(Money::minor), expected);
        }
    }
}
