//! Email addresses, checked where they come in with the parser of the
//! shop's mailer (lettre), so that an address a payment or an order was
//! accepted with can always be mailed: a customer never pays for a download
//! whose link can only fail to send.

use std::str::FromStr;

use lettre::message::Mailbox;

/// Longest address taken (RFC 5321's path limit, less the angle brackets).
pub const MAX_LEN: usize = 254;

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("{0:?} is not an email address: {1}")]
    Invalid(String, &'static str),
}

/// Checks one bare address (`ann@example.com`, no display name) as the
/// mailer will read it, plus a dot in the domain: a customer's mail goes to
/// a domain on the internet, never to `localhost`.
pub fn check(email: &str) -> Result<(), EmailError> {
    if email.is_empty() {
        return Err(EmailError::Empty);
    }
    if email.chars().count() > MAX_LEN {
        return Err(EmailError::TooLong);
    }
    let invalid = |why| Err(EmailError::Invalid(shown(email), why));
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it has spaces or control characters");
    }
    // The mailer reads the recipient as a mailbox; a bare address must come
    // out of it unchanged, so what is stored is exactly what is mailed.
    let Ok(mailbox) = Mailbox::from_str(email) else {
        return invalid("the mailer cannot read it");
    };
    if mailbox.name.is_some() || mailbox.email.to_string() != email {
        return invalid("give the address alone, without a name or brackets");
    }
    if !mailbox.email.domain().contains('.') {
        return invalid("its domain has no dot");
    }
    Ok(())
}

/// The start of a refused address, for an error message.
fn shown(email: &str) -> String {
    email.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_pass() {
        for ok in [
            "ann@example.com",
            "ann.smith+shop@mail.example.co.uk",
            "o'brien@example.ie",
            "user_1@sub-domain.example.org",
            "jörg@example.de",
            "ann@bücher.example",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_the_mailer_cannot_send_is_refused() {
        for bad in [
            "<script>alert(1)</script>@example.com",
            "ann@example.com>",
            "Ann <ann@example.com>",
            "<ann@example.com>",
            "ann smith@example.com",
            "ann@exa mple.com",
            "ann@localhost",
            "ann",
            "@example.com",
            "ann@",
            "ann@@example.com",
            "ann@example..com",
            "ann\0@example.com",
            "ann@example.com\r\nBcc: eve@example.com",
            "(comment)ann@example.com",
            "\"quoted ann\"@example.com",
        ] {
            assert!(
                matches!(check(bad), Err(EmailError::Invalid(..))),
                "{bad:?}: {:?}",
                check(bad)
            );
        }
        assert_eq!(check(""), Err(EmailError::Empty));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(check(&long), Err(EmailError::TooLong));
    }
}
