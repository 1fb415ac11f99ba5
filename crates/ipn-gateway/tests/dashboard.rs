//! The dashboard at `/dashboard`, driven as a browser would: sign in with
//! an API key, follow the pages, press the buttons (form posts with the
//! browser's `Origin`).

mod common;

use std::time::Duration;

use common::{ADMIN_KEY, TestGateway, TestMerchant};
use ipn_testkit::{Receiver, Reply};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// A browser signed in to one gateway's dashboard (cookies by hand).
struct Browser {
    url: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    fn new(gw: &TestGateway) -> Self {
        Self {
            url: gw.url.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Signs in with `key`; panics unless the gateway sets a session.
    async fn signed_in(gw: &TestGateway, key: &str) -> Self {
        let mut browser = Self::new(gw);
        let page = browser.sign_in(key).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(browser.cookie.is_some());
        browser
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.post("/dashboard/login", &[("api_key", key)]).await;
        if let Some(set) = page.headers.get(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            self.cookie = Some(pair.to_owned());
        }
        page
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.body
    }

    /// A form post from the dashboard's own pages.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.url.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    async fn post_from(&self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.send(request).await
    }
}

/// The dashboard's one script, in every page's head.
const LIVE_SCRIPT: &str = "<script src=\"/dashboard/live.js\" defer></script>";

/// One directive of a Content-Security-Policy, as written.
fn directive<'a>(csp: &'a str, name: &str) -> &'a str {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.split(' ').next() == Some(name))
        .unwrap_or("")
}

/// The markup from the element with `id` to the first `end` after it.
fn fragment<'a>(body: &'a str, id: &str, end: &str) -> &'a str {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {body}"));
    let rest = &body[start..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// The event ids of an events list page, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("data-event=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

fn card_payment(amount: i64, invoice: &str) -> Value {
    json!({
        "amount": amount,
        "currency": "USD",
        "invoice": invoice,
        "payer": {"email": "ann@example.com", "name": "Ann Smith"},
        "payment_method": {"card_number": "4242424242424242"},
    })
}

async fn pay(gw: &TestGateway, merchant: &TestMerchant, amount: i64, invoice: &str) -> Value {
    let (status, payment) = gw
        .post(&merchant.key, "/v1/payments", card_payment(amount, invoice))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    payment
}

#[tokio::test]
async fn signing_in_takes_a_real_key_and_gives_an_opaque_strict_cookie() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("acme").await;
    let mut browser = Browser::new(&gw);

    let page = browser.get("/dashboard/events").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/dashboard/login");
    let form = browser.get("/dashboard/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("name=\"api_key\""), "{}", form.body);

    let wrong = browser.sign_in("sk_test_not-a-key").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(SET_COOKIE).is_none());
    assert!(wrong.body.contains("id=\"problem\""), "{}", wrong.body);
    assert!(browser.cookie.is_none());

    let ok = browser.sign_in(&merchant.key).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/dashboard/events");
    let set = ok.headers[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(!set.contains(&merchant.key), "never the key: {set}");

    let events = browser.get("/dashboard/events").await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    assert!(events.body.contains("acme"), "the bar names the merchant");
    let headers = &events.headers;
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(directive(csp, "script-src"), "script-src 'self'", "{csp}");

    // A forged or stale cookie is no session.
    let forged = Browser {
        cookie: Some("ipn_dashboard=00ff".to_owned()),
        ..Browser::new(&gw)
    };
    assert_eq!(
        forged.get("/dashboard/events").await.status,
        StatusCode::SEE_OTHER
    );

    let out = browser.post("/dashboard/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = browser.get("/dashboard/events").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session ended");

    // The admin key signs in too.
    let admin = Browser::signed_in(&gw, ADMIN_KEY).await;
    assert!(admin.page("/dashboard/events").await.contains("admin"));
}

