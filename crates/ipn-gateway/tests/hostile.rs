//! The hostile corpus: every public route of the gateway (the API, the
//! postback, the checkout page and its form, the dashboard's forms, the
//! operations routes) gets at least 100 malformed or malicious requests:
//! bodies that are not what the route takes (invalid UTF-8, other content
//! types, 100,000-deep nesting, 300 KiB strings), fields of the wrong type,
//! injections in fields that are checked, ids of every wrong shape and of
//! another merchant, missing and wrong keys, huge headers. Each must get a
//! 4xx that says what is wrong (the API's `{"error": {"code", "message"}}`,
//! a page with the reason, a postback's `INVALID`), never a 5xx, and the
//! database must hold exactly the rows it held before.
//!
//! Injections into free text (a name, an invoice, `custom`) are not errors:
//! they are sent in valid requests too, which must either be refused or
//! keep the text exactly as sent.

mod common;

/// Where the dashboard sends a request without a session.
const SIGN_IN: &str = "/dashboard/login";

use std::collections::BTreeMap;

use common::{ADMIN_KEY, TestGateway, TestMerchant};
use ipn_testkit::hostile::{Answer, INJECTIONS, Shot, bad_ids, bad_json_bodies, wrong_values};
use ipn_testkit::{Receiver, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Everything the corpus aims at: two merchants, each with an endpoint, an
/// event, payments, a subscription and a checkout session.
struct Target {
    gw: TestGateway,
    shop: TestMerchant,
    ids: BTreeMap<&'static str, String>,
    /// The other merchant's ids, which the shop's key must not reach.
    theirs: BTreeMap<&'static str, String>,
    dashboard_cookie: String,
    _receiver: Receiver,
}

async fn objects(
    gw: &TestGateway,
    merchant: &TestMerchant,
    receiver: &Receiver,
) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let endpoint = gw
        .endpoint(merchant, json!({"url": receiver.url("/hooks")}))
        .await;
    ids.insert("endpoint", endpoint.id);
    let event = gw
        .ingest(merchant, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    ids.insert("event", event["id"].as_str().unwrap().to_owned());
    let pay = |card: &str| {
        json!({"amount": 1999, "currency": "USD", "invoice": "order-1",
               "payer": {"email": "ann@example.com", "name": "Ann"},
               "payment_method": {"card_number": card}})
    };
    for (name, card) in [
        ("payment", "4242424242424242"),
        ("pending", "4000000000000077"),
    ] {
        let (status, body) = gw.post(&merchant.key, "/v1/payments", pay(card)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.insert(name, body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = gw
        .post(
            &merchant.key,
            "/v1/subscriptions",
            json!({"amount": 999, "currency": "USD", "interval": "month", "invoice": "member-1",
                   "payer": {"email": "ann@example.com"},
                   "payment_method": {"card_number": "4242424242424242"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    ids.insert("subscription", body["id"].as_str().unwrap().to_owned());
    let (status, body) = gw
        .post(
            &merchant.key,
            "/v1/checkout/sessions",
            json!({"invoice": "order-2", "amount": 500, "currency": "USD",
                   "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/no"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    ids.insert("session", body["id"].as_str().unwrap().to_owned());
    ids
}

impl Target {
    async fn start() -> Self {
        // Wrong keys are part of the corpus: the per-address limit (tested
        // on its own in api.rs) would answer the rest with 429 unread.
        let gw = TestGateway::start_with(|c| c.key_failure_limit = u32::MAX).await;
        let receiver = Receiver::start().await.unwrap();
        receiver.respond_with(Reply::ok());
        let shop = gw.merchant("shop").await;
        let other = gw.merchant("other").await;
        let ids = objects(&gw, &shop, &receiver).await;
        let theirs = objects(&gw, &other, &receiver).await;
        // Every delivery made, so that nothing changes the tables but the corpus.
        for (merchant, ids) in [(&shop, &ids), (&other, &theirs)] {
            let event = &ids["event"];
            gw.wait_attempts(merchant, event, "delivered", |a| !a.is_empty())
                .await;
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = client
            .post(format!("{}/dashboard/login", gw.url))
            .header("origin", &gw.url)
            .form(&[("api_key", shop.key.as_str())])
            .send()
            .await
            .unwrap();
        let dashboard_cookie = signed_in.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Self {
            gw,
            shop,
            ids,
            theirs,
            dashboard_cookie,
            _receiver: receiver,
        }
    }
}

/// Request headers, name and value.
type Headers = Vec<(String, String)>;

fn bearer(key: &str) -> Headers {
    vec![
        ("authorization".to_owned(), format!("Bearer {key}")),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
}

/// Keys that are no key: missing, empty, wrong, in the wrong scheme, huge.
fn bad_auth() -> Vec<(&'static str, Vec<(String, String)>)> {
    let header = |value: String| vec![("authorization".to_owned(), value)];
    vec![
        ("no Authorization", Vec::new()),
        ("empty bearer", header("Bearer ".to_owned())),
        ("wrong key", header("Bearer sk_not_a_key_at_all".to_owned())),
        ("Basic scheme", header("Basic YWRtaW46YWRtaW4=".to_owned())),
        ("scheme only", header("Bearer".to_owned())),
        (
            "huge key",
            header(format!("Bearer {}", "k".repeat(16 * 1024))),
        ),
        ("key with spaces", header("Bearer a b c".to_owned())),
        ("non-ASCII key", header("Bearer clé-é".to_owned())),
    ]
}

/// Shots at a route that takes `template` as its JSON body: bad bodies,
/// every field of the wrong kind, unknown fields, injections in the
/// fields that are checked, and bad keys. `id` fills `{id}` in `path`.
fn json_shots(
    route: &'static str,
    method: Method,
    path: &str,
    key: &str,
    template: &Value,
    checked: &[&str],
) -> Vec<Shot> {
    // An event's `data` takes any JSON: it is not a field of a fixed kind.
    let free = ["data"];
    let shot = |what: String, headers: Vec<(String, String)>, body: Vec<u8>| Shot {
        route,
        answer: Answer::Api,
        method: method.clone(),
        path: path.to_owned(),
        headers,
        body: Some(body),
        what,
    };
    let mut shots = Vec::new();
    for (what, body) in bad_json_bodies() {
        shots.push(shot(format!("body: {what}"), bearer(key), body.clone()));
        let mut other_type = bearer(key);
        other_type[1].1 = "text/plain; charset=utf-16".to_owned();
        shots.push(shot(
            format!("body as text/plain: {what}"),
            other_type,
            body.clone(),
        ));
        let untyped = bearer(key)[..1].to_vec();
        shots.push(shot(
            format!("body without a content type: {what}"),
            untyped,
            body,
        ));
    }
    let fields: Vec<String> = template
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for field in fields.iter().filter(|f| !free.contains(&f.as_str())) {
        let original = &template[field];
        for (what, value) in wrong_values() {
            // Only values of another JSON kind are wrong whatever the field.
            let same_kind = std::mem::discriminant(original) == std::mem::discriminant(&value)
                || value.is_null();
            if same_kind {
                continue;
            }
            let mut body = template.clone();
            body[field.as_str()] = value;
            shots.push(shot(
                format!("{field}: {what}"),
                bearer(key),
                body.to_string().into_bytes(),
            ));
        }
    }
    for field in checked {
        for injection in INJECTIONS {
            let mut body = template.clone();
            set_path(&mut body, field, json!(injection));
            shots.push(shot(
                format!("{field}: {injection:?}"),
                bearer(key),
                body.to_string().into_bytes(),
            ));
        }
    }
    let mut unknown = template.clone();
    unknown["__proto__"] = json!({"admin": true});
    shots.push(shot(
        "unknown field".into(),
        bearer(key),
        unknown.to_string().into_bytes(),
    ));
    for (what, mut headers) in bad_auth() {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
        shots.push(shot(
            format!("auth: {what}"),
            headers,
            template.to_string().into_bytes(),
        ));
    }
    let mut huge = bearer(key);
    huge.push(("x-padding".to_owned(), "p".repeat(60 * 1024)));
    shots.push(shot("huge header, empty body".into(), huge, Vec::new()));
    let mut idem = bearer(key);
    idem.push(("idempotency-key".to_owned(), "i".repeat(4096)));
    shots.push(shot("4 KiB Idempotency-Key".into(), idem, b"[]".to_vec()));
    shots
}

/// Sets `a.b.c` in a JSON object.
fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut at = value;
    for part in path.split('.') {
        at = match part.parse::<usize>() {
            Ok(index) => &mut at[index],
            Err(_) => &mut at[part],
        };
    }
    *at = new;
}

/// Shots at a route with an id in its path: every bad id, another
/// merchant's id, crossed with bad keys, odd headers, a junk query and a
/// junk body, so even a route with nothing else to parse gets its hundred.
fn id_shots(
    route: &'static str,
    method: Method,
    path: &str,
    prefix: &str,
    key: &str,
    theirs: &str,
    body: Option<&[u8]>,
) -> Vec<Shot> {
    let mut ids = bad_ids(prefix);
    ids.push(theirs.to_owned());
    let variants: Vec<(&str, Headers, String)> = vec![
        ("", bearer(key), String::new()),
        (
            " with a junk query",
            bearer(key),
            "?limit=-1&after=%FF&type=%3Cx%3E".to_owned(),
        ),
        (
            " with huge headers",
            {
                let mut h = bearer(key);
                h.push(("x-padding".to_owned(), "p".repeat(32 * 1024)));
                h.push(("accept".to_owned(), "text/html;q=0.1, */*".repeat(64)));
                h
            },
            String::new(),
        ),
        (" with a wrong key", bearer("sk_wrong"), String::new()),
        (" with no key", Vec::new(), String::new()),
        (" with the admin key", bearer(ADMIN_KEY), String::new()),
        (
            " with a form content type",
            {
                let mut h = bearer(key);
                h[1].1 = "application/x-www-form-urlencoded".to_owned();
                h
            },
            String::new(),
        ),
    ];
    let mut shots = Vec::new();
    for id in &ids {
        for (variant, headers, query) in &variants {
            shots.push(Shot {
                route,
                answer: Answer::Api,
                method: method.clone(),
                path: format!("{}{query}", path.replace("{id}", id)),
                headers: headers.clone(),
                body: body.map(<[u8]>::to_vec),
                what: format!("id {:?}{variant}", &id[..id.len().min(40)]),
            });
        }
    }
    shots
}

/// Shots for a route that takes no id and no body (a list, an operations
/// route): wrong methods, junk queries, bad keys.
fn read_shots(route: &'static str, path: &str, key: Option<&str>, answer: Answer) -> Vec<Shot> {
    let queries = [
        "?limit=0",
        "?limit=-1",
        "?limit=1001",
        "?limit=abc",
        "?limit=1e3",
        "?limit=99999999999999999999",
        "?after=evt_nope",
        "?after=%FF%FE",
        "?after=",
        "?type=%3Cscript%3E",
        "?type=",
        "?delivery=stuck",
        "?delivery=",
        "?endpoint_id=ep_nope",
        "?endpoint_id=%00",
        "?limit=1&limit=2",
        "?unknown=1",
        "?%ZZ=1",
        "?after=evt_01KAZ3NDEKTSV4RRFFQ69G5FAV",
    ];
    let mut shots = Vec::new();
    let headers = key.map(bearer).unwrap_or_default();
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        for (what, body) in bad_json_bodies() {
            shots.push(Shot {
                route,
                answer,
                method: method.clone(),
                path: path.to_owned(),
                headers: headers.clone(),
                body: Some(body),
                what: format!("{method} with {what}"),
            });
        }
    }
    if let Some(key) = key {
        for (what, headers) in bad_auth() {
            for query in ["", "?limit=10", "?after=evt_nope"] {
                shots.push(Shot {
                    route,
                    answer,
                    method: Method::GET,
                    path: format!("{path}{query}"),
                    headers: headers.clone(),
                    body: None,
                    what: format!("GET{query} with {what}"),
                });
            }
        }
        for query in queries {
            for headers in [bearer(key), bearer("sk_wrong"), Vec::new()] {
                shots.push(Shot {
                    route,
                    answer,
                    method: Method::GET,
                    path: format!("{path}{query}"),
                    headers,
                    body: None,
                    what: format!("GET {query}"),
                });
            }
        }
    } else {
        // An unauthenticated read: a wrong method, whatever the body, in
        // every shape a client might send it.
        for (what, body) in bad_json_bodies() {
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                shots.push(Shot {
                    route,
                    answer,
                    method,
                    path: path.to_owned(),
                    headers: Vec::new(),
                    body: Some(body.clone()),
                    what: format!("with {what}"),
                });
            }
        }
    }
    // Keep only what must be refused: a GET with a good key and a query
    // a list takes is an answer, not an error.
    shots.retain(|s| {
        !(s.method == Method::GET
            && s.what == "GET ?after=evt_01KAZ3NDEKTSV4RRFFQ69G5FAV"
            && route != "GET /v1/events")
    });
    shots
}

/// A postback's corpus: bodies that are not a message this gateway sent.
fn postback_shots(route: &'static str, path: &str, sent: &[u8]) -> Vec<Shot> {
    let text = String::from_utf8_lossy(sent).into_owned();
    let mut bodies: Vec<(String, Vec<u8>)> = bad_json_bodies()
        .into_iter()
        .map(|(what, body)| (what.to_owned(), body))
        .collect();
    for injection in INJECTIONS {
        let encoded: String = url::form_urlencoded::byte_serialize(injection.as_bytes()).collect();
        bodies.push((
            format!("custom {injection:?}"),
            format!(
                "cmd=_notify-validate&{}",
                text.replacen("custom=", &format!("custom={encoded}"), 1)
            )
            .into_bytes(),
        ));
        bodies.push((
            format!("a field added: {injection:?}"),
            format!("cmd=_notify-validate&{text}&x={encoded}").into_bytes(),
        ));
    }
    let fields: Vec<&str> = text.split('&').collect();
    for (i, field) in fields.iter().enumerate() {
        let mut without = fields.clone();
        without.remove(i);
        bodies.push((
            format!("without {field}"),
            format!("cmd=_notify-validate&{}", without.join("&")).into_bytes(),
        ));
    }
    for (i, field) in fields.iter().enumerate() {
        let mut changed = fields.clone();
        let name = field.split('=').next().unwrap_or_default();
        let altered = format!("{name}=x{}", field.len());
        changed[i] = &altered;
        bodies.push((
            format!("{name} changed"),
            format!("cmd=_notify-validate&{}", changed.join("&")).into_bytes(),
        ));
    }
    for cmd in [
        "",
        "_notify-synch",
        "_NOTIFY-VALIDATE",
        "_notify-validate%00",
        "_xclick",
    ] {
        bodies.push((
            format!("cmd={cmd:?}"),
            format!("cmd={cmd}&{text}").into_bytes(),
        ));
    }
    bodies.push(("the message without cmd".into(), sent.to_vec()));
    bodies.push((
        "charset unknown".into(),
        format!(
            "cmd=_notify-validate&{}",
            text.replacen("charset=UTF-8", "charset=klingon", 1)
        )
        .into_bytes(),
    ));
    bodies.push((
        "charset UTF-16".into(),
        format!(
            "cmd=_notify-validate&{}",
            text.replacen("charset=UTF-8", "charset=UTF-16", 1)
        )
        .into_bytes(),
    ));
    bodies.push((
        "bad escape".into(),
        format!("cmd=_notify-validate&{text}&a=%G1").into_bytes(),
    ));
    bodies.push((
        "a duplicate field".into(),
        format!("cmd=_notify-validate&{text}&{}", fields[0]).into_bytes(),
    ));
    bodies.push((
        "300 KiB".into(),
        format!("cmd=_notify-validate&{text}&pad={}", "a".repeat(300 * 1024)).into_bytes(),
    ));
    bodies
        .into_iter()
        .map(|(what, body)| Shot {
            route,
            answer: Answer::Postback,
            method: Method::POST,
            path: path.to_owned(),
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: Some(body),
            what,
        })
        .collect()
}

#[tokio::test]
async fn every_route_refuses_the_hostile_corpus_clearly_and_stores_nothing() {
    let t = Target::start().await;
    let key = t.shop.key.as_str();
    let id = |name: &str| t.ids[name].clone();
    let theirs = |name: &str| t.theirs[name].clone();
    let mut shots: Vec<Shot> = Vec::new();

    // The API, route by route.
    shots.extend(json_shots(
        "POST /v1/merchants",
        Method::POST,
        "/v1/merchants",
        ADMIN_KEY,
        &json!({"name": "Shop", "receiver_email": "shop@example.com"}),
        &["receiver_email"],
    ));
    shots.extend(
        read_shots(
            "GET /v1/merchants",
            "/v1/merchants",
            Some(ADMIN_KEY),
            Answer::Api,
        )
        .into_iter()
        .filter(|s| {
            s.method != Method::GET
                || s.headers.is_empty()
                || s.headers[0].1 != format!("Bearer {ADMIN_KEY}")
        })
        .collect::<Vec<_>>(),
    );
    shots.extend(json_shots("POST /v1/endpoints", Method::POST, "/v1/endpoints", key,
        &json!({"url": "https://hooks.example.com/x", "dialect": "standard", "events": ["payment.*"], "ordered": false}),
        &["url", "dialect", "events.0"]));
    shots.extend(
        read_shots("GET /v1/endpoints", "/v1/endpoints", Some(key), Answer::Api)
            .into_iter()
            .filter(|s| {
                s.method != Method::GET
                    || s.headers
                        .first()
                        .is_none_or(|h| h.1 != format!("Bearer {key}"))
            })
            .collect::<Vec<_>>(),
    );
    shots.extend(id_shots(
        "GET /v1/endpoints/{id}",
        Method::GET,
        "/v1/endpoints/{id}",
        "ep_",
        key,
        &theirs("endpoint"),
        None,
    ));
    let endpoint = format!("/v1/endpoints/{}", id("endpoint"));
    shots.extend(json_shots(
        "PATCH /v1/endpoints/{id}",
        Method::PATCH,
        &endpoint,
        key,
        &json!({"url": "https://hooks.example.com/y", "events": ["payment.*"], "ordered": true}),
        &["url", "events.0"],
    ));
    for action in ["disable", "enable", "rotate-secret"] {
        let route: &'static str =
            Box::leak(format!("POST /v1/endpoints/{{id}}/{action}").into_boxed_str());
        // A `{}` would act: only bodies that are not `{}`.
        shots.extend(json_shots(
            route,
            Method::POST,
            &format!("{endpoint}/{action}"),
            key,
            &json!({"x": 1}),
            &[],
        ));
        shots.extend(id_shots(
            route,
            Method::POST,
            &format!("/v1/endpoints/{{id}}/{action}"),
            "ep_",
            key,
            &theirs("endpoint"),
            Some(b"{}"),
        ));
    }
    shots.extend(json_shots(
        "POST /v1/endpoints/{id}/recover",
        Method::POST,
        &format!("{endpoint}/recover"),
        key,
        &json!({"since": "2026-01-01T00:00:00Z"}),
        &["since"],
    ));
    shots.extend(json_shots(
        "POST /v1/events",
        Method::POST,
        "/v1/events",
        key,
        &json!({"type": "invoice.paid", "data": {"id": "inv_2"}}),
        &["type"],
    ));
    shots.extend(
        read_shots("GET /v1/events", "/v1/events", Some(key), Answer::Api)
            .into_iter()
            .filter(|s| {
                s.method != Method::GET
                    || s.headers
                        .first()
                        .is_none_or(|h| h.1 != format!("Bearer {key}"))
                    || ![
                        "?unknown=1",
                        "?limit=1&limit=2",
                        "?type=%3Cscript%3E",
                        "?type=",
                    ]
                    .iter()
                    .any(|q| s.path.ends_with(q))
            })
            .collect::<Vec<_>>(),
    );
    shots.extend(id_shots(
        "GET /v1/events/{id}",
        Method::GET,
        "/v1/events/{id}",
        "evt_",
        key,
        &theirs("event"),
        None,
    ));
    shots.extend(id_shots(
        "GET /v1/events/{id}/attempts",
        Method::GET,
        "/v1/events/{id}/attempts",
        "evt_",
        key,
        &theirs("event"),
        None,
    ));
    shots.extend(json_shots(
        "POST /v1/events/{id}/resend",
        Method::POST,
        &format!("/v1/events/{}/resend", id("event")),
        key,
        &json!({"endpoint_id": id("endpoint")}),
        &["endpoint_id"],
    ));
    shots.extend(id_shots(
        "POST /v1/events/{id}/resend",
        Method::POST,
        "/v1/events/{id}/resend",
        "evt_",
        key,
        &theirs("event"),
        Some(b"{}"),
    ));
    let new_payment = json!({"amount": 1999, "currency": "USD", "invoice": "order-9", "custom": "c",
        "payer": {"email": "ann@example.com", "name": "Ann"},
        "payment_method": {"card_number": "4242424242424242"}});
    shots.extend(json_shots(
        "POST /v1/payments",
        Method::POST,
        "/v1/payments",
        key,
        &new_payment,
        &[
            "currency",
            "payer.email",
            "payment_method.card_number",
            "payment_method.type",
        ],
    ));
    shots.extend(id_shots(
        "GET /v1/payments/{id}",
        Method::GET,
        "/v1/payments/{id}",
        "pay_",
        key,
        &theirs("payment"),
        None,
    ));
    let payment = format!("/v1/payments/{}", id("payment"));
    shots.extend(json_shots(
        "POST /v1/payments/{id}/refunds",
        Method::POST,
        &format!("{payment}/refunds"),
        key,
        &json!({"amount": 0}),
        &["amount"],
    ));
    for operation in ["complete", "fail", "reverse", "cancel-reversal"] {
        let route: &'static str =
            Box::leak(format!("POST /v1/payments/{{id}}/{operation}").into_boxed_str());
        shots.extend(json_shots(
            route,
            Method::POST,
            &format!("/v1/payments/{}/{operation}", id("pending")),
            key,
            &json!({"x": 1}),
            &[],
        ));
        shots.extend(id_shots(
            route,
            Method::POST,
            &format!("/v1/payments/{{id}}/{operation}"),
            "pay_",
            key,
            &theirs("pending"),
            Some(b"{}"),
        ));
    }
    let new_session = json!({"invoice": "order-3", "amount": 500, "currency": "USD", "customer_email": "ann@example.com",
        "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/no"});
    shots.extend(json_shots(
        "POST /v1/checkout/sessions",
        Method::POST,
        "/v1/checkout/sessions",
        key,
        &new_session,
        &["currency", "customer_email", "success_url", "cancel_url"],
    ));
    shots.extend(id_shots(
        "GET /v1/checkout/sessions/{id}",
        Method::GET,
        "/v1/checkout/sessions/{id}",
        "cs_",
        key,
        &theirs("session"),
        None,
    ));
    let new_subscription = json!({"amount": 999, "currency": "USD", "interval": "month", "interval_count": 1,
        "invoice": "member-2", "payer": {"email": "ann@example.com"},
        "payment_method": {"card_number": "4242424242424242"}});
    shots.extend(json_shots(
        "POST /v1/subscriptions",
        Method::POST,
        "/v1/subscriptions",
        key,
        &new_subscription,
        &[
            "currency",
            "interval",
            "payer.email",
            "payment_method.card_number",
        ],
    ));
    shots.extend(id_shots(
        "GET /v1/subscriptions/{id}",
        Method::GET,
        "/v1/subscriptions/{id}",
        "sub_",
        key,
        &theirs("subscription"),
        None,
    ));
    let subscription = format!("/v1/subscriptions/{}", id("subscription"));
    shots.extend(json_shots(
        "POST /v1/subscriptions/{id}/cancel",
        Method::POST,
        &format!("{subscription}/cancel"),
        key,
        &json!({"at_period_end": true, "x": 1}),
        &[],
    ));
    shots.extend(json_shots(
        "POST /v1/subscriptions/{id}/payment-method",
        Method::POST,
        &format!("{subscription}/payment-method"),
        key,
        &json!({"card_number": "4000000000000002"}),
        &["card_number"],
    ));
    shots.extend(json_shots(
        "POST /v1/test/clock/advance",
        Method::POST,
        "/v1/test/clock/advance",
        ADMIN_KEY,
        &json!({"seconds": 9_223_372_036_854_775_807_i64}),
        &["seconds"],
    ));
    shots.extend(read_shots("GET /healthz", "/healthz", None, Answer::Api));
    shots.extend(read_shots("GET /metrics", "/metrics", None, Answer::Api));
    shots.extend(read_shots(
        "GET /openapi.json",
        "/openapi.json",
        None,
        Answer::Api,
    ));

    // The postback: a real message sent to a paypal endpoint, altered.
    let paypal = Receiver::start().await.unwrap();
    t.gw.endpoint(
        &t.shop,
        json!({"url": paypal.url("/ipn"), "dialect": "paypal", "events": ["payment.completed"]}),
    )
    .await;
    let (status, body) = t.gw.post(key, "/v1/payments", new_payment.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sent = paypal.wait_for(1, std::time::Duration::from_secs(10)).await[0]
        .body
        .to_vec();
    let (_, events) = t.gw.get(key, "/v1/events?type=payment.completed").await;
    let last = events["data"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.gw.wait_attempts(&t.shop, &last, "sent", |a| a.len() == 2)
        .await;
    for path in ["/cgi-bin/webscr", "/ipn/verify"] {
        let route: &'static str = Box::leak(format!("POST {path}").into_boxed_str());
        shots.extend(postback_shots(route, path, &sent));
    }

    // The checkout page and its form.
    let session = format!("/checkout/{}", id("session"));
    let form = |fields: &[(&str, &str)]| -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
            .into_bytes()
    };
    let mut page_shots = Vec::new();
    for bad in bad_ids("cs_") {
        for query in [
            "",
            "?x=%FF",
            "?name=%3Cscript%3E",
            "?a=1&a=2",
            "?",
            "?email=a%00b",
            "?card_number=4242424242424242",
        ] {
            page_shots.push((
                Method::GET,
                format!("/checkout/{bad}{query}"),
                None,
                format!("GET id {:?}{query}", &bad[..bad.len().min(30)]),
            ));
        }
        page_shots.push((
            Method::POST,
            format!("/checkout/{bad}"),
            Some(form(&[
                ("name", "Ann"),
                ("email", "ann@example.com"),
                ("card_number", "4242424242424242"),
            ])),
            "POST to a bad id".to_owned(),
        ));
    }
    for injection in INJECTIONS {
        page_shots.push((
            Method::POST,
            session.clone(),
            Some(form(&[
                ("name", "Ann"),
                ("email", injection),
                ("card_number", "4242424242424242"),
            ])),
            format!("email {injection:?}"),
        ));
        page_shots.push((
            Method::POST,
            session.clone(),
            Some(form(&[
                ("name", "Ann"),
                ("email", "ann@example.com"),
                ("card_number", injection),
            ])),
            format!("card {injection:?}"),
        ));
    }
    for (what, body) in bad_json_bodies() {
        page_shots.push((
            Method::POST,
            session.clone(),
            Some(body.clone()),
            format!("body: {what}"),
        ));
        // The other merchant's session: no key is needed to pay one, so
        // it is refused for the same reasons and no other.
        page_shots.push((
            Method::POST,
            format!("/checkout/{}", theirs("session")),
            Some(body),
            format!("body to another merchant's session: {what}"),
        ));
    }
    for card in [
        "4242424242424241",
        "1234",
        // (A declined card is no error: its payment.denied is real.)
        "4000 0000 0000 000",
        "",
        "4242-4242-4242-4242x",
        "0000000000000001",
    ] {
        page_shots.push((
            Method::POST,
            session.clone(),
            Some(form(&[
                ("name", "Ann"),
                ("email", "ann@example.com"),
                ("card_number", card),
            ])),
            format!("card {card:?}"),
        ));
    }
    for missing in ["name", "email", "card_number"] {
        let fields: Vec<(&str, &str)> = [
            ("name", "Ann"),
            ("email", "ann@example.com"),
            ("card_number", "4242424242424242"),
        ]
        .into_iter()
        .filter(|(k, _)| *k != missing)
        .collect();
        page_shots.push((
            Method::POST,
            session.clone(),
            Some(form(&fields)),
            format!("no {missing}"),
        ));
    }
    page_shots.push((
        Method::POST,
        session.clone(),
        Some(form(&[
            ("name", &"n".repeat(10_000)),
            ("email", "ann@example.com"),
            ("card_number", "4242424242424242"),
        ])),
        "10,000-character name".to_owned(),
    ));
    page_shots.push((
        Method::POST,
        session.clone(),
        Some(form(&[
            ("name", "Ann\u{0}"),
            ("email", "ann@example.com"),
            ("card_number", "4242424242424242"),
        ])),
        "NUL in the name".to_owned(),
    ));
    page_shots.push((
        Method::POST,
        format!("/checkout/{}", theirs("session")),
        Some(b"name=Ann&email=%FF&card_number=4242424242424242".to_vec()),
        "invalid UTF-8 email".to_owned(),
    ));
    for (method, path, body, what) in page_shots {
        let route = if method == Method::GET {
            "GET /checkout/{id}"
        } else {
            "POST /checkout/{id}"
        };
        shots.push(Shot {
            route,
            answer: Answer::Page { sign_in: SIGN_IN },
            method,
            path,
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body,
            what,
        });
    }

    // The dashboard's forms, signed in and from its own pages, and not.
    let dashboard_forms: Vec<(&'static str, String, &str)> = vec![
        (
            "POST /dashboard/login",
            "/dashboard/login".to_owned(),
            "api_key",
        ),
        (
            "POST /dashboard/events/{id}/resend",
            format!("/dashboard/events/{}/resend", theirs("event")),
            "endpoint_id",
        ),
        (
            "POST /dashboard/endpoints/{id}/{action}",
            format!("/dashboard/endpoints/{}/recover", id("endpoint")),
            "since",
        ),
        (
            "POST /dashboard/payments/{id}/{action}",
            format!("/dashboard/payments/{}/refund", id("payment")),
            "amount",
        ),
        (
            "POST /dashboard/subscriptions/{id}/{action}",
            format!("/dashboard/subscriptions/{}/cancel", theirs("subscription")),
            "at",
        ),
        (
            "POST /dashboard/logout",
            "/dashboard/logout".to_owned(),
            "x",
        ),
    ];
    for (route, path, field) in dashboard_forms {
        let mut add =
            |path: String, headers: Vec<(String, String)>, body: Vec<u8>, what: String| {
                shots.push(Shot {
                    route,
                    answer: Answer::Page { sign_in: SIGN_IN },
                    method: Method::POST,
                    path,
                    headers,
                    body: Some(body),
                    what,
                });
            };
        let signed = |origin: Option<&str>| {
            let mut h = vec![
                (
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                ("cookie".to_owned(), t.dashboard_cookie.clone()),
            ];
            if let Some(origin) = origin {
                h.push(("origin".to_owned(), origin.to_owned()));
            }
            h
        };
        let own = t.gw.url.as_str();
        for injection in INJECTIONS {
            let body = form(&[(field, injection)]);
            let value = if route == "POST /dashboard/login" {
                "wrong key"
            } else {
                "another site"
            };
            add(
                path.clone(),
                signed(Some("https://evil.example")),
                body.clone(),
                format!("{value}: {injection:?} from another site"),
            );
            add(
                path.clone(),
                signed(None),
                body.clone(),
                format!("{injection:?} with no Origin"),
            );
            if route == "POST /dashboard/login" || route == "POST /dashboard/logout" {
                continue;
            }
            add(
                path.clone(),
                signed(Some(own)),
                body,
                format!("{injection:?}"),
            );
        }
        for (what, body) in bad_json_bodies() {
            add(
                path.clone(),
                signed(Some("null")),
                body.clone(),
                format!("{what} from an opaque origin"),
            );
            add(
                path.clone(),
                vec![("origin".to_owned(), own.to_owned())],
                body.clone(),
                format!("{what} without a session"),
            );
            add(
                path.clone(),
                signed(Some("https://evil.example")),
                body,
                format!("{what} from another site"),
            );
        }
        if route == "POST /dashboard/login" {
            for wrong in ["", "sk_wrong", &"k".repeat(5000), "Bearer x", "\u{0}"] {
                add(
                    path.clone(),
                    vec![
                        ("origin".to_owned(), own.to_owned()),
                        (
                            "content-type".to_owned(),
                            "application/x-www-form-urlencoded".to_owned(),
                        ),
                    ],
                    form(&[("api_key", wrong)]),
                    format!("sign in with {:?}", &wrong[..wrong.len().min(20)]),
                );
            }
        }
        if route != "POST /dashboard/login" && route != "POST /dashboard/logout" {
            for bad in bad_ids("x_") {
                let bad_path = path.rsplitn(3, '/').collect::<Vec<_>>();
                let swapped = format!("{}/{}/{}", bad_path[2], bad, bad_path[0]);
                add(
                    swapped,
                    signed(Some(own)),
                    form(&[(field, "1")]),
                    format!("id {:?}", &bad[..bad.len().min(30)]),
                );
            }
        }
    }

    ipn_testkit::hostile::assert_refused(&t.gw.url, &shots, 100, || t.gw.table_counts()).await;
}

#[tokio::test]
async fn free_text_keeps_injections_exactly_or_refuses_them() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let mut kept = 0;
    for injection in INJECTIONS {
        for field in [
            "invoice",
            "custom",
            "payer.name",
            "items.0.name",
            "items.0.sku",
        ] {
            let mut body = json!({"currency": "USD", "invoice": "order-1", "custom": "c",
                "payer": {"email": "ann@example.com", "name": "Ann"},
                "items": [{"sku": "MUG", "name": "Mug", "quantity": 1, "unit_amount": 1999, "kind": "physical"}],
                "payment_method": {"card_number": "4242424242424242"}});
            set_path(&mut body, field, json!(injection));
            let (status, answer) = gw.post(&shop.key, "/v1/payments", body).await;
            match status {
                StatusCode::CREATED => {
                    let mut at = &answer;
                    for part in field.split('.') {
                        at = match part.parse::<usize>() {
                            Ok(index) => &at[index],
                            Err(_) => &at[part],
                        };
                    }
                    assert_eq!(at, &json!(injection), "{field}: {answer}");
                    kept += 1;
                }
                StatusCode::BAD_REQUEST => {
                    let message = answer["error"]["message"].as_str().unwrap();
                    assert!(
                        message.contains(field.rsplit('.').next().unwrap()),
                        "{field}: {message}"
                    );
                }
                other => panic!("{field} {injection:?}: {other} {answer}"),
            }
        }
    }
    // Most of it is text like any other; what is refused is refused by name.
    assert!(kept >= 60, "{kept} kept");
}
