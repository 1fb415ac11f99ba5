//! `/orders/{id}`: where an order stands, in words, for its customer.
//!
//! The gateway's checkout sends the customer here after paying, usually
//! before the IPN has arrived. The page's content refreshes itself in place
//! (`data-live`, the shared `/live.js`): every few seconds while the order
//! is `created` or `pending`, so it turns to "Paid" on its own once the IPN
//! is applied, and slowly after, so a refund or a renewal shows up too.
//! Without script, a waiting page reloads itself instead.

use ipn_core::money::{Currency, Money};
use time::OffsetDateTime;

use ipn_web::escape;

use super::html::{money, when, when_at};
use crate::downloads::{GrantState, SigningKey};
use crate::handler::subscriptions::has_access;
use crate::model::{EmailStatus, SubscriptionStatus};
use crate::storage::SubscriptionRow;
use crate::storage::views::OrderDetails;

/// Seconds between refreshes of a page that waits for a payment.
pub const REFRESH_SECONDS: u32 = 3;
/// Seconds between refreshes once it no longer waits.
pub const SETTLED_REFRESH_SECONDS: u32 = 10;

/// An order's status as its customer reads it: a heading and a sentence.
/// `None` for a status this code does not know (shown as stored).
pub fn status_words(status: &str) -> Option<(&'static str, &'static str)> {
    Some(match status {
        "created" => (
            "Waiting for your payment",
            "We have not received a payment for this order yet. This page updates by itself.",
        ),
        "pending" => (
            "Waiting for your payment to clear",
            "Your payment has been made but has not cleared yet (a bank transfer, for instance). \
             This page updates by itself; we will also email you.",
        ),
        "subscribed" => (
            "Subscribed — your free trial has started",
            "Nothing is charged until the trial ends. A confirmation is on its way to your inbox.",
        ),
        "paid" => (
            "Paid — thank you!",
            "We received your payment. A confirmation is on its way to your inbox.",
        ),
        "fulfilled" => (
            "Paid and shipped — thank you!",
            "Your order is paid and on its way.",
        ),
        "partially_refunded" => (
            "Partly refunded",
            "Part of your payment was refunded to you.",
        ),
        "refunded" => ("Refunded", "Your payment was refunded in full."),
        "reversed" => (
            "Payment reversed",
            "The payment was disputed with the card issuer and taken back.",
        ),
        "failed" => (
            "Payment failed",
            "The payment was declined or did not clear. Nothing was charged.",
        ),
        "flagged" => (
            "Under review",
            "Something about the payment needs a look from us; we will be in touch.",
        ),
        _ => return None,
    })
}

/// The subscription an order started: where it stands and until when the
/// customer has access.
fn subscription_section(row: &SubscriptionRow, now: OffsetDateTime) -> String {
    let now = crate::clock::millis(now);
    let access = has_access(row.status, row.paid_through, now);
    let (state, tone) = match row.status {
        SubscriptionStatus::Active => ("Active", "status-good"),
        SubscriptionStatus::PastDue => {
            ("Payment failed; we will try your card again", "status-wait")
        }
        SubscriptionStatus::Canceled if access => (
            "Canceled; access continues to the end of the period",
            "status-wait",
        ),
        SubscriptionStatus::Canceled | SubscriptionStatus::Expired => ("Ended", "status-bad"),
    };
    let until = match (access, row.paid_through) {
        (true, Some(until)) => format!("<dt>Paid through</dt><dd>{}</dd>", when(until)),
        _ => String::new(),
    };
    format!(
        "<h2>Subscription</h2>\n<dl class=\"facts\" id=\"subscription\" data-status=\"{status}\">\
         <dt>Status</dt><dd><span class=\"{tone}\">{state}</span></dd>{until}\
         <dt>Periods paid</dt><dd>{cycles}</dd><dt>Reference</dt><dd><code>{id}</code></dd></dl>\n",
        status = row.status.as_str(),
        cycles = row.cycles_paid,
        id = escape(&row.id),
    )
}

