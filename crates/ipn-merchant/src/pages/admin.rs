//! `/admin` and `/admin/orders/{id}`: the operator's view of orders, each
//! order's IPNs and flags, and the emails.
//!
//! The dashboard shows the orders (newest first, a page at a time), every
//! open flag with a Resolve button, the latest IPNs with their verification
//! and what the handler made of them, and the latest emails. An order's
//! page adds its IPNs, payments, flags, emails, downloads and, for a paid
//! order with something to ship, a "Mark fulfilled" button. Each email
//! links to its own page, which shows it as the customer got it.

use std::path::Path;

use ipn_core::money::{Currency, Money};
use ipn_core::payment::ItemKind;
use time::OffsetDateTime;

use ipn_web::escape;

use super::html::{money, when, when_at};
use crate::downloads::GrantState;
use crate::storage::views::EmailView;
use crate::storage::views::{Dashboard, OrderDetails};
use crate::storage::{EmailRow, FlagRow, InboxSummary};

/// The dashboard's markup. `mail_dir`: where emails are written when there
/// is no SMTP server.
pub fn dashboard(board: &Dashboard, mail_dir: Option<&Path>, paged: bool) -> String {
    let mut main = String::from("<h1>Admin</h1>\n");
    if let Some(dir) = mail_dir {
        main.push_str(&format!(
            "<p class=\"note\" id=\"mail-dir\">Emails are not sent: each is written as an \
             <code>.eml</code> file to <code>{}</code>.</p>\n",
            escape(&dir.display().to_string())
        ));
    }

    main.push_str(&format!("<h2>Open flags ({})</h2>\n", board.flags.len()));
    main.push_str(&flags(&board.flags, "/admin", true));

    main.push_str("<h2>Orders</h2>\n");
    if paged {
        main.push_str("<p><a href=\"/admin\">Newest orders</a></p>\n");
    }
    if board.orders.orders.is_empty() {
        main.push_str("<p>No orders.</p>\n");
    } else {
        main.push_str(
            "<table id=\"orders\">\n<thead><tr><th>Order</th><th>Created</th><th>Customer</th>\
             <th class=\"num\">Total</th><th>Status</th></tr></thead>\n<tbody>\n",
        );
        for order in &board.orders.orders {
            main.push_str(&format!(
                "<tr><td>{link}</td><td>{created}</td><td>{email}</td>\
                 <td class=\"num\">{total}</td><td>{status}</td></tr>\n",
                link = order_link(&order.id),
                created = when(order.created_at),
                email = escape(&order.customer_email),
                total = money(order.total),
                status = escape(&order.status),
            ));
        }
        main.push_str("</tbody>\n</table>\n");
    }
    if let Some(before) = &board.orders.next_before {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("before", before)
            .finish();
        main.push_str(&format!(
            "<p><a href=\"/admin?{}\" id=\"older\">Older orders</a></p>\n",
            escape(&query)
        ));
    }

    main.push_str("<h2>Latest IPNs</h2>\n");
    main.push_str(&inbox(&board.inbox, true));

    main.push_str("<h2>Latest emails</h2>\n");
    main.push_str(&emails(&board.emails, true));
    main
}

