//! Customer emails. Each is queued (`EmailWrites::enqueue`) in the SAME
//! transaction as the state change that calls for it, and sent afterwards
//! by one worker, so an order is never paid without its email queued, and
//! a slow or absent mail server never holds up the notification handler.
//!
//! - `templates.rs`: the emails' text and HTML, files under
//!   `templates/mail/` built in with `include_str!`, optionally overridden
//!   from a folder; `{{name}}` placeholders, every one checked.
//! - `transport.rs`: where emails go: an SMTP server ([`Transport::smtp`],
//!   lettre) or, without one, `.eml` files in a folder
//!   ([`Transport::folder`]).
//! - `worker.rs`: [`MailWorker`], which sends what is due and has the
//!   writer mark it.
//!
//! How the handler queues an email, in outline:
//!
//! ```text
//! let rendered = templates.render(EmailKind::OrderPaid, &vars)?;
//! tx.enqueue(&NewEmail { dedupe_key: format!("order_paid:{order_id}"), .. })?;
//! // the writer commits the pass, then:
//! wake.notify_one(); // after the commit, so the worker sees the row
//! ```
//!
//! **Invariant:** one email row is sent by one worker, and there is one
//! worker per process; a second merchant process on the same database file
//! would send twice (it is not supported). An email sent but not yet marked
//! when the process dies is sent again after the restart, with the same
//! `Message-ID` (`<email-{id}.{hash}@ipn-merchant>`), so the duplicate is
//! recognisable; a folder rewrite replaces the same file.

mod templates;
mod transport;
mod worker;

pub use templates::{TemplateError, Templates, Vars};
pub use transport::Transport;
pub use worker::{MailWorker, Mailer, Pass, Retry};

/// A time as a customer reads it in an email: `25 January 2027, 21:34 UTC`.
pub fn customer_date(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_emails_read_plainly() {
        let at = time::macros::datetime!(2027-01-05 21:34:42 +01:00);
        assert_eq!(customer_date(at), "5 January 2027, 20:34 UTC");
    }
}
