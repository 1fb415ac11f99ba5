//! `/checkout/{id}` (no key): the customer's checkout page, served by the
//! gateway.
//!
//! Plain server-rendered HTML that works without JavaScript. `GET` shows the
//! order (and, in subscription mode, the terms) and a form; `POST`
//! (form-urlencoded `name`, `email`, `card_number`) pays the session through
//! the payments' create operation, or starts its subscription through the
//! subscriptions' signup, and answers `303 See Other` to the shop's
//! `success_url` with `session_id=cs_…` added to its query. Otherwise the
//! answer is a page whose status a script can read: 400 bad input or a card
//! a subscription cannot use (the form again), 402 declined card (the form
//! again; the session stays open), 404 unknown session, 409 already paid,
//! 410 expired.
//!
//! Every value that came from a merchant or a customer goes through
//! [`escape`]; the card number is never written back into a page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ipn_core::billing::Plan;
use ipn_core::card::{CardNumber, TEST_CARDS};
use ipn_core::id::CheckoutSessionId;
use ipn_core::money::Money;
use ipn_core::payment::{Payer, PaymentStatus};
use time::OffsetDateTime;
use time::macros::format_description;

use super::checkout::load;
use super::payments::{Method, Order, created, new_payment, payment_write};
use super::subscriptions::{card_on_file, new_subscription};
use super::{ApiError, AppState};
use crate::processor::checkout::{
    self, CheckoutPayment, CheckoutRefusal, CheckoutSession, CheckoutSubscription, PaidBy,
    SessionStatus,
};
use crate::processor::subscriptions::{SubscriptionRefusal, SubscriptionWrite};
use crate::writes::{Write, WriteRequest, Written};

/// Longest name or email taken from the form (PayPal's `payer_email` limit).
const MAX_FIELD: usize = 127;

pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    show_page(&state, &id).await.unwrap_or_else(error_page)
}

pub async fn pay(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    pay_page(&state, &id, &body)
        .await
        .unwrap_or_else(error_page)
}

async fn show_page(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let Some((session, merchant)) = find(state, id).await? else {
        return Ok(unknown_page());
    };
    let now = state.engine.clock.now();
    Ok(match session.status(now) {
        SessionStatus::Open => {
            let form = Filled {
                name: String::new(),
                email: session.customer_email.clone().unwrap_or_default(),
            };
            order_page(StatusCode::OK, &session, &merchant, &form, None)
        }
        SessionStatus::Paid => {
            let payment = payment_status(state, &session).await?;
            paid_page(StatusCode::OK, &session, &merchant, false, payment)
        }
        SessionStatus::Expired => expired_page(&session, &merchant),
    })
}

/// The status of the payment that settled a session, as it is now: a
/// session is settled by a payment still pending, which may yet fail.
async fn payment_status(
    state: &AppState,
    session: &CheckoutSession,
) -> Result<Option<PaymentStatus>, ApiError> {
    let Some(PaidBy::Payment(id)) = session.paid_by() else {
        return Ok(None);
    };
    let store = Arc::clone(&state.engine.store);
    let merchant = session.merchant_id;
    let stored = tokio::task::spawn_blocking(move || store.payment(merchant, id))
        .await
        .map_err(ApiError::internal)??;
    Ok(stored.map(|stored| stored.payment.status))
}