/// One order's admin page.
pub fn order(details: &OrderDetails, messages: &[InboxSummary], now: OffsetDateTime) -> String {
    let order = &details.order;
    let id = escape(&order.id);
    let mut main = format!(
        "<p><a href=\"/admin\">← Admin</a></p>\n<h1>Order <code>{id}</code></h1>\n\
         <p>Status <strong id=\"status\" data-status=\"{status}\">{status}</strong> · \
         total <strong>{total}</strong> · {email}</p>\n\
         <p class=\"note\">Created {created}{paid}{fulfilled} · \
         <a href=\"/orders/{id}\">customer's page</a> · checkout <code>{session}</code></p>\n",
        status = escape(&order.status),
        total = money(order.total),
        email = escape(&order.customer_email),
        created = when(order.created_at),
        paid = order
            .paid_at
            .map(|at| format!(", paid {}", when(at)))
            .unwrap_or_default(),
        fulfilled = order
            .fulfilled_at
            .map(|at| format!(", fulfilled {}", when(at)))
            .unwrap_or_default(),
        session = escape(&order.checkout_session_id),
    );
    if can_fulfil(details) {
        main.push_str(&format!(
            "<form method=\"post\" action=\"/admin/orders/{id}/fulfil\">\
             <button type=\"submit\" id=\"fulfil\">Mark fulfilled</button> \
             <small>the physical items have been shipped</small></form>\n"
        ));
    }

    main.push_str(
        "<h2>Items</h2>\n<table>\n<thead><tr><th>SKU</th><th>Item</th><th>Kind</th>\
         <th class=\"num\">Qty</th><th class=\"num\">Price</th><th class=\"num\">Amount</th>\
         </tr></thead>\n<tbody>\n",
    );
    for line in &order.lines {
        main.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&line.sku),
            escape(&line.name),
            kind(line.kind),
            line.quantity,
            money(line.unit_price),
            money(line.total),
        ));
    }
    main.push_str("</tbody>\n</table>\n");

    main.push_str("<h2>IPNs</h2>\n");
    main.push_str(&inbox(messages, false));

    main.push_str("<h2>Payments</h2>\n");
    if details.payments.is_empty() {
        main.push_str("<p>None yet.</p>\n");
    } else {
        main.push_str(
            "<table id=\"payments\">\n<thead><tr><th>Transaction</th><th>Kind</th><th>Status</th>\
             <th class=\"num\">Amount</th><th>Counts</th><th>Updated</th></tr></thead>\n<tbody>\n",
        );
        for payment in &details.payments {
            let amount = Currency::parse(&payment.currency)
                .map(|currency| money(Money::new(payment.amount, currency)))
                .unwrap_or_else(|_| {
                    escape(&format!("{} {}", payment.amount, payment.currency)).into_owned()
                });
            let parent = payment
                .parent_id
                .as_deref()
                .map(|p| format!(" <small>of {}</small>", escape(p)))
                .unwrap_or_default();
            main.push_str(&format!(
                "<tr><td><code>{}</code>{parent}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{amount}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&payment.txn_id),
                escape(&payment.kind),
                escape(&payment.status),
                if payment.valid {
                    "yes"
                } else {
                    "no: did not match the order"
                },
                when(payment.updated_at),
            ));
        }
        main.push_str("</tbody>\n</table>\n");
    }

    main.push_str("<h2>Flags</h2>\n");
    main.push_str(&flags(
        &details.flags,
        &format!("/admin/orders/{}", order.id),
        false,
    ));

    main.push_str("<h2>Emails</h2>\n");
    main.push_str(&emails(&details.emails, false));

    main.push_str("<h2>Downloads</h2>\n");
    if details.downloads.is_empty() {
        main.push_str("<p>None.</p>\n");
    } else {
        main.push_str(
            "<table id=\"downloads\">\n<thead><tr><th>Grant</th><th>Product</th><th>State</th>\
             <th class=\"num\">Uses</th><th>Expires</th></tr></thead>\n<tbody>\n",
        );
        for grant in &details.downloads {
            let state = match grant.state(now) {
                GrantState::Active => "active".to_owned(),
                GrantState::Expired => "expired".to_owned(),
                GrantState::UsedUp => "used up".to_owned(),
                GrantState::Revoked { reason } => format!("revoked ({reason})"),
            };
            main.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}/{}</td><td>{}</td></tr>\n",
                escape(&grant.id),
                escape(&grant.name),
                escape(&state),
                grant.uses,
                grant.max_uses,
                when_at(grant.expires_at),
            ));
        }
        main.push_str("</tbody>\n</table>\n");
    }
    main
}