#[tokio::test]
async fn a_merchant_sees_only_its_own_objects_and_the_admin_sees_all() {
    let gw = TestGateway::start().await;
    let mine = gw.merchant("mine").await;
    let theirs = gw.merchant("theirs").await;
    let my_event = gw
        .ingest(&mine, "invoice.paid", json!({"id": "in_mine"}))
        .await;
    let their_event = gw
        .ingest(&theirs, "invoice.paid", json!({"id": "in_theirs"}))
        .await;
    let their_payment = pay(&gw, &theirs, 1500, "their-order").await;
    let my_event = my_event["id"].as_str().unwrap();
    let their_event = their_event["id"].as_str().unwrap();
    let their_payment = their_payment["id"].as_str().unwrap();

    let browser = Browser::signed_in(&gw, &mine.key).await;
    let list = browser.page("/dashboard/events").await;
    assert_eq!(listed(&list), vec![my_event.to_owned()]);
    assert!(
        browser
            .page(&format!("/dashboard/events/{my_event}"))
            .await
            .contains("in_mine")
    );

    for path in [
        format!("/dashboard/events/{their_event}"),
        format!("/dashboard/payments/{their_payment}"),
        "/dashboard/events/evt_nonsense".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.body.contains("Not found"),
            "an HTML page: {}",
            page.body
        );
        assert!(!page.body.contains("in_theirs"));
    }
    let refund = browser
        .post(&format!("/dashboard/payments/{their_payment}/refunds"), &[])
        .await;
    assert_eq!(refund.status, StatusCode::NOT_FOUND);
    let (_, payment) = gw
        .get(&theirs.key, &format!("/v1/payments/{their_payment}"))
        .await;
    assert_eq!(
        payment["status"], "completed",
        "not refunded by another merchant"
    );
    assert!(
        !browser
            .page("/dashboard/payments")
            .await
            .contains(their_payment)
    );

    let admin = Browser::signed_in(&gw, ADMIN_KEY).await;
    let all = listed(&admin.page("/dashboard/events").await);
    assert!(all.contains(&my_event.to_owned()) && all.contains(&their_event.to_owned()));
    assert!(
        admin
            .page(&format!("/dashboard/events/{their_event}"))
            .await
            .contains("in_theirs")
    );
    assert!(
        admin
            .page("/dashboard/payments")
            .await
            .contains(their_payment)
    );
    // As in the API, the admin looks but does not act for a merchant.
    let refused = admin
        .post(&format!("/dashboard/payments/{their_payment}/refunds"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let (_, payment) = gw
        .get(&theirs.key, &format!("/v1/payments/{their_payment}"))
        .await;
    assert_eq!(payment["status"], "completed", "not refunded by the admin");
}

#[tokio::test]
async fn filters_search_dates_and_paging_find_the_right_events() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(
        &merchant,
        json!({"url": receiver.url("/hook"), "events": ["payment.*"]}),
    )
    .await;
    let invoices = gw.ingest_invoices(&merchant, "in_", 3).await;
    let paid = pay(&gw, &merchant, 2500, "INV-42").await;
    let other = pay(&gw, &merchant, 700, "INV-420").await;
    receiver.wait_for(2, WAIT).await;
    receiver.respond_with(Reply::status(500));
    let failing = pay(&gw, &merchant, 900, "INV-7").await;
    receiver.wait_for(3, WAIT).await;

    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let (_, events) = gw.get(&merchant.key, "/v1/events?limit=100").await;
    let event_of = |payment: &Value| {
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["data"]["id"] == payment["id"])
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (paid_event, other_event, failing_event) =
        (event_of(&paid), event_of(&other), event_of(&failing));
    for id in [&paid_event, &other_event, &failing_event] {
        gw.wait_attempts(&merchant, id, "an attempt", |a| !a.is_empty())
            .await;
    }
    let total = events["data"].as_array().unwrap().len();

    // Search: an invoice matches exactly, a payment id too, an event id too.
    let found = listed(&browser.page("/dashboard/events?q=INV-42").await);
    assert_eq!(found, vec![paid_event.clone()]);
    let pay_id = paid["id"].as_str().unwrap();
    let found = listed(&browser.page(&format!("/dashboard/events?q={pay_id}")).await);
    assert_eq!(found, vec![paid_event.clone()]);
    let found = listed(
        &browser
            .page(&format!("/dashboard/events?q={}", invoices[1]))
            .await,
    );
    assert_eq!(found, vec![invoices[1].clone()]);
    assert!(listed(&browser.page("/dashboard/events?q=INV-4").await).is_empty());

    // Type.
    let found = listed(&browser.page("/dashboard/events?type=invoice.paid").await);
    let mut newest_first = invoices.clone();
    newest_first.reverse();
    assert_eq!(found, newest_first);

    // Delivery status: the payments to the endpoint were delivered but the
    // last, which failed and waits for its retry (still pending, failing:
    // retrying); invoices went nowhere.
    let delivered = listed(&browser.page("/dashboard/events?status=delivered").await);
    assert_eq!(delivered, vec![other_event.clone(), paid_event.clone()]);
    for status in ["pending", "retrying", "failed"] {
        let found = listed(
            &browser
                .page(&format!("/dashboard/events?status={status}"))
                .await,
        );
        assert_eq!(found, vec![failing_event.clone()], "{status}");
    }
    assert!(listed(&browser.page("/dashboard/events?status=dead").await).is_empty());

    // Dates: the day they were made, and the days around it.
    let created = &events["data"][0]["created_at"];
    let day = time::OffsetDateTime::parse(
        created.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .date();
    let (before, after) = (day.previous_day().unwrap(), day.next_day().unwrap());
    let all = listed(
        &browser
            .page(&format!("/dashboard/events?from={day}&to={day}"))
            .await,
    );
    assert_eq!(all.len(), total);
    assert!(
        listed(
            &browser
                .page(&format!("/dashboard/events?from={after}"))
                .await
        )
        .is_empty()
    );
    assert!(
        listed(
            &browser
                .page(&format!("/dashboard/events?to={before}"))
                .await
        )
        .is_empty()
    );
    let bad = browser.page("/dashboard/events?from=yesterday").await;
    assert!(bad.contains("YYYY-MM-DD"), "{bad}");

    // Filters combine.
    let found = listed(
        &browser
            .page(&format!(
                "/dashboard/events?type=payment.completed&status=delivered&q=INV-420&from={day}"
            ))
            .await,
    );
    assert_eq!(found, vec![other_event]);

    // Live mode refreshes its rows and pager (live.js), or without script
    // reloads.
    let live = browser.page("/dashboard/events?live=1").await;
    assert!(
        live.contains("<div id=\"event-list\" data-live=\"5\">"),
        "{live}"
    );
    assert!(
        live.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"),
        "{live}"
    );
    let still = browser.page("/dashboard/events").await;
    assert!(!still.contains("http-equiv") && !still.contains("data-live"));
    assert!(still.contains("<tbody id=\"event-rows\">"), "{still}");
}

/// The href of a list page's Older link.
fn older_link(body: &str) -> String {
    body.split("id=\"older\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an Older link")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_list_pages_fifty_at_a_time() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("busy").await;
    let mut ids = gw.ingest_invoices(&merchant, "in_", 50).await;
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    // Live, the rows and the pager are one refreshed region: the Older
    // link appears once the list outgrows a page, and follows its rows.
    let live = browser
        .page("/dashboard/events?type=invoice.paid&live=1")
        .await;
    let list = fragment(&live, "event-list", "</main>");
    assert!(
        list.starts_with("id=\"event-list\" data-live=\"5\""),
        "{list}"
    );
    assert_eq!(listed(list).len(), 50);
    assert!(!list.contains("id=\"older\""), "one page: {list}");
    ids.extend(gw.ingest_invoices(&merchant, "in_more_", 3).await);
    let live = browser
        .page("/dashboard/events?type=invoice.paid&live=1")
        .await;
    let list = fragment(&live, "event-list", "</main>");
    assert_eq!(listed(list)[0], ids[52]);
    let older = older_link(list);
    assert_eq!(
        listed(&browser.page(&older).await),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );

    let first = browser.page("/dashboard/events?type=invoice.paid").await;
    let page_one = listed(&first);
    assert_eq!(page_one.len(), 50);
    assert_eq!(page_one[0], ids[52]);
    let older = older_link(&first);
    assert!(older.contains("type=invoice.paid"), "filters kept: {older}");
    let second = browser.page(&older).await;
    assert_eq!(
        listed(&second),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert!(!second.contains("id=\"older\""));
}

#[tokio::test]
async fn an_event_page_shows_payload_headers_and_attempts_and_resend_makes_another() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&merchant, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(
            &merchant,
            "invoice.paid",
            json!({"id": "in_1", "note": "a \"quoted\" note"}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    gw.wait_attempts(&merchant, id, "the first attempt", |a| a.len() == 1)
        .await;

    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let path = format!("/dashboard/events/{id}");
    let body = browser.page(&path).await;
    // Pretty-printed (one field a line), escaped.
    assert!(
        body.contains("\n  &quot;type&quot;: &quot;invoice.paid&quot;,\n"),
        "{body}"
    );
    assert!(body.contains("a \\&quot;quoted\\&quot; note"), "{body}");
    // The headers the delivery carried, exactly.
    let sent = &received[0];
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let line = format!("{name}: {}", sent.header(name).unwrap());
        assert!(body.contains(&line), "{line} in {body}");
    }
    assert_eq!(body.matches("<tr class=\"attempt\">").count(), 1);
    assert!(body.contains("succeeded"));

    let resent = browser.post(&format!("{path}/resend"), &[]).await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER, "{}", resent.body);
    assert_eq!(resent.location(), format!("{path}?done=resent"));
    receiver.wait_for(2, WAIT).await;
    gw.wait_attempts(&merchant, id, "the resend's attempt", |a| a.len() == 2)
        .await;
    let body = browser.page(&format!("{path}?done=resent")).await;
    assert!(body.contains("id=\"notice\""), "{body}");
    assert_eq!(body.matches("<tr class=\"attempt\">").count(), 2);

    // Resend to one endpoint refuses as the API does.
    let other = gw
        .endpoint(
            &merchant,
            json!({"url": receiver.url("/payments"), "events": ["payment.*"]}),
        )
        .await;
    let refused = browser
        .post(
            &format!("{path}/resend"),
            &[("endpoint_id", other.id.as_str())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("does not subscribe to invoice.paid"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn posts_from_another_site_are_refused() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let endpoint = gw
        .endpoint(&merchant, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&merchant, id, "the first attempt", |a| a.len() == 1)
        .await;
    let browser = Browser::signed_in(&gw, &merchant.key).await;

    let evil = Some("http://evil.example");
    let resend = format!("/dashboard/events/{id}/resend");
    let disable = format!("/dashboard/endpoints/{}/disable", endpoint.id);
    for (path, origin) in [
        (&resend, evil),
        (&resend, None),
        (&resend, Some("null")),
        (&disable, evil),
    ] {
        let page = browser.post_from(path, &[], origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} from {origin:?}");
    }
    let login = Browser::new(&gw)
        .post_from("/dashboard/login", &[("api_key", &merchant.key)], evil)
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(login.headers.get(SET_COOKIE).is_none());

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.attempts(&merchant, id).await.len(), 1, "nothing resent");
    let (_, ep) = gw
        .get(&merchant.key, &format!("/v1/endpoints/{}", endpoint.id))
        .await;
    assert_eq!(ep["status"], "enabled");

    // A Referer from the gateway itself is enough when there is no Origin.
    let page = browser
        .send(
            browser
                .client
                .post(format!("{}{resend}", gw.url))
                .header("referer", format!("{}/dashboard/events/{id}", gw.url)),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[tokio::test]
async fn endpoints_show_their_health_and_can_be_disabled_enabled_and_rotated() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    let endpoint = gw
        .endpoint(
            &merchant,
            json!({"url": receiver.url("/hook"), "description": "main hook"}),
        )
        .await;
    receiver.respond_with(Reply::status(503));
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(&merchant, id, "a failed attempt", |a| a.len() == 1)
        .await;

    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let body = browser.page("/dashboard/endpoints").await;
    assert!(body.contains(&endpoint.id), "{body}");
    // (0 of 1, or of 2 if the 5 s retry came already)
    assert!(body.contains("<strong>0.0 %</strong> of "), "{body}");
    assert!(body.contains("endpoint answered 503"), "{body}");
    assert!(body.contains("1 pending"), "{body}");
    assert!(body.contains("main hook"));

    let disable = format!("/dashboard/endpoints/{}/disable", endpoint.id);
    let page = browser.post(&disable, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/dashboard/endpoints?done=disabled");
    let (_, ep) = gw
        .get(&merchant.key, &format!("/v1/endpoints/{}", endpoint.id))
        .await;
    assert_eq!(ep["status"], "disabled");
    assert_eq!(ep["disabled_reason"], "manual");
    let body = browser.page("/dashboard/endpoints?done=disabled").await;
    assert!(body.contains("disabled by hand"), "{body}");
    assert!(
        body.contains("1 failed"),
        "its pending delivery failed: {body}"
    );
    assert!(body.contains("id=\"notice\""));

    // Resending to a disabled endpoint is refused with the API's words.
    let refused = browser
        .post(
            &format!("/dashboard/events/{id}/resend"),
            &[("endpoint_id", &endpoint.id)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused
            .body
            .contains("enable the endpoint before resending to it")
    );

    let page = browser
        .post(&format!("/dashboard/endpoints/{}/enable", endpoint.id), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (_, ep) = gw
        .get(&merchant.key, &format!("/v1/endpoints/{}", endpoint.id))
        .await;
    assert_eq!(ep["status"], "enabled");

    // Recover puts the failed delivery back: the endpoint now answers 200.
    receiver.respond_with(Reply::ok());
    let since = time::OffsetDateTime::now_utc()
        .date()
        .previous_day()
        .unwrap()
        .to_string();
    let page = browser
        .post(
            &format!("/dashboard/endpoints/{}/recover", endpoint.id),
            &[("since", &since)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    gw.wait_attempts(&merchant, id, "the recovered attempt", |a| {
        a.last().is_some_and(|a| a["status"] == "succeeded")
    })
    .await;

    let page = browser
        .post(
            &format!("/dashboard/endpoints/{}/rotate-secret", endpoint.id),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let secret = page
        .body
        .split("<code id=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap();
    assert!(
        secret.starts_with("whsec_") && secret != endpoint.secret,
        "{secret}"
    );
    // The next message is signed with the new secret.
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_2"}))
        .await;
    let last = arrival(&receiver, event["id"].as_str().unwrap()).await;
    common::verify_signed(&last, secret);
    // A second rotation at once (a double click) is refused: it would drop
    // the secret receivers still check.
    let again = browser
        .post(
            &format!("/dashboard/endpoints/{}/rotate-secret", endpoint.id),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        again.body.contains("less than a minute ago"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn payment_buttons_refund_and_charge_back_and_show_the_apis_refusals() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&merchant, json!({"url": receiver.url("/hook")}))
        .await;
    let payment = pay(&gw, &merchant, 1999, "order-1").await;
    let id = payment["id"].as_str().unwrap();
    let browser = Browser::signed_in(&gw, &merchant.key).await;

    let list = browser.page("/dashboard/payments").await;
    assert!(list.contains(id) && list.contains("19.99 USD"), "{list}");
    let found = browser.page("/dashboard/payments?q=order-1").await;
    assert!(found.contains(id));

    assert!(
        !browser
            .page("/dashboard/payments?q=order-2")
            .await
            .contains(id)
    );

    let page = browser
        .post(
            &format!("/dashboard/payments/{id}/refunds"),
            &[("amount", "5.00")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, after) = gw.get(&merchant.key, &format!("/v1/payments/{id}")).await;
    assert_eq!(after["refunded_amount"], 500);
    assert_eq!(
        after["status"], "completed",
        "a refund is a payment of its own"
    );
    let (_, events) = gw
        .get(&merchant.key, "/v1/events?type=payment.refunded")
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    receiver.wait_for(2, WAIT).await;
    let body = browser
        .page(&format!("/dashboard/payments/{id}?done=refunds"))
        .await;
    assert!(body.contains("id=\"refunded\">5.00 USD"), "{body}");
    assert!(
        body.contains("<table id=\"children\">"),
        "the refund is listed: {body}"
    );
    assert!(body.contains("payment.refunded"), "{body}");

    // Too much: refused, nothing changes, the API's own message shown.
    let (status, api_error) = gw
        .post(
            &merchant.key,
            &format!("/v1/payments/{id}/refunds"),
            json!({"amount": 10000}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = api_error["error"]["message"].as_str().unwrap();
    let page = browser
        .post(
            &format!("/dashboard/payments/{id}/refunds"),
            &[("amount", "100.00")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains(&html_escape(message)),
        "{message} in {}",
        page.body
    );
    let bad = browser
        .post(
            &format!("/dashboard/payments/{id}/refunds"),
            &[("amount", "lots")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let page = browser
        .post(&format!("/dashboard/payments/{id}/reverse"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, after) = gw.get(&merchant.key, &format!("/v1/payments/{id}")).await;
    assert_eq!(after["status"], "reversed");
    let (_, events) = gw
        .get(&merchant.key, "/v1/events?type=payment.reversed")
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");

    // The refund form sent twice (a double click) refunds once.
    let other = pay(&gw, &merchant, 1999, "order-dup").await;
    let other = other["id"].as_str().unwrap();
    let page = browser.page(&format!("/dashboard/payments/{other}")).await;
    let action = page
        .split(&format!(
            "action=\"/dashboard/payments/{other}/refunds?nonce="
        ))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|nonce| format!("/dashboard/payments/{other}/refunds?nonce={nonce}"))
        .expect("the refund form carries a nonce");
    let first = browser.post(&action, &[("amount", "1.00")]).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let second = browser.post(&action, &[("amount", "1.00")]).await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    let (_, after) = gw
        .get(&merchant.key, &format!("/v1/payments/{other}"))
        .await;
    assert_eq!(after["refunded_amount"], 100, "one refund: {after}");
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[tokio::test]
async fn every_page_escapes_markup_from_merchants_and_payers() {
    let gw = TestGateway::start().await;
    let evil = "<script>alert(1)</script>";
    let merchant = gw.merchant(evil).await;
    let receiver = Receiver::start().await.unwrap();
    let endpoint = gw
        .endpoint(
            &merchant,
            json!({"url": receiver.url("/hook?x=<script>"), "description": evil}),
        )
        .await;
    let payment = pay(&gw, &merchant, 1000, evil).await;
    let pay_id = payment["id"].as_str().unwrap();
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": evil, "n": evil}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let mut subscription = json!({
        "amount": 999, "currency": "USD", "interval": "month", "invoice": evil,
        "payer": {"email": "ann@example.com", "name": evil},
        "payment_method": {"card_number": "4242424242424242"},
    });
    let (status, body) = gw
        .post(&merchant.key, "/v1/subscriptions", subscription.take())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sub_id = body["id"].as_str().unwrap().to_owned();
    receiver.wait_for(2, WAIT).await;

    let (_, events) = gw
        .get(&merchant.key, "/v1/events?type=payment.completed")
        .await;
    let pay_event = events["data"][0]["id"].as_str().unwrap().to_owned();
    for key in [merchant.key.as_str(), ADMIN_KEY] {
        let browser = Browser::signed_in(&gw, key).await;
        for path in [
            "/dashboard/events".to_owned(),
            format!("/dashboard/events?q={}", urlencode(evil)),
            format!("/dashboard/events/{event_id}"),
            format!("/dashboard/events/{pay_event}"),
            "/dashboard/endpoints".to_owned(),
            "/dashboard/payments".to_owned(),
            format!("/dashboard/payments/{pay_id}"),
            "/dashboard/subscriptions".to_owned(),
            format!("/dashboard/subscriptions/{sub_id}"),
            format!("/dashboard/events/{event_id}/nope"),
        ] {
            let page = browser.get(&path).await;
            assert!(page.status == StatusCode::OK || page.status == StatusCode::NOT_FOUND);
            assert_eq!(
                page.body.matches(LIVE_SCRIPT).count(),
                1,
                "{path}: {}",
                page.body
            );
            assert!(
                !page.body.replace(LIVE_SCRIPT, "").contains("<script"),
                "{path} as {key}: {}",
                page.body
            );
        }
        let search = browser
            .page(&format!("/dashboard/events?q={}", urlencode(evil)))
            .await;
        assert!(
            search.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{search}"
        );
        assert!(listed(&search).contains(&event_id.to_owned()));
        let page = browser.page("/dashboard/subscriptions").await;
        assert!(
            page.contains("&lt;script&gt;"),
            "the invoice is shown, escaped: {page}"
        );
    }
    let _ = endpoint;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The message with this `webhook-id` once it has arrived.
async fn arrival(receiver: &Receiver, id: &str) -> ipn_testkit::Recorded {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = receiver
            .requests()
            .into_iter()
            .find(|r| r.header("webhook-id") == Some(id));
        if let Some(found) = found {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no message {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let gw = TestGateway::start_with(|config| {
        config.public_url = Some("https://gateway.example".to_owned());
    })
    .await;
    let page = Browser::new(&gw)
        .post_from(
            "/dashboard/login",
            &[("api_key", ADMIN_KEY)],
            Some("https://gateway.example"),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let set = page.headers[SET_COOKIE].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
}

#[tokio::test]
async fn signing_in_again_ends_the_earlier_session_and_two_cookies_count_as_none() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let mut browser = Browser::signed_in(&gw, &merchant.key).await;
    let earlier = browser.cookie.clone().unwrap();
    let page = browser.sign_in(&merchant.key).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let now = browser.cookie.clone().unwrap();
    assert_ne!(earlier, now);
    assert_eq!(
        browser.get("/dashboard/events").await.status,
        StatusCode::OK
    );
    // The earlier token no longer opens anything.
    browser.cookie = Some(earlier.clone());
    let page = browser.get("/dashboard/events").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "back to sign-in");
    // A second cookie of the same name (planted beside ours): signed out.
    browser.cookie = Some(format!("{now}; {earlier}"));
    let page = browser.get("/dashboard/events").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "back to sign-in");
    // A method a page does not take is not answered in the API's JSON.
    browser.cookie = Some(now);
    let page = browser.get("/dashboard/logout").await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!page.body.contains("\"error\""), "{}", page.body);
}

async fn subscribe(gw: &TestGateway, merchant: &TestMerchant, invoice: &str) -> String {
    let (status, sub) = gw
        .post(
            &merchant.key,
            "/v1/subscriptions",
            json!({
                "amount": 999, "currency": "USD", "interval": "month",
                "invoice": invoice, "custom": "plan-basic",
                "payer": {"email": "bo@example.com", "name": "Bo Lee"},
                "payment_method": {"card_number": "4242424242424242"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    sub["id"].as_str().unwrap().to_owned()
}

/// The action (with its nonce) of a subscription page's cancel form.
fn cancel_action(body: &str, id: &str, at_period_end: bool) -> String {
    let marker = format!("action=\"/dashboard/subscriptions/{id}/cancel?nonce=");
    let field = format!("name=\"at_period_end\" value=\"{at_period_end}\"");
    body.split(&marker)
        .skip(1)
        .find(|form| form[..form.find("</form>").unwrap()].contains(&field))
        .and_then(|form| form.split('"').next())
        .map(|nonce| format!("/dashboard/subscriptions/{id}/cancel?nonce={nonce}"))
        .unwrap_or_else(|| panic!("no cancel form ({at_period_end}) in {body}"))
}

/// The first event of `event_type`.
async fn first_event(gw: &TestGateway, merchant: &TestMerchant, event_type: &str) -> Value {
    let (_, events) = gw
        .get(&merchant.key, &format!("/v1/events?type={event_type}"))
        .await;
    events["data"][0].clone()
}

#[tokio::test]
async fn a_subscription_page_shows_its_plan_its_payments_and_its_events() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let id = subscribe(&gw, &merchant, "sub-order-1").await;
    let period = first_event(&gw, &merchant, "subscription.payment").await;
    let payment = period["data"]["id"].as_str().unwrap();
    assert!(payment.starts_with("pay_"), "{period}");
    let created = first_event(&gw, &merchant, "subscription.created").await;
    let created = created["id"].as_str().unwrap();
    let browser = Browser::signed_in(&gw, &merchant.key).await;

    let list = browser.page("/dashboard/subscriptions").await;
    assert!(
        list.contains(&format!("href=\"/dashboard/subscriptions/{id}\"")),
        "the list links to the page: {list}"
    );
    let page = browser
        .page(&format!("/dashboard/subscriptions/{id}"))
        .await;
    for fact in [
        "data-status=\"active\"",
        "<dd id=\"plan\">9.99 USD every month</dd>",
        "<dt>Trial</dt><dd>none</dd>",
        "<dd id=\"cycles\">1 / ∞</dd>",
        "<dd id=\"failed-attempts\">0</dd>",
        "···· 4242</dd>",
        "Bo Lee bo@example.com",
        "sub-order-1",
        "plan-basic",
    ] {
        assert!(page.contains(fact), "{fact} in {page}");
    }
    for dated in ["paid-through", "next"] {
        let value = fragment(&page, dated, "</dd>");
        assert!(value.contains(" UTC"), "{dated}: {value}");
    }
    assert!(page.contains("<dt>Next billing</dt>"), "{page}");
    // Its period payment and its events, linked.
    let payments = fragment(&page, "payments", "</table>");
    assert!(
        payments.contains(&format!("href=\"/dashboard/payments/{payment}\"")),
        "{page}"
    );
    assert!(payments.contains("9.99 USD"), "{payments}");
    let events = fragment(&page, "history", "</table>");
    assert!(
        events.contains(&format!("href=\"/dashboard/events/{created}\"")),
        "{page}"
    );
    assert!(events.contains("subscription.payment"), "{events}");
    assert!(page.contains("id=\"cancel-at-period-end\"") && page.contains("id=\"cancel-now\""));
    // The payment's page leads back.
    let paid = browser
        .page(&format!("/dashboard/payments/{payment}"))
        .await;
    assert!(
        paid.contains(&format!("href=\"/dashboard/subscriptions/{id}\"")),
        "{paid}"
    );
}

#[tokio::test]
async fn a_merchant_cancels_a_subscription_from_its_page_as_the_api_would() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let id = subscribe(&gw, &merchant, "sub-1").await;
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let path = format!("/dashboard/subscriptions/{id}");

    let page = browser.page(&path).await;
    let action = cancel_action(&page, &id, true);
    let done = browser.post(&action, &[("at_period_end", "true")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("{path}?done=canceled"));
    let (_, sub) = gw
        .get(&merchant.key, &format!("/v1/subscriptions/{id}"))
        .await;
    assert_eq!(sub["status"], "canceled", "{sub}");
    assert_eq!(sub["cancel_at_period_end"], true, "{sub}");
    let canceled = gw
        .get(&merchant.key, "/v1/events?type=subscription.canceled")
        .await
        .1;
    assert_eq!(canceled["data"].as_array().unwrap().len(), 1, "{canceled}");
    assert_eq!(canceled["data"][0]["data"]["id"], id.as_str());

    let page = browser.page(&format!("{path}?done=canceled")).await;
    let notice = fragment(&page, "notice", "</div>");
    assert!(
        notice.contains("Canceled; access lasts until 20"),
        "{notice}"
    );
    assert!(page.contains("data-status=\"canceled\""), "{page}");
    // Canceled at period end: only ending it now is left to offer.
    let actions = fragment(&page, "subscription-actions", "</main>");
    assert!(actions.contains("id=\"cancel-now\""), "{page}");
    assert!(!actions.contains("id=\"cancel-at-period-end\""), "{page}");
    // The same form sent again (a double click) does nothing more.
    let again = browser.post(&action, &[("at_period_end", "true")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // Refused as the API refuses, with its status and words.
    let (status, api_error) = gw
        .post(
            &merchant.key,
            &format!("/v1/subscriptions/{id}/cancel"),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = api_error["error"]["message"].as_str().unwrap();
    let refused = browser
        .post(&format!("{path}/cancel"), &[("at_period_end", "true")])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains(&html_escape(message)),
        "{message} in {}",
        refused.body
    );
    let bad = browser
        .post(&format!("{path}/cancel"), &[("at_period_end", "soon")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let canceled = gw
        .get(&merchant.key, "/v1/events?type=subscription.canceled")
        .await
        .1;
    assert_eq!(canceled["data"].as_array().unwrap().len(), 1, "still one");

    // Cancel now, after canceling at period end: access ends at once.
    let page = browser.page(&path).await;
    let ended = browser
        .post(
            &cancel_action(&page, &id, false),
            &[("at_period_end", "false")],
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.body);
    let (_, sub) = gw
        .get(&merchant.key, &format!("/v1/subscriptions/{id}"))
        .await;
    assert_eq!(sub["status"], "expired", "{sub}");
    let page = browser.page(ended.location()).await;
    assert!(
        fragment(&page, "notice", "</div>").contains("Canceled now"),
        "{page}"
    );
    assert!(!page.contains("id=\"cancel-now\""), "nothing left: {page}");

    // Cancel now: access ends at once.
    let other = subscribe(&gw, &merchant, "sub-2").await;
    let page = browser
        .page(&format!("/dashboard/subscriptions/{other}"))
        .await;
    let now = browser
        .post(
            &cancel_action(&page, &other, false),
            &[("at_period_end", "false")],
        )
        .await;
    assert_eq!(now.status, StatusCode::SEE_OTHER, "{}", now.body);
    let (_, sub) = gw
        .get(&merchant.key, &format!("/v1/subscriptions/{other}"))
        .await;
    assert_eq!(sub["status"], "expired", "{sub}");
    let page = browser.page(now.location()).await;
    assert!(
        fragment(&page, "notice", "</div>").contains("Canceled now"),
        "{page}"
    );
}

#[tokio::test]
async fn only_the_merchant_from_the_gateways_pages_cancels_its_subscription() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let stranger = gw.merchant("stranger").await;
    let id = subscribe(&gw, &merchant, "sub-1").await;
    let path = format!("/dashboard/subscriptions/{id}");
    let cancel = format!("{path}/cancel");
    let form = [("at_period_end", "false")];
    let still_active = || async {
        let (_, sub) = gw
            .get(&merchant.key, &format!("/v1/subscriptions/{id}"))
            .await;
        assert_eq!(sub["status"], "active", "{sub}");
    };

    let browser = Browser::signed_in(&gw, &merchant.key).await;
    for origin in [Some("http://evil.example"), None] {
        let page = browser.post_from(&cancel, &form, origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "from {origin:?}");
    }
    still_active().await;

    let admin = Browser::signed_in(&gw, ADMIN_KEY).await;
    let page = admin.page(&path).await;
    assert!(page.contains("data-status=\"active\""), "{page}");
    assert!(!page.contains("/cancel?nonce="), "read-only: {page}");
    let refused = admin.post(&cancel, &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    still_active().await;

    // Another merchant's id is as unknown as a made-up one.
    let other = Browser::signed_in(&gw, &stranger.key).await;
    let theirs = other.get(&path).await;
    let unknown = other.get("/dashboard/subscriptions/sub_nonsense").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.body, unknown.body);
    assert!(!theirs.body.contains("sub-1"));
    let page = other.post(&cancel, &form).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    still_active().await;
}

#[tokio::test]
async fn live_js_is_served_and_pages_run_no_other_script() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let anyone = Browser::new(&gw);
    let script = anyone.get("/dashboard/live.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers["x-content-type-options"], "nosniff");
    assert_eq!(script.headers["cache-control"], "no-cache");
    assert!(script.body.contains("data-live") && script.body.contains("DOMParser"));
    let etag = script.headers["etag"].to_str().unwrap().to_owned();
    let unchanged = anyone
        .send(
            anyone
                .client
                .get(format!("{}/dashboard/live.js", gw.url))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

    let login = anyone.get("/dashboard/login").await;
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let events = browser.get("/dashboard/events").await;
    for page in [&login, &events] {
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert_eq!(directive(csp, "script-src"), "script-src 'self'", "{csp}");
        assert_eq!(directive(csp, "connect-src"), "connect-src 'self'", "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert!(page.body.contains(LIVE_SCRIPT), "{}", page.body);
        assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    }
}

#[tokio::test]
async fn pages_mark_what_refreshes_and_a_second_get_shows_what_is_new() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500));
    gw.endpoint(
        &merchant,
        json!({"url": receiver.url("/hook"), "events": ["payment.*"]}),
    )
    .await;
    let browser = Browser::signed_in(&gw, &merchant.key).await;

    // The live events list: its rows, refreshed, show an event made since.
    let first = browser.page("/dashboard/events?live=1").await;
    let list = fragment(&first, "event-list", "</main>");
    assert!(
        list.starts_with("id=\"event-list\" data-live=\"5\""),
        "{list}"
    );
    let rows = fragment(list, "event-rows", "</tbody>");
    assert!(rows.contains("id=\"no-events\""), "{rows}");
    let invoice = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_1"}))
        .await;
    let invoice = invoice["id"].as_str().unwrap();
    let second = browser.page("/dashboard/events?live=1").await;
    let rows = fragment(&second, "event-rows", "</tbody>");
    assert_eq!(listed(rows), vec![invoice.to_owned()]);

    // An event's deliveries refresh while one is pending, and show its
    // attempts as they come; with none pending, nothing refreshes.
    let payment = pay(&gw, &merchant, 1200, "order-1").await;
    let pay_id = payment["id"].as_str().unwrap();
    let pay_event = first_event(&gw, &merchant, "payment.completed").await;
    let pay_event = pay_event["id"].as_str().unwrap();
    gw.wait_attempts(&merchant, pay_event, "a failed attempt", |a| a.len() == 1)
        .await;
    let page = browser
        .page(&format!("/dashboard/events/{pay_event}"))
        .await;
    let delivery = fragment(&page, "delivery", "</main>");
    assert!(
        delivery.starts_with("id=\"delivery\" data-live=\"3\""),
        "{page}"
    );
    assert_eq!(delivery.matches("<tr class=\"attempt\">").count(), 1);
    let page = browser.page(&format!("/dashboard/events/{invoice}")).await;
    assert!(
        page.contains("<div id=\"delivery\">"),
        "no delivery: {page}"
    );

    let endpoints = browser.page("/dashboard/endpoints").await;
    assert!(
        endpoints.contains("<div id=\"endpoint-list\" data-live=\"10\">"),
        "{endpoints}"
    );

    // A payment's facts, buttons and history; a refund shows on the next
    // GET.
    let path = format!("/dashboard/payments/{pay_id}");
    let page = browser.page(&path).await;
    for id in ["payment-facts", "payment-actions", "payment-history"] {
        assert!(
            page.contains(&format!("id=\"{id}\" data-live=\"10\"")),
            "{id}: {page}"
        );
    }
    assert!(!fragment(&page, "payment-history", "</main>").contains("payment.refunded"));
    let (status, _) = gw
        .post(
            &merchant.key,
            &format!("/v1/payments/{pay_id}/refunds"),
            json!({"amount": 200}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let page = browser.page(&path).await;
    assert!(
        fragment(&page, "payment-history", "</main>").contains("payment.refunded"),
        "{page}"
    );
    assert!(fragment(&page, "payment-facts", "</dl>").contains("2.00 USD"));
    // The answer to a refused form is at the POST's URL: nothing refreshes.
    let refused = browser
        .post(&format!("{path}/refunds"), &[("amount", "500.00")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(!refused.body.contains("data-live"), "{}", refused.body);

    // A subscription's facts and history; a cancel through the API shows.
    let id = subscribe(&gw, &merchant, "sub-1").await;
    let path = format!("/dashboard/subscriptions/{id}");
    let page = browser.page(&path).await;
    for live in [
        "subscription-facts",
        "subscription-actions",
        "subscription-history",
    ] {
        assert!(
            page.contains(&format!("id=\"{live}\" data-live=\"10\"")),
            "{live}: {page}"
        );
    }
    let (status, _) = gw
        .post(
            &merchant.key,
            &format!("/v1/subscriptions/{id}/cancel"),
            json!({"at_period_end": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = browser.page(&path).await;
    assert!(fragment(&page, "subscription-facts", "</dl>").contains("data-status=\"canceled\""));
    let actions = fragment(&page, "subscription-actions", "</main>");
    assert!(
        actions.contains("id=\"cancel-now\"") && !actions.contains("id=\"cancel-at-period-end\""),
        "{page}"
    );
    assert!(
        fragment(&page, "subscription-history", "</main>").contains("subscription.canceled"),
        "{page}"
    );
}

#[tokio::test]
async fn an_event_page_refreshes_as_often_as_its_next_attempt_calls_for() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500));
    gw.endpoint(&merchant, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    let path = format!("/dashboard/events/{id}");
    let browser = Browser::signed_in(&gw, &merchant.key).await;

    // One failed attempt: the next is 5 s away.
    gw.wait_attempts(&merchant, id, "the first attempt", |a| a.len() == 1)
        .await;
    let page = browser.page(&path).await;
    let delivery = fragment(&page, "delivery", ">");
    assert_eq!(delivery, "id=\"delivery\" data-live=\"3\"", "{page}");
    // Two: the next is about 5 min away, no reason to ask every 3 s.
    gw.advance(7).await;
    gw.wait_attempts(&merchant, id, "the second attempt", |a| a.len() == 2)
        .await;
    let page = browser.page(&path).await;
    let delivery = fragment(&page, "delivery", ">");
    assert_eq!(delivery, "id=\"delivery\" data-live=\"30\"", "{page}");
}

#[tokio::test]
async fn a_payments_buttons_refresh_with_its_state() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let payment = pay(&gw, &merchant, 1999, "order-1").await;
    let id = payment["id"].as_str().unwrap();
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let path = format!("/dashboard/payments/{id}");

    let page = browser.page(&path).await;
    let actions = fragment(&page, "payment-actions", "</main>");
    assert!(
        actions.starts_with("id=\"payment-actions\" data-live=\"10\""),
        "{page}"
    );
    for button in ["id=\"refund\"", "id=\"reverse\"", "name=\"amount\""] {
        assert!(actions.contains(button), "{button} in {actions}");
    }
    assert!(!actions.contains("id=\"cancel-reversal\""), "{actions}");
    // A chargeback through the API: the next refresh offers to cancel it.
    let (status, body) = gw
        .post(
            &merchant.key,
            &format!("/v1/payments/{id}/reverse"),
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let page = browser.page(&path).await;
    let actions = fragment(&page, "payment-actions", "</main>");
    assert!(actions.contains("id=\"cancel-reversal\""), "{actions}");
}

#[tokio::test]
async fn a_subscription_page_lists_its_newest_events_and_links_to_all() {
    let gw = TestGateway::start().await;
    let merchant = gw.merchant("shop").await;
    let id = subscribe(&gw, &merchant, "sub-1").await;
    // Platform events about it too: more than a page lists.
    let mut ingested = Vec::new();
    for _ in 0..101 {
        let event = gw
            .ingest(&merchant, "invoice.paid", json!({"id": id}))
            .await;
        ingested.push(event["id"].as_str().unwrap().to_owned());
    }
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let page = browser
        .page(&format!("/dashboard/subscriptions/{id}"))
        .await;
    let history = fragment(&page, "history", "</table>");
    let shown: Vec<&str> = history
        .split("<a href=\"/dashboard/events/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(shown.len(), 100, "{history}");
    assert_eq!(shown[0], ingested[1], "the newest 100, oldest first");
    assert_eq!(shown[99], ingested[100]);
    let cut = fragment(&page, "history-cut", "</p>");
    assert!(
        cut.contains(&format!("href=\"/dashboard/events?q={id}\"")),
        "{cut}"
    );
}

#[tokio::test]
async fn a_failing_delivery_waiting_for_a_retry_shows_retrying_and_is_found_by_failed() {
    let gw = TestGateway::start_with(|c| {
        c.delivery.retry.delays = vec![std::time::Duration::from_secs(60)];
    })
    .await;
    let merchant = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::status(500));
    gw.endpoint(&merchant, json!({"url": receiver.url("/hook")}))
        .await;
    let event = gw
        .ingest(&merchant, "invoice.paid", json!({"id": "in_1"}))
        .await;
    let id = event["id"].as_str().unwrap();
    let browser = Browser::signed_in(&gw, &merchant.key).await;
    let api_listed = |filter: &'static str| {
        let gw = &gw;
        let merchant = &merchant;
        async move {
            let list = gw
                .list_events(merchant, &format!("?delivery={filter}"))
                .await;
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };

    // One failed attempt, one to come.
    gw.wait_attempts(&merchant, id, "the first attempt", |a| a.len() == 1)
        .await;
    let page = browser.page(&format!("/dashboard/events/{id}")).await;
    let deliveries = fragment(&page, "deliveries", "</table>");
    assert!(deliveries.contains(">retrying</span>"), "{deliveries}");
    let list = browser.page("/dashboard/events").await;
    let rows = fragment(&list, "event-rows", "</tbody>");
    assert!(rows.contains(">retrying</span>"), "{rows}");
    let filtered = browser.page("/dashboard/events?status=failed").await;
    assert!(filtered.contains(id), "the failed filter finds it");
    assert_eq!(api_listed("failed").await, [id]);
    assert_eq!(api_listed("retrying").await, [id]);
    assert_eq!(api_listed("pending").await, [id]);
    assert!(api_listed("dead").await.is_empty());

    // The last attempt fails too: a dead letter, found by failed and dead.
    gw.advance(120).await;
    gw.wait_attempts(&merchant, id, "the last attempt", |a| a.len() == 2)
        .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while api_listed("dead").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never dead");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(api_listed("failed").await, [id]);
    assert!(api_listed("retrying").await.is_empty());
    let page = browser.page(&format!("/dashboard/events/{id}")).await;
    let deliveries = fragment(&page, "deliveries", "</table>");
    assert!(deliveries.contains(">failed</span>"), "{deliveries}");

    let (status, body) = gw.get(&merchant.key, "/v1/events?delivery=stuck").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retrying"),
        "{body}"
    );
}