async fn pay_page(state: &AppState, id: &str, body: &[u8]) -> Result<Response, ApiError> {
    let Some((session, merchant_name)) = find(state, id).await? else {
        return Ok(unknown_page());
    };
    let now = state.engine.clock.now();
    // Answered here without a write when it is already clear; the writer
    // checks again, in the transaction that would pay.
    if let Err(refusal) = session.payable(now) {
        let payment = payment_status(state, &session).await?;
        return Ok(refused_page(refusal, &session, &merchant_name, payment));
    }
    let form = PaymentForm::parse(body);
    let filled = Filled {
        name: form.name.clone(),
        email: form.email.clone(),
    };
    let (payer, card) = match form.check() {
        Ok(valid) => valid,
        Err(problem) => {
            let status = StatusCode::BAD_REQUEST;
            return Ok(order_page(
                status,
                &session,
                &merchant_name,
                &filled,
                Some(&problem),
            ));
        }
    };
    let merchant = state
        .engine
        .directory
        .merchant(session.merchant_id)
        .ok_or_else(|| ApiError::internal(format!("no merchant for session {}", session.id)))?;
    let order = Order {
        amount: session.amount,
        invoice: session.invoice.clone(),
        custom: session.custom.clone(),
        items: session.items.clone(),
    };
    // The same operation as the API's, in the session's mode.
    let write = match &session.plan {
        None => {
            let (payment_id, change) =
                new_payment(&merchant, order, payer, Method::card(&card), now);
            Write::CheckoutPayment(Box::new(CheckoutPayment {
                session_id: session.id,
                payment: payment_write(state, merchant.id, payment_id, change, now, created),
            }))
        }
        Some(plan) => {
            let method = card_on_file(&card);
            let (subscription_id, change) =
                new_subscription(&merchant, order, payer, plan, method, now);
            Write::CheckoutSubscription(Box::new(CheckoutSubscription {
                session_id: session.id,
                subscription: SubscriptionWrite {
                    merchant_id: merchant.id,
                    subscription_id,
                    change,
                    subscribers: state.engine.directory.subscribers(merchant.id),
                    now,
                    respond: None, // no Idempotency-Key to answer for
                },
            }))
        }
    };
    let request = WriteRequest {
        write,
        idempotency: None, // the session itself makes a second submit harmless
    };
    let declined = "Your card was declined and nothing was charged. Try another card.";
    let (status, problem) = match state.engine.writer.write(request).await? {
        Written::Payment(done) => {
            state.engine.schedule_events(&done.events);
            let status = done.rows.first().map(|row| row.payment.status);
            if status.is_some_and(checkout::settles) {
                return success(&session);
            }
            (StatusCode::PAYMENT_REQUIRED, declined.to_owned())
        }
        Written::Subscription(done) => {
            state.engine.schedule_events(&done.events);
            return success(&session);
        }
        // A refused signup commits nothing: the session stays open.
        Written::SubscriptionRefused(SubscriptionRefusal::Declined) => {
            (StatusCode::PAYMENT_REQUIRED, declined.to_owned())
        }
        Written::SubscriptionRefused(refusal @ SubscriptionRefusal::MethodNotChargeable) => (
            StatusCode::BAD_REQUEST,
            format!("This card cannot pay a subscription: {refusal}. Try another card."),
        ),
        Written::CheckoutRefused(refusal) => {
            // Paid or expired since it was read: show it as it is now.
            let session = load(state, session.id).await?.unwrap_or(session);
            let payment = payment_status(state, &session).await?;
            return Ok(refused_page(refusal, &session, &merchant_name, payment));
        }
        Written::PaymentRefused(refusal) => return Err(crate::http::payment_refused(&refusal)),
        Written::SubscriptionRefused(refusal) => {
            return Err(crate::http::subscription_refused(&refusal));
        }
        other => {
            return Err(ApiError::internal(format!(
                "unexpected result of a checkout: {other:?}"
            )));
        }
    };
    Ok(order_page(
        status,
        &session,
        &merchant_name,
        &filled,
        Some(&problem),
    ))
}

/// Back to the shop after paying.
fn success(session: &CheckoutSession) -> Result<Response, ApiError> {
    let to = session.success_redirect().map_err(ApiError::internal)?;
    Ok(Redirect::to(to.as_str()).into_response())
}

/// The session and its merchant's name; `None` for an id that names no
/// session (malformed ones included: the customer sees the same page).
async fn find(state: &AppState, id: &str) -> Result<Option<(CheckoutSession, String)>, ApiError> {
    let Ok(id) = CheckoutSessionId::parse(id) else {
        return Ok(None);
    };
    let Some(session) = load(state, id).await? else {
        return Ok(None);
    };
    let merchant = state
        .engine
        .directory
        .merchant(session.merchant_id)
        .ok_or_else(|| ApiError::internal(format!("no merchant for session {id}")))?;
    Ok(Some((session, merchant.name.clone())))
}

/// The submitted form, as typed.
struct PaymentForm {
    name: String,
    email: String,
    /// Never logged or shown (no `Debug` on purpose).
    card_number: String,
}

impl PaymentForm {
    /// Reads `application/x-www-form-urlencoded`; unknown fields are
    /// ignored and missing ones are empty, so `check` names what is missing.
    fn parse(body: &[u8]) -> Self {
        let mut form = Self {
            name: String::new(),
            email: String::new(),
            card_number: String::new(),
        };
        for (key, value) in url::form_urlencoded::parse(body) {
            match &*key {
                "name" => form.name = value.trim().to_owned(),
                "email" => form.email = value.trim().to_owned(),
                "card_number" => form.card_number = value.into_owned(),
                _ => {}
            }
        }
        form
    }