/// The colour of a status: good, waiting, bad.
fn tone(status: &str) -> &'static str {
    match status {
        "paid" | "fulfilled" | "subscribed" => "status-good",
        "created" | "pending" | "flagged" => "status-wait",
        "failed" | "reversed" | "refunded" | "partially_refunded" => "status-bad",
        _ => "",
    }
}

/// Whether the order still waits for its payment: the page reloads.
pub fn waiting(status: &str) -> bool {
    matches!(status, "created" | "pending")
}

/// The page's markup: status, items, total, payments, active download
/// links (signed with `key`) and the emails sent to the customer.
pub fn render(details: &OrderDetails, key: &SigningKey, now: OffsetDateTime) -> String {
    let order = &details.order;
    let subscription = details.subscription.as_ref().map(|row| row.status);
    // A subscription order's words follow its subscription once it ended.
    let (heading, sentence, tone) = match (order.status.as_str(), subscription) {
        ("paid" | "subscribed", Some(SubscriptionStatus::Canceled)) => (
            "Subscription canceled",
            "No further payments will be taken; access lasts to the end of the paid period.",
            "status-wait",
        ),
        ("paid" | "subscribed", Some(SubscriptionStatus::Expired)) => (
            "Subscription ended",
            "This subscription has ended. Thank you for having been with us.",
            "status-bad",
        ),
        ("paid" | "subscribed", Some(SubscriptionStatus::PastDue)) => (
            "Payment failed",
            "We could not charge your card for this period. We will try again in a few days; \
             your access continues meanwhile.",
            "status-wait",
        ),
        ("paid", Some(_)) => (
            "Subscribed — thank you!",
            "Your subscription has started. A confirmation is on its way to your inbox.",
            "status-good",
        ),
        (status, _) => {
            let (heading, sentence) = status_words(status).unwrap_or(("Order status", ""));
            (heading, sentence, tone(status))
        }
    };
    let every = if waiting(&order.status) {
        REFRESH_SECONDS
    } else {
        SETTLED_REFRESH_SECONDS
    };
    let mut main = format!(
        "<div id=\"order\" data-live=\"{every}\">\n<h1>Order <code>{id}</code></h1>\n\
         <p class=\"status {tone}\" id=\"status\" data-status=\"{status}\"><strong>{heading}</strong></p>\n",
        id = escape(&order.id),
        status = escape(&order.status),
        heading = escape(heading),
    );
    if sentence.is_empty() {
        main.push_str(&format!("<p>Status: {}</p>\n", escape(&order.status)));
    } else {
        main.push_str(&format!("<p>{}</p>\n", escape(sentence)));
    }
    // The checkout stays open until it is paid (or expires): after a
    // declined card the customer can try another.
    // A subscription order with a flag had a subscription refused for it:
    // its checkout was used, so there is nothing left to pay there.
    let used = order.plan.is_some() && !details.flags.is_empty();
    let pay = match order.status.as_str() {
        _ if used => None,
        "created" => Some("Pay now"),
        "failed" => Some("Try another card"),
        _ => None,
    };
    if let Some(label) = pay {
        main.push_str(&format!(
            "<p><a class=\"action\" href=\"{}\" id=\"pay\">{label}</a></p>\n",
            escape(&order.checkout_url)
        ));
    }

    main.push_str(
        "<h2>Items</h2>\n<table>\n<thead><tr><th>Item</th><th class=\"num\">Qty</th>\
         <th class=\"num\">Price</th><th class=\"num\">Amount</th></tr></thead>\n<tbody>\n",
    );
    // A subscription's price is per period.
    let per = order
        .plan
        .map(|plan| format!(" / {}", escape(&plan.period())))
        .unwrap_or_default();
    for line in &order.lines {
        main.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}{per}</td>\
             <td class=\"num\">{}{per}</td></tr>\n",
            escape(&line.name),
            line.quantity,
            money(line.unit_price),
            money(line.total),
        ));
    }
    main.push_str(&format!(
        "</tbody>\n<tfoot><tr><th colspan=\"3\">Total</th>\
         <th class=\"num\" id=\"total\">{}{per}</th></tr></tfoot>\n</table>\n",
        money(order.total)
    ));
    if let Some(subscription) = &details.subscription {
        main.push_str(&subscription_section(subscription, now));
    }

    let payments: Vec<_> = details.payments.iter().filter(|p| p.valid).collect();
    if !payments.is_empty() {
        main.push_str("<h2>Payments</h2>\n<ul id=\"payments\">\n");
        for payment in payments {
            // Money going back is stored negative; the customer reads "a
            // refund of 9.99 USD".
            let amount = Currency::parse(&payment.currency)
                .map(|currency| money(Money::new(payment.amount.saturating_abs(), currency)))
                .unwrap_or_else(|_| {
                    escape(&format!("{} {}", payment.amount, payment.currency)).into_owned()
                });
            let what = match payment.kind.as_str() {
                "charge" => "Payment",
                "refund" => "Refund",
                "reversal" => "Reversal",
                "reversal_canceled" => "Reversal canceled",
                other => other,
            };
            main.push_str(&format!(
                "<li>{} of {}: {} <small>({})</small></li>\n",
                escape(what),
                amount,
                escape(&payment.status),
                when(payment.updated_at),
            ));
        }
        main.push_str("</ul>\n");
    }

    let active: Vec<_> = details
        .downloads
        .iter()
        .filter(|grant| grant.state(now) == GrantState::Active)
        .collect();
    if !active.is_empty() {
        main.push_str("<h2>Downloads</h2>\n<ul id=\"downloads\">\n");
        for grant in active {
            main.push_str(&format!(
                "<li><a href=\"{href}\">Download {name}</a> \
                 <small>({left} of {max} downloads left, until {until})</small></li>\n",
                href = escape(&crate::downloads::path(&grant.token(key))),
                name = escape(&grant.name),
                left = grant.max_uses.saturating_sub(grant.uses),
                max = grant.max_uses,
                until = when_at(grant.expires_at),
            ));
        }
        main.push_str("</ul>\n");
    }

    if !details.emails.is_empty() {
        main.push_str(&format!(
            "<h2>Emails to {}</h2>\n<ul id=\"emails\">\n",
            escape(&order.customer_email)
        ));
        for email in &details.emails {
            let state = match email.status {
                EmailStatus::Sent => {
                    format!("sent {}", when(email.sent_at.unwrap_or(email.created_at)))
                }
                EmailStatus::Queued => "being sent".to_owned(),
                EmailStatus::Failed => "could not be delivered".to_owned(),
            };
            main.push_str(&format!(
                "<li>{} <small>({})</small></li>\n",
                escape(&email.subject),
                escape(&state)
            ));
        }
        main.push_str("</ul>\n");
    }
    main.push_str(&format!(
        "<p class=\"note\">Ordered {}. Keep this page's address to come back to it.</p>\n</div>\n",
        when(order.created_at)
    ));
    main
}