/// Whether the page offers "Mark fulfilled": the order is paid (not
/// flagged, refunded, …), not yet fulfilled, and has something to ship.
pub fn can_fulfil(details: &OrderDetails) -> bool {
    let order = &details.order;
    order.status == "paid"
        && order.plan.is_none()
        && order.fulfilled_at.is_none()
        && order
            .lines
            .iter()
            .any(|line| line.kind == ItemKind::Physical)
}

fn kind(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Physical => "physical",
        ItemKind::Digital => "digital",
    }
}

/// A link to an order's admin page; an id that is not one of ours (a
/// payer's invoice on a flagged message) is shown, not linked.
fn order_link(id: &str) -> String {
    let ours = id
        .strip_prefix("ord_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ours {
        format!("<a href=\"/admin/orders/{id}\"><code>{id}</code></a>")
    } else {
        format!("<code>{}</code>", escape(id))
    }
}

/// How a message was verified: the PayPal postback's answer, or, for a
/// standard message, its signature (checked before it was stored: a bad
/// one is never stored).
pub fn verification(message: &InboxSummary) -> &str {
    match (message.verification.as_deref(), message.dialect.as_str()) {
        (Some(answer), _) => answer,
        (None, "standard") => "signature valid",
        (None, _) => "—",
    }
}

