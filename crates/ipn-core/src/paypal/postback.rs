//! Verification by postback: the listener sends the message back to the
//! gateway, which answers `VERIFIED` or `INVALID`.
//!
//! The listener side is [`request_body`] and [`parse_answer`]. The gateway
//! side is [`check_postback`]: the posted fields, decoded, must equal those of
//! a message the gateway sent, in name, value and order. `cmd` may stand first
//! (PayPal's documented form) or last, and the percent-encoding may differ,
//! because widely used listener libraries rebuild the body from parsed fields;
//! the gateway reads the posted body with `Form::parse_lenient`, which also
//! skips the empty segments some of them write (`&name=value&…`).

use super::form::Form;

/// The field a listener adds to ask for verification.
pub const VALIDATE_CMD: &str = "cmd=_notify-validate";

/// The body a listener posts back: `cmd=_notify-validate&` + the exact bytes received.
pub fn request_body(received: &[u8]) -> Vec<u8> {
    [VALIDATE_CMD.as_bytes(), b"&", received].concat()
}

/// The gateway's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The message is one the gateway sent, unchanged.
    Verified,
    /// It is not.
    Invalid,
}

impl Answer {
    /// The answer's body: exactly `VERIFIED` or `INVALID`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "VERIFIED",
            Self::Invalid => "INVALID",
        }
    }
}

/// A postback answer that is neither `VERIFIED` nor `INVALID`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postback answer is neither VERIFIED nor INVALID: {0:?}")]
pub struct UnexpectedAnswer(pub String);

/// Reads the gateway's answer. Only the two exact words count (a trailing
/// newline is tolerated); anything else, such as an error page, is an error
/// and must never be taken for `VERIFIED`.
pub fn parse_answer(body: &[u8]) -> Result<Answer, UnexpectedAnswer> {
    match body
        .strip_suffix(b"\r\n")
        .or(body.strip_suffix(b"\n"))
        .unwrap_or(body)
    {
        b"VERIFIED" => Ok(Answer::Verified),
        b"INVALID" => Ok(Answer::Invalid),
        other => Err(UnexpectedAnswer(
            String::from_utf8_lossy(&other[..other.len().min(64)]).into_owned(),
        )),
    }
}

/// Why a postback does not match a sent message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("no cmd=_notify-validate field")]
    NoCommand,
    #[error("cmd must be the first or the last field")]
    CommandMisplaced,
    #[error("cmd is {0:?}, not _notify-validate")]
    WrongCommand(String),
    #[error("{posted} fields posted, {sent} sent")]
    FieldCount { posted: usize, sent: usize },
    #[error("field {position} ({sent_name}) differs in name or value")]
    Field { position: usize, sent_name: String },
}

/// Checks a posted-back form against the form of a message that was sent.
pub fn check_postback(posted: &Form, sent: &Form) -> Result<(), Mismatch> {
    let fields: Vec<(&str, &str)> = posted.pairs().collect();
    let fields = match (fields.first(), fields.last()) {
        (Some(("cmd", value)), _) => {
            require_validate(value)?;
            &fields[1..]
        }
        (_, Some(("cmd", value))) => {
            require_validate(value)?;
            &fields[..fields.len() - 1]
        }
        _ if fields.iter().any(|(name, _)| *name == "cmd") => {
            return Err(Mismatch::CommandMisplaced);
        }
        _ => return Err(Mismatch::NoCommand),
    };
    if fields.len() != sent.len() {
        return Err(Mismatch::FieldCount {
            posted: fields.len(),
            sent: sent.len(),
        });
    }
    for (position, (posted, sent)) in fields.iter().zip(sent.pairs()).enumerate() {
        if *posted != sent {
            return Err(Mismatch::Field {
                position,
                sent_name: sent.0.to_owned(),
            });
        }
    }
    Ok(())
}

fn require_validate(value: &str) -> Result<(), Mismatch> {
    if value == "_notify-validate" {
        Ok(())
    } else {
        Err(Mismatch::WrongCommand(value.to_owned()))
    }
}