    /// The payer and card, or what the customer should correct.
    fn check(self) -> Result<(Payer, CardNumber), String> {
        if self.name.is_empty() || self.name.chars().count() > MAX_FIELD {
            return Err(format!("Enter your name (at most {MAX_FIELD} characters)."));
        }
        if ipn_core::payment::check_text("name", &self.name).is_err() {
            return Err("Enter your name as plain text, without control characters.".to_owned());
        }
        if self.email.chars().count() > MAX_FIELD
            || super::merchants::check_email("email", &self.email).is_err()
        {
            return Err("Enter a valid email address.".to_owned());
        }
        let card = CardNumber::parse(&self.card_number)
            .map_err(|e| format!("Check the card number: {e}."))?;
        let payer = Payer {
            email: self.email,
            name: Some(self.name),
            id: None,
        };
        Ok((payer, card))
    }
}

/// What the form shows again after a refused submit (never the card).
struct Filled {
    name: String,
    email: String,
}

/// Escapes text for HTML element content and quoted attribute values (the
/// one escaper of both services, `ipn_web::escape`).
fn escape(text: &str) -> String {
    ipn_web::escape(text).into_owned()
}

/// `19.99 USD`: exactly the currency's decimals.
fn money(amount: Money) -> String {
    escape(&amount.to_string())
}