fn inbox(messages: &[InboxSummary], with_order: bool) -> String {
    if messages.is_empty() {
        return "<p>None.</p>\n".to_owned();
    }
    let mut out = format!(
        "<table class=\"inbox\">\n<thead><tr><th>#</th><th>Received</th><th>Dialect</th>\
         <th>Event</th><th>Verification</th><th>Status</th><th>Outcome</th><th>Detail</th>{}\
         </tr></thead>\n<tbody>\n",
        if with_order { "<th>Order</th>" } else { "" }
    );
    for message in messages {
        let order = if with_order {
            format!(
                "<td>{}</td>",
                message
                    .order_id
                    .as_deref()
                    .map(order_link)
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<tr id=\"ipn-{id}\"><td>{id}</td><td>{received}</td><td>{dialect}</td>\
             <td>{event}</td><td>{verification}</td><td>{status}</td>\
             <td class=\"outcome\">{outcome}</td><td>{detail}</td>{order}</tr>\n",
            id = message.id,
            received = when(message.received_at),
            dialect = escape(&message.dialect),
            event = escape(message.event_type.as_deref().unwrap_or("—")),
            verification = escape(verification(message)),
            status = escape(&message.status),
            outcome = if message.status == "failed" {
                format!(
                    "failed <form method=\"post\" action=\"/admin/messages/{}/retry\" \
                     class=\"inline\"><button type=\"submit\">Retry</button></form>",
                    message.id
                )
            } else {
                escape(message.outcome.as_deref().unwrap_or("—")).into_owned()
            },
            detail = escape(message.outcome_detail.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Flags with a Resolve button on each open one; `back` is where the
/// button returns to.
fn flags(flags: &[FlagRow], back: &str, with_order: bool) -> String {
    if flags.is_empty() {
        return "<p>None.</p>\n".to_owned();
    }
    let mut out = format!(
        "<table class=\"flags\">\n<thead><tr><th>Flag</th>{}<th>Reason</th><th>Raised</th>\
         <th></th></tr></thead>\n<tbody>\n",
        if with_order { "<th>Order</th>" } else { "" }
    );
    for flag in flags {
        let order = if with_order {
            let target = match flag.order_id.as_deref() {
                Some(id) => order_link(id),
                None => format!("message #{} (no order)", flag.inbox_id),
            };
            format!("<td>{target}</td>")
        } else {
            String::new()
        };
        let action = match flag.resolved_at {
            Some(at) => format!("resolved {}", when(at)),
            None => format!(
                "<form method=\"post\" action=\"/admin/flags/{id}/resolve\" class=\"inline\">\
                 <input type=\"hidden\" name=\"back\" value=\"{back}\">\
                 <button type=\"submit\">Resolve</button></form>",
                id = flag.id,
                back = escape(back),
            ),
        };
        out.push_str(&format!(
            "<tr id=\"flag-{id}\"><td>{id}</td>{order}<td>{reason}</td><td>{raised}</td>\
             <td>{action}</td></tr>\n",
            id = flag.id,
            reason = escape(&flag.reason),
            raised = when(flag.created_at),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn emails(emails: &[EmailRow], with_order: bool) -> String {
    if emails.is_empty() {
        return "<p>None.</p>\n".to_owned();
    }
    let mut out = format!(
        "<table class=\"emails\">\n<thead><tr><th>To</th><th>Subject</th><th>Kind</th>\
         <th>Status</th><th class=\"num\">Attempts</th><th>Last error</th><th>Queued</th>{}\
         </tr></thead>\n<tbody>\n",
        if with_order { "<th>Order</th>" } else { "" }
    );
    for email in emails {
        let order = if with_order {
            let target = match (&email.order_id, &email.subscription_id) {
                (Some(id), _) => order_link(id),
                (None, Some(sub)) => format!("<code>{}</code>", escape(sub)),
                (None, None) => String::new(),
            };
            format!("<td>{target}</td>")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"/admin/emails/{}\">{}</a></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td>{order}</tr>\n",
            escape(&email.to),
            email.id,
            subject(&email.subject),
            escape(email.kind.as_str()),
            escape(email.status.as_str()),
            email.attempts,
            escape(email.last_error.as_deref().unwrap_or("")),
            when(email.created_at),
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A subject as a link's text: never empty, so the link can be clicked.
fn subject(subject: &str) -> std::borrow::Cow<'_, str> {
    if subject.trim().is_empty() {
        "(no subject)".into()
    } else {
        escape(subject)
    }
}

/// One email's page: who it went to, where it stands, its text body as
/// sent, and the links in it as anchors, so an operator can follow what
/// the customer got.
///
/// The HTML body is deliberately not rendered: it is markup from the
/// templates (which a merchant may override) with customer data in it, and
/// the text body says the same; showing it safely would take a sandboxed
/// frame and a looser Content-Security-Policy for no gain.
pub fn email(email: &EmailView) -> String {
    let mut main = String::from("<p><a href=\"/admin\">← Admin</a>");
    if let Some(id) = &email.order_id {
        main.push_str(&format!(" · order {}", order_link(id)));
    }
    main.push_str("</p>\n");
    main.push_str(&format!(
        "<h1 id=\"subject\">{}</h1>\n<table id=\"email\">\n<tbody>\n",
        subject(&email.subject)
    ));
    let status = match email.sent_at {
        Some(at) if email.status == "sent" => format!("sent {}", when(at)),
        _ => escape(&email.status).into_owned(),
    };
    let mut facts = vec![
        ("To", escape(&email.to).into_owned()),
        ("Kind", escape(&email.kind).into_owned()),
        ("Status", status),
        ("Attempts", email.attempts.to_string()),
        ("Queued", when(email.created_at)),
    ];
    if let Some(error) = &email.last_error {
        facts.push(("Last error", escape(error).into_owned()));
    }
    if let Some(id) = &email.subscription_id {
        facts.push(("Subscription", format!("<code>{}</code>", escape(id))));
    }
    for (name, value) in facts {
        main.push_str(&format!(
            "<tr><th scope=\"row\">{name}</th><td>{value}</td></tr>\n"
        ));
    }
    main.push_str("</tbody>\n</table>\n");

    let links = links(&email.text_body);
    if !links.is_empty() {
        main.push_str("<h2>Links</h2>\n<ul id=\"links\" style=\"overflow-wrap:anywhere\">\n");
        for link in &links {
            let link = escape(link);
            main.push_str(&format!(
                "<li><a href=\"{link}\" rel=\"noreferrer\">{link}</a></li>\n"
            ));
        }
        main.push_str(
            "</ul>\n<p class=\"note\">These are the customer&#39;s own links: a download \
             opened here counts as one of theirs.</p>\n",
        );
    }
    main.push_str(&format!(
        "<h2>Text</h2>\n<pre id=\"text-body\" style=\"white-space:pre-wrap;\
         overflow-wrap:anywhere;background:#f5f5f7;padding:1rem;border-radius:6px\">{}</pre>\n\
         <p class=\"note\">The HTML version ({} bytes) says the same and is not shown \
         here.</p>\n",
        escape(&email.text_body),
        email.html_body.len(),
    ));
    main
}

/// The `http` and `https` URLs in a text, in order, each once; trailing
/// punctuation is not part of a URL.
pub fn links(text: &str) -> Vec<&str> {
    let mut found: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let word = word
            .trim_start_matches(['<', '(', '"', '\''])
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '>', '"', '\'']);
        let web = word.starts_with("http://") || word.starts_with("https://");
        if web && url::Url::parse(word).is_ok() && !found.contains(&word) {
            found.push(word);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::{EmailKind, EmailStatus};
    use crate::storage::views::{OrderPage, OrderSummary};
    use crate::storage::{Line, Order};

    const EVIL: &str = "<script>alert(1)</script>";

    fn message(dialect: &str, verification: Option<&str>) -> InboxSummary {
        InboxSummary {
            id: 7,
            received_at: 0,
            dialect: dialect.into(),
            event_type: Some("payment.completed".into()),
            status: "processed".into(),
            verification: verification.map(str::to_owned),
            outcome: Some("flagged".into()),
            outcome_detail: Some(format!("paid to {EVIL}")),
            order_id: Some(format!("ord_{EVIL}")),
        }
    }

    fn board() -> Dashboard {
        let usd = Currency::USD;
        Dashboard {
            orders: OrderPage {
                orders: vec![OrderSummary {
                    id: "ord_1".into(),
                    status: "paid".into(),
                    customer_email: format!("{EVIL}@example.com"),
                    total: Money::new(1250, usd),
                    created_at: 0,
                }],
                next_before: Some("ord_1&x".into()),
            },
            flags: vec![FlagRow {
                id: 3,
                order_id: None,
                inbox_id: 7,
                reason: format!("unknown {EVIL}"),
                created_at: 0,
                resolved_at: None,
            }],
            inbox: vec![message("paypal", Some("INVALID"))],
            emails: vec![EmailRow {
                id: 1,
                kind: EmailKind::OrderPaid,
                to: format!("{EVIL}@example.com"),
                order_id: Some("ord_1".into()),
                subscription_id: None,
                subject: EVIL.into(),
                status: EmailStatus::Failed,
                attempts: 3,
                last_error: Some(EVIL.into()),
                created_at: 0,
                next_try_at: 0,
                sent_at: None,
            }],
        }
    }

    #[test]
    fn the_dashboard_lists_everything_escaped() {
        let dir = PathBuf::from("/data/<mail>");
        let page = dashboard(&board(), Some(&dir), false);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("/data/&lt;mail&gt;"), "{page}");
        assert!(page.contains("href=\"/admin/orders/ord_1\""), "{page}");
        assert!(page.contains("action=\"/admin/flags/3/resolve\""), "{page}");
        assert!(page.contains("<td>INVALID</td>"), "{page}");
        assert!(page.contains("href=\"/admin?before=ord_1%26x\""), "{page}");
        assert!(!dashboard(&board(), None, false).contains("mail-dir"));
    }

    #[test]
    fn verification_reads_per_dialect() {
        assert_eq!(
            verification(&message("paypal", Some("VERIFIED"))),
            "VERIFIED"
        );
        assert_eq!(verification(&message("paypal", None)), "—");
        assert_eq!(verification(&message("standard", None)), "signature valid");
    }

    #[test]
    fn only_a_paid_order_with_something_to_ship_can_be_fulfilled() {
        let usd = Currency::USD;
        let line = |kind| Line {
            sku: "x".into(),
            name: "X".into(),
            kind,
            quantity: 1,
            unit_price: Money::new(100, usd),
            total: Money::new(100, usd),
        };
        let details = |status: &str, kind, fulfilled_at| OrderDetails {
            order: Order {
                id: "ord_1".into(),
                status: status.into(),
                customer_email: "a@b.c".into(),
                total: Money::new(100, usd),
                lines: vec![line(kind)],
                checkout_session_id: "cs".into(),
                checkout_url: "u".into(),
                merchant_id: None,
                created_at: 0,
                paid_at: None,
                plan: None,
                subscription_id: None,
                fulfilled_at,
            },
            payments: Vec::new(),
            flags: Vec::new(),
            emails: Vec::new(),
            downloads: Vec::new(),
            subscription: None,
        };
        assert!(can_fulfil(&details("paid", ItemKind::Physical, None)));
        assert!(!can_fulfil(&details("paid", ItemKind::Digital, None)));
        assert!(!can_fulfil(&details("paid", ItemKind::Physical, Some(1))));
        for status in ["created", "pending", "refunded", "flagged", "fulfilled"] {
            assert!(
                !can_fulfil(&details(status, ItemKind::Physical, None)),
                "{status}"
            );
        }
        let now = OffsetDateTime::UNIX_EPOCH;
        let page = order(
            &details("paid", ItemKind::Physical, None),
            &[message("standard", None)],
            now,
        );
        assert!(
            page.contains("action=\"/admin/orders/ord_1/fulfil\""),
            "{page}"
        );
        assert!(page.contains("signature valid"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
    }

    fn stored_email() -> EmailView {
        EmailView {
            id: 4,
            kind: "download_link".into(),
            to: format!("{EVIL}@example.com"),
            order_id: Some("ord_1".into()),
            subscription_id: None,
            subject: format!("Your download: {EVIL}"),
            status: "failed".into(),
            attempts: 2,
            last_error: Some(EVIL.into()),
            created_at: 0,
            sent_at: None,
            text_body: format!(
                "Hello {EVIL},\nget it at http://shop.example/downloads/t0k?a=1&b=\"2\"x.\n\
                 Again: http://shop.example/downloads/t0k?a=1&b=\"2\"x or \
                 javascript:alert(1) or (https://shop.example/orders/ord_1)\n"
            ),
            html_body: format!("<p onclick=\"x\">{EVIL}</p>"),
        }
    }

    #[test]
    fn an_email_page_shows_the_text_escaped_and_its_web_links() {
        let page = email(&stored_email());
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            !page.contains("onclick"),
            "the HTML body is not shown: {page}"
        );
        assert!(
            page.contains("<pre id=\"text-body\" style=\"white-space:pre-wrap;"),
            "{page}"
        );
        assert!(page.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"));
        assert!(page.contains("<h1 id=\"subject\">Your download: &lt;script&gt;"));
        assert!(page.contains("href=\"/admin/orders/ord_1\""), "{page}");
        assert!(page.contains("<td>failed</td>"), "{page}");
        let anchors: Vec<&str> = page.matches("<li><a href=").collect();
        assert_eq!(anchors.len(), 2, "each link once: {page}");
        assert!(
            page.contains(
                "<a href=\"http://shop.example/downloads/t0k?a=1&amp;b=&quot;2&quot;x\" \
                 rel=\"noreferrer\">"
            ),
            "{page}"
        );
        assert!(page.contains("href=\"https://shop.example/orders/ord_1\""));
        assert!(!page.contains("href=\"javascript"), "{page}");
    }

    #[test]
    fn links_are_web_urls_without_trailing_punctuation() {
        assert_eq!(
            links(
                "see http://a.example/x. and <https://b.example/y>, ftp://c javascript:x http://"
            ),
            ["http://a.example/x", "https://b.example/y"]
        );
        assert!(links("no links here").is_empty());
    }

    #[test]
    fn each_email_row_links_to_its_page() {
        let page = dashboard(&board(), None, false);
        assert!(
            page.contains("<a href=\"/admin/emails/1\">&lt;script&gt;"),
            "{page}"
        );
    }
}