#[cfg(test)]
mod tests {
    use ipn_core::payment::ItemKind;
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::model::EmailKind;
    use crate::storage::{EmailRow, Grant};
    use crate::storage::{Line, Order};

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);
    const EVIL: &str = "<script>alert(1)</script>";

    fn details(status: &str) -> OrderDetails {
        let usd = Currency::USD;
        OrderDetails {
            order: Order {
                id: "ord_1".into(),
                status: status.into(),
                customer_email: format!("ann{EVIL}@example.com"),
                total: Money::new(999, usd),
                lines: vec![Line {
                    sku: "ebook".into(),
                    name: format!("Book {EVIL}"),
                    kind: ItemKind::Digital,
                    quantity: 1,
                    unit_price: Money::new(999, usd),
                    total: Money::new(999, usd),
                }],
                checkout_session_id: "cs_1".into(),
                checkout_url: "http://gw/checkout/cs_1?a=1&b=\"2\"".into(),
                merchant_id: None,
                created_at: 0,
                paid_at: None,
                plan: None,
                subscription_id: None,
                fulfilled_at: None,
            },
            payments: Vec::new(),
            flags: Vec::new(),
            emails: vec![EmailRow {
                id: 1,
                kind: EmailKind::OrderPaid,
                to: "ann@example.com".into(),
                order_id: Some("ord_1".into()),
                subscription_id: None,
                subject: format!("Paid {EVIL}"),
                status: EmailStatus::Sent,
                attempts: 1,
                last_error: None,
                created_at: 0,
                next_try_at: 0,
                sent_at: Some(0),
            }],
            downloads: vec![
                grant("dl_active", None),
                grant("dl_revoked", Some("refunded")),
            ],
            subscription: None,
        }
    }

    fn grant(id: &str, revoked: Option<&str>) -> Grant {
        Grant {
            id: id.into(),
            order_id: "ord_1".into(),
            sku: "ebook".into(),
            name: format!("Book {EVIL}"),
            file: "book.pdf".into(),
            created_at: NOW,
            expires_at: NOW + Duration::days(7),
            max_uses: 5,
            uses: 1,
            revoked_at: revoked.map(|_| NOW),
            revoked_reason: revoked.map(str::to_owned),
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes([7; 32])
    }

    #[test]
    fn each_state_has_its_words() {
        let cases = [
            ("created", "Waiting for your payment"),
            ("pending", "Waiting for your payment to clear"),
            ("paid", "Paid — thank you!"),
            ("fulfilled", "Paid and shipped — thank you!"),
            ("partially_refunded", "Partly refunded"),
            ("refunded", "Refunded"),
            ("reversed", "Payment reversed"),
            ("failed", "Payment failed"),
            ("flagged", "Under review"),
        ];
        for (status, heading) in cases {
            assert_eq!(status_words(status).map(|w| w.0), Some(heading), "{status}");
            let page = render(&details(status), &key(), NOW);
            assert!(
                page.contains(&format!("<strong>{heading}</strong>")),
                "{status}"
            );
            assert_eq!(waiting(status), matches!(status, "created" | "pending"));
        }
        assert_eq!(status_words("shipped_to_mars"), None);
        let page = render(&details("<b>odd</b>"), &key(), NOW);
        assert!(page.contains("Status: &lt;b&gt;odd&lt;/b&gt;"), "{page}");
    }

    #[test]
    fn only_active_downloads_are_linked_and_nothing_is_raw() {
        let page = render(&details("paid"), &key(), NOW);
        let active = crate::downloads::path(&grant("dl_active", None).token(&key()));
        let revoked = crate::downloads::path(&grant("dl_revoked", None).token(&key()));
        assert!(page.contains(&format!("href=\"{active}\"")), "{page}");
        assert!(!page.contains(&revoked), "{page}");
        assert!(page.contains("4 of 5 downloads left"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("Paid &lt;script&gt;"),
            "the email's subject: {page}"
        );
        // Expired: no link either.
        let later = render(&details("paid"), &key(), NOW + Duration::days(8));
        assert!(!later.contains(&active));
    }

    #[test]
    fn an_unpaid_order_links_to_its_checkout() {
        let page = render(&details("created"), &key(), NOW);
        assert!(
            page.contains("href=\"http://gw/checkout/cs_1?a=1&amp;b=&quot;2&quot;\""),
            "{page}"
        );
        assert!(!render(&details("paid"), &key(), NOW).contains("id=\"pay\""));
        // A subscription order whose subscription was refused (flagged,
        // the flag since resolved): its checkout was used.
        let mut refused = details("created");
        refused.order.plan = Some(
            ipn_core::billing::Plan::new(ipn_core::subscription::Interval::Month, 1, 0, None)
                .unwrap(),
        );
        assert!(render(&refused, &key(), NOW).contains("id=\"pay\""));
        refused.flags.push(crate::storage::FlagRow {
            id: 1,
            order_id: Some("ord_1".into()),
            inbox_id: 1,
            reason: "subscription sub_1 charges 1.00 USD a period".into(),
            created_at: 0,
            resolved_at: Some(1),
        });
        assert!(!render(&refused, &key(), NOW).contains("id=\"pay\""));
    }
}