fn when(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

fn order_page(
    status: StatusCode,
    session: &CheckoutSession,
    merchant: &str,
    form: &Filled,
    problem: Option<&str>,
) -> Response {
    let currency = session.amount.currency();
    let mut lines = String::new();
    for item in &session.items {
        let unit = Money::new(item.unit_amount, currency);
        // Checked when the session was created, so this cannot overflow.
        let total = unit.checked_mul(item.quantity).unwrap_or(unit);
        lines.push_str(&format!(
            "<tr><td>{name}<br><small>{sku}</small></td><td class=\"num\">{quantity}</td>\
             <td class=\"num\">{unit}</td><td class=\"num\">{total}</td></tr>\n",
            name = escape(&item.name),
            sku = escape(&item.sku),
            quantity = item.quantity,
            unit = money(unit),
            total = money(total),
        ));
    }
    let items = if lines.is_empty() {
        String::new()
    } else {
        format!(
            "<table class=\"lines\">\n<thead><tr><th>Item</th><th class=\"num\">Qty</th>\
             <th class=\"num\">Price</th><th class=\"num\">Amount</th></tr></thead>\n\
             <tbody>\n{lines}</tbody>\n</table>\n"
        )
    };
    let invoice = session
        .invoice
        .as_deref()
        .map(|i| format!("<p>Order <strong>{}</strong></p>\n", escape(i)))
        .unwrap_or_default();
    let problem = problem
        .map(|p| format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    let cancel = session
        .cancel_redirect()
        .map(|url| {
            format!(
                "<p><a href=\"{}\">Cancel and return to {}</a></p>\n",
                escape(url.as_str()),
                escape(merchant)
            )
        })
        .unwrap_or_default();
    let mut cards = String::new();
    for card in TEST_CARDS {
        cards.push_str(&format!(
            "<li><code>{}</code>: {}</li>\n",
            escape(card.number),
            escape(card.description)
        ));
    }
    let total = money(session.amount);
    let (heading, summary, button) = match &session.plan {
        None => (
            "Pay",
            format!("<p class=\"total\">Total <strong id=\"total\">{total}</strong></p>\n"),
            format!("Pay {total}"),
        ),
        Some(plan) => (
            "Subscribe to",
            format!(
                "<p class=\"total\"><strong id=\"total\">{total}</strong> \
                 <span id=\"terms\">{}</span></p>\n",
                escape(&terms(plan))
            ),
            "Subscribe".to_owned(),
        ),
    };
    let main = format!(
        "<h1>{heading} {merchant}</h1>\n{invoice}{items}{summary}\
         {problem}\
         <form method=\"post\">\n\
         <label for=\"name\">Name on card</label>\n\
         <input id=\"name\" name=\"name\" autocomplete=\"cc-name\" required maxlength=\"{MAX_FIELD}\" value=\"{name}\">\n\
         <label for=\"email\">Email</label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required maxlength=\"{MAX_FIELD}\" value=\"{email}\">\n\
         <label for=\"card_number\">Card number</label>\n\
         <input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" required>\n\
         <button type=\"submit\">{button}</button>\n\
         </form>\n\
         {cancel}\
         <p class=\"note\">This checkout expires at {expires}.</p>\n\
         <section class=\"cards\">\n<h2>Test cards</h2>\n<ul>\n{cards}</ul>\n\
         <p>Any other number that passes the Luhn check completes.</p>\n</section>\n",
        merchant = escape(merchant),
        name = escape(&form.name),
        email = escape(&form.email),
        expires = when(session.expires_at),
    );
    page(status, &format!("{heading} {merchant}"), &main)
}

/// A plan's terms in words, after the amount: `every month, first 14 days
/// free, for 12 payments`.
fn terms(plan: &Plan) -> String {
    let mut text = format!("every {}", plan.period());
    match plan.trial_days() {
        0 => {}
        1 => text.push_str(", first day free"),
        days => text.push_str(&format!(", first {days} days free")),
    }
    match plan.total_cycles() {
        None => {}
        Some(1) => text.push_str(", for 1 payment"),
        Some(cycles) => text.push_str(&format!(", for {cycles} payments")),
    }
    text
}

/// The page of a settled session; `again` when a submit came after it.
/// What it says follows the payment as it stands now (`payment`): a card
/// pending review is "Payment pending", never "Paid", so the page and the
/// shop's order page tell the customer the same thing.
fn paid_page(
    status: StatusCode,
    session: &CheckoutSession,
    merchant: &str,
    again: bool,
    payment: Option<PaymentStatus>,
) -> Response {
    let again_note = if again {
        " Nothing more was charged."
    } else {
        ""
    };
    let (title, word, lead) = match payment {
        Some(PaymentStatus::Pending) => (
            "Payment pending",
            "pending",
            format!(
                "Your payment was accepted and has not cleared yet. {} will confirm \
                 the order when it does.{again_note}",
                escape(merchant)
            ),
        ),
        Some(PaymentStatus::Failed | PaymentStatus::Denied) => (
            "Payment failed",
            "failed",
            format!(
                "The payment for this order did not clear, and nothing was charged. \
                 Start again from the shop.{again_note}"
            ),
        ),
        _ if again => (
            "Paid",
            "paid",
            "This order was already paid. Nothing more was charged.".to_owned(),
        ),
        _ => ("Paid", "paid", "This order has been paid.".to_owned()),
    };
    let paid_by = match session.paid_by() {
        Some(PaidBy::Payment(id)) => format!("<p>Payment <code>{id}</code></p>\n"),
        Some(PaidBy::Subscription(id)) => format!("<p>Subscription <code>{id}</code></p>\n"),
        None => String::new(),
    };
    let terms = session
        .plan
        .map(|plan| format!(" {}", escape(&terms(&plan))))
        .unwrap_or_default();
    let paid_at = session
        .paid_at
        .filter(|_| word == "paid")
        .map(|at| format!("<p>Paid at {}.</p>\n", when(at)))
        .unwrap_or_default();
    let back = session
        .success_redirect()
        .map(|url| {
            format!(
                "<p><a href=\"{}\">Return to {}</a></p>\n",
                escape(url.as_str()),
                escape(merchant)
            )
        })
        .unwrap_or_default();
    let main = format!(
        "<h1>{title}</h1>\n<p id=\"status\" data-status=\"{word}\">{lead}</p>\n\
         <p>{merchant}: <strong>{total}</strong>{terms}</p>\n{paid_by}{paid_at}{back}",
        merchant = escape(merchant),
        total = money(session.amount),
    );
    page(status, title, &main)
}

fn expired_page(session: &CheckoutSession, merchant: &str) -> Response {
    let back = session
        .cancel_redirect()
        .map(|url| {
            format!(
                "<p><a href=\"{}\">Return to {}</a></p>\n",
                escape(url.as_str()),
                escape(merchant)
            )
        })
        .unwrap_or_default();
    let main = format!(
        "<h1>Checkout expired</h1>\n\
         <p id=\"status\" data-status=\"expired\">This checkout expired at {expires}. \
         Nothing was charged. Start again from the shop.</p>\n{back}",
        expires = when(session.expires_at),
    );
    page(StatusCode::GONE, "Checkout expired", &main)
}

fn unknown_page() -> Response {
    let main = "<h1>No such checkout</h1>\n\
                <p id=\"status\" data-status=\"unknown\">This checkout link is not valid. \
                Check the link, or start again from the shop.</p>\n";
    page(StatusCode::NOT_FOUND, "No such checkout", main)
}

fn refused_page(
    refusal: CheckoutRefusal,
    session: &CheckoutSession,
    merchant: &str,
    payment: Option<PaymentStatus>,
) -> Response {
    match refusal {
        CheckoutRefusal::NotFound => unknown_page(),
        CheckoutRefusal::Paid { .. } => {
            paid_page(StatusCode::CONFLICT, session, merchant, true, payment)
        }
        CheckoutRefusal::Expired => expired_page(session, merchant),
    }
}

/// An unexpected failure (already logged by `ApiError::internal`), as a page.
pub(crate) fn error_page(error: ApiError) -> Response {
    let main = format!(
        "<h1>Something went wrong</h1>\n<p>{}</p>\n<p>Nothing was charged by this request.</p>\n",
        escape(&error.message)
    );
    page(error.status, "Something went wrong", &main)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f5f5f7;color:#1d1d1f;margin:0}\
main{max-width:32rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px}\
.mode{background:#fff4ce;padding:.25rem .5rem;border-radius:4px;font-size:.85rem}\
table{width:100%;border-collapse:collapse}td,th{padding:.3rem 0;text-align:left}\
.num{text-align:right}.total{font-size:1.2rem;text-align:right}\
label{display:block;margin-top:.75rem}\
input{width:100%;padding:.5rem;box-sizing:border-box;border:1px solid #c7c7cc;border-radius:6px;\
font-size:1rem}input:focus{outline:2px solid #0a66c2;border-color:#0a66c2}\
button{margin-top:1.25rem;width:100%;padding:.7rem;font-size:1rem;font-weight:600;color:#fff;\
background:#0a66c2;border:0;border-radius:6px;cursor:pointer}button:hover{background:#084f96}\
.problem{background:#fde2e1;padding:.5rem;border-radius:4px}\
.note,.cards{font-size:.85rem;color:#555}";

/// A whole page. `title` is text (escaped here); `main` is markup whose
/// values the caller escaped.
fn page(status: StatusCode, title: &str, main: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <p class=\"mode\">Test mode: no real money moves.</p>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    // A page that takes card numbers: never cached, never framed by another
    // site, no script may run in it (it needs none), and its address (the
    // session id) is not sent on to other sites: the headers of every page
    // of both services, with this page's CSP.
    ipn_web::html::page(status, html, CSP)
}

/// No script, no framing, nothing loaded from elsewhere.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_both_quotes_and_controls() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("Zoë 1 × 2\0"), "Zoë 1 × 2\u{FFFD}");
    }

    #[test]
    fn a_plan_reads_as_its_terms() {
        use ipn_core::subscription::Interval;
        for (interval, count, trial, cycles, expected) in [
            (Interval::Month, 1, 0, None, "every month"),
            (Interval::Week, 2, 1, None, "every 2 weeks, first day free"),
            (
                Interval::Month,
                1,
                14,
                Some(12),
                "every month, first 14 days free, for 12 payments",
            ),
            (Interval::Year, 1, 0, Some(1), "every year, for 1 payment"),
        ] {
            let plan = Plan::new(interval, count, trial, cycles).unwrap();
            assert_eq!(terms(&plan), expected);
        }
    }

    #[test]
    fn the_form_names_what_to_correct_and_never_repeats_the_card() {
        let check = |body: &str| PaymentForm::parse(body.as_bytes()).check();
        let ok = check("name=Ann+Smith&email=ann%40example.com&card_number=4242+4242+4242+4242");
        let (payer, card) = ok.unwrap();
        assert_eq!(payer.name.as_deref(), Some("Ann Smith"));
        assert_eq!(card.last4(), "4242");
        assert!(check("email=ann%40example.com&card_number=4242424242424242").is_err());
        assert!(check("name=Ann&email=ann&card_number=4242424242424242").is_err());
        let luhn = check("name=Ann&email=ann%40example.com&card_number=4242424242424241");
        let problem = luhn.err().unwrap();
        assert!(problem.contains("Luhn"), "{problem}");
        assert!(!problem.contains("4242424242424241"));
    }
}
