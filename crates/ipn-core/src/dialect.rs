//! The two wire formats an endpoint can choose: `standard` (Standard
//! Webhooks, JSON) and `paypal` (classic PayPal IPN, form-encoded).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a message is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Standard Webhooks: JSON body, signed headers.
    #[default]
    Standard,
    /// Classic PayPal IPN: form body verified by postback (the signed
    /// headers are sent too).
    Paypal,
}

/// A dialect name other than `standard` or `paypal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?}: expected \"standard\" or \"paypal\"")]
pub struct UnknownDialect(pub String);

impl Dialect {
    /// The dialect's name in configuration and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Paypal => "paypal",
        }
    }

    /// The `content-type` of a body in this dialect.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Standard => "application/json",
            Self::Paypal => "application/x-www-form-urlencoded",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, UnknownDialect> {
        match s {
            "standard" => Ok(Self::Standard),
            "paypal" => Ok(Self::Paypal),
            other => Err(UnknownDialect(other.to_owned())),
        }
    }
}
