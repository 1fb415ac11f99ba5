//! PayPal verification by postback (DESIGN §3): a listener posts a message it
//! received back to `/cgi-bin/webscr` (or `/ipn/verify`) and the gateway says
//! `VERIFIED` only for the fields of a message it really sent.

mod common;

use std::time::Duration;

use common::{TestGateway, TestMerchant};
use ipn_core::event::Event;
use ipn_core::id::EventId;
use ipn_core::paypal::{Form, IpnMessage, Sending, encode_event};
use ipn_testkit::Receiver;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const PAY: &str = "pay_01KAZ3NDEKTSV4RRFFQ69G5FAV";
const CUSTOM: &str = "gift for Ann & Bob, wrap it";

/// A full payment: a two-line cart, a payer with a non-ASCII name, and a
/// custom value with spaces and '&'.
fn payment_data(merchant_id: &str, id: &str, status: &str) -> Value {
    json!({
        "object": "payment",
        "id": id,
        "status": status,
        "amount": 1999,
        "fee": 88,
        "currency": "USD",
        "merchant_id": merchant_id,
        "receiver_email": "shop@example.com",
        "payer": {"email": "joerg@example.com", "name": "Jörg Müller", "id": "PAYER42"},
        "invoice": "ORD-1",
        "custom": CUSTOM,
        "items": [
            {"sku": "MUG", "name": "Tasse groß", "quantity": 1, "unit_amount": 1500, "kind": "physical"},
            {"sku": "EBOOK", "name": "Café guide", "quantity": 1, "unit_amount": 499, "kind": "digital"}
        ],
        "created_at": "2026-11-25T10:00:00Z"
    })
}

/// A gateway that has sent one `payment.completed` IPN to a paypal endpoint.
struct Sent {
    gw: TestGateway,
    shop: TestMerchant,
    paypal: Receiver,
    event: Value,
    /// The form body exactly as the listener received it.
    body: Vec<u8>,
}

async fn sent_message() -> Sent {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let paypal = Receiver::start().await.unwrap();
    gw.endpoint(
        &shop,
        json!({"url": paypal.url("/ipn"), "dialect": "paypal"}),
    )
    .await;
    let event = gw
        .ingest(
            &shop,
            "payment.completed",
            payment_data(&shop.id, PAY, "completed"),
        )
        .await;
    let got = paypal.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "the paypal endpoint gets the IPN");
    let body = got[0].body.to_vec();
    // A listener may post back while the gateway is still recording the
    // attempt; that race has its own test in pending_bugs.rs.
    wait_delivered(&gw, &shop, &event).await;
    Sent {
        gw,
        shop,
        paypal,
        event,
        body,
    }
}

async fn wait_delivered(gw: &TestGateway, shop: &TestMerchant, event: &Value) {
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(shop, id, "a succeeded attempt", |a| {
        a.iter().any(|x| x["status"] == "succeeded")
    })
    .await;
}

/// Posts `body` to both postback routes; both must answer 200 with the same
/// word, which is returned.
async fn verdict(gw: &TestGateway, body: &[u8]) -> String {
    let mut answers = Vec::new();
    for route in ["/cgi-bin/webscr", "/ipn/verify"] {
        let (status, answer) = gw.postback(route, body.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{route}: {answer}");
        assert!(
            answer == "VERIFIED" || answer == "INVALID",
            "{route} answered {answer:?}"
        );
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "both routes agree");
    answers.swap_remove(0)
}

fn with_cmd_first(body: &[u8]) -> Vec<u8> {
    [b"cmd=_notify-validate&".as_slice(), body].concat()
}

/// The decoded fields of a form body, in order.
fn fields(body: &[u8]) -> Vec<(String, String)> {
    Form::parse(body)
        .unwrap()
        .pairs()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Percent-encodes UTF-8 text as JavaScript listener libraries do when they
/// rebuild a body: `%20` for a space, lowercase hex here (case may differ).
fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Rebuilds a body from fields, with `cmd=_notify-validate` appended last.
fn rebuilt_cmd_last(fields: &[(String, String)]) -> Vec<u8> {
    let mut parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    parts.push("cmd=_notify-validate".to_owned());
    parts.join("&").into_bytes()
}

/// Rebuilds a body from fields with `cmd` first (for tampered field lists).
fn rebuilt_cmd_first(fields: &[(String, String)]) -> Vec<u8> {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    with_cmd_first(parts.join("&").as_bytes())
}

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn the_ipn_carries_non_ascii_names_and_custom_text_intact() {
    let sent = sent_message().await;
    let ipn = IpnMessage::parse(&sent.body).unwrap();
    assert_eq!(ipn.get("charset"), Some("UTF-8"));
    assert_eq!(ipn.get("first_name"), Some("Jörg"));
    assert_eq!(ipn.get("last_name"), Some("Müller"));
    assert_eq!(ipn.custom(), Some(CUSTOM));
    assert_eq!(ipn.get("item_name1"), Some("Tasse groß"));
    assert_eq!(ipn.txn_id(), Some(PAY));
    assert_eq!(ipn.get("mc_gross"), Some("19.99"));
    assert_eq!(ipn.ipn_track_id(), sent.event["id"].as_str());
    assert_eq!(ipn.get("resend"), None, "a first send is not a resend");
}

#[tokio::test]
async fn the_message_as_sent_is_verified_on_both_routes() {
    let sent = sent_message().await;
    assert_eq!(
        verdict(&sent.gw, &with_cmd_first(&sent.body)).await,
        "VERIFIED"
    );
    // Asking again gives the same answer.
    assert_eq!(
        verdict(&sent.gw, &with_cmd_first(&sent.body)).await,
        "VERIFIED"
    );
}

#[tokio::test]
async fn a_body_rebuilt_by_a_listener_library_is_verified() {
    let sent = sent_message().await;
    let rebuilt = rebuilt_cmd_last(&fields(&sent.body));
    let text = String::from_utf8(rebuilt.clone()).unwrap();
    assert_ne!(rebuilt, sent.body, "the encoding really differs");
    assert!(text.contains("%20") && text.contains("%c3%b6"), "{text}");
    assert!(text.ends_with("&cmd=_notify-validate"));
    assert_eq!(verdict(&sent.gw, &rebuilt).await, "VERIFIED");
}

#[tokio::test]
async fn any_change_to_the_message_is_invalid() {
    let sent = sent_message().await;
    let original = fields(&sent.body);
    let position = |name: &str| original.iter().position(|(k, _)| k == name).unwrap();

    let renamed = {
        let mut f = original.clone();
        f[position("first_name")].0 = "firstname".to_owned();
        f
    };
    let swapped = {
        let mut f = original.clone();
        f.swap(position("txn_id"), position("payment_status"));
        f
    };
    let added_middle = {
        let mut f = original.clone();
        f.insert(position("mc_gross"), ("discount".into(), "0.00".into()));
        f
    };
    let added_end = {
        let mut f = original.clone();
        f.push(("note".into(), "hello".into()));
        f
    };
    let without = |name: &str| {
        let mut f = original.clone();
        f.remove(position(name));
        f
    };
    let cmd_in_middle = {
        let mut f = original.clone();
        f.insert(3, ("cmd".into(), "_notify-validate".into()));
        let parts: Vec<String> = f
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        parts.join("&").into_bytes()
    };

    // The same fields, rebuilt, verify: each case below differs in one way only.
    assert_eq!(
        verdict(&sent.gw, &rebuilt_cmd_first(&original)).await,
        "VERIFIED"
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "mc_gross changed",
            with_cmd_first(&replace(&sent.body, "mc_gross=19.99", "mc_gross=1.99")),
        ),
        (
            "custom changed",
            rebuilt_cmd_first(
                &original
                    .iter()
                    .map(|(k, v)| {
                        let v = if k == "custom" { "gift for Eve" } else { v };
                        (k.clone(), v.to_owned())
                    })
                    .collect::<Vec<_>>(),
            ),
        ),
        ("a field renamed", rebuilt_cmd_first(&renamed)),
        ("two fields swapped", rebuilt_cmd_first(&swapped)),
        (
            "a field added in the middle",
            rebuilt_cmd_first(&added_middle),
        ),
        ("a field added at the end", rebuilt_cmd_first(&added_end)),
        ("custom missing", rebuilt_cmd_first(&without("custom"))),
        (
            "verify_sign missing",
            rebuilt_cmd_first(&without("verify_sign")),
        ),
        (
            "decoded with another charset",
            with_cmd_first(&replace(
                &sent.body,
                "charset=UTF-8",
                "charset=windows-1252",
            )),
        ),
        ("cmd missing", sent.body.clone()),
        (
            "cmd wrong",
            [b"cmd=_notify-synch&".as_slice(), &sent.body].concat(),
        ),
        ("cmd empty", [b"cmd=&".as_slice(), &sent.body].concat()),
        ("cmd in the middle", cmd_in_middle),
        ("empty body", Vec::new()),
        ("cmd alone", b"cmd=_notify-validate".to_vec()),
        ("garbage", b"\xff\xfe\x00 %%zz &&== not a form".to_vec()),
        ("JSON", sent.event.to_string().into_bytes()),
        (
            "ipn_track_id not an event id",
            with_cmd_first(&replace(
                &sent.body,
                &format!("ipn_track_id={}", sent.event["id"].as_str().unwrap()),
                "ipn_track_id=abc",
            )),
        ),
    ];
    for (what, body) in cases {
        assert_eq!(verdict(&sent.gw, &body).await, "INVALID", "{what}");
    }
    // Tampering changed nothing: the real message still verifies.
    assert_eq!(
        verdict(&sent.gw, &with_cmd_first(&sent.body)).await,
        "VERIFIED"
    );
}

#[tokio::test]
async fn a_message_never_sent_to_a_paypal_endpoint_is_invalid() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    let paypal = Receiver::start().await.unwrap();
    let standard = Receiver::start().await.unwrap();
    gw.endpoint(
        &shop,
        json!({"url": paypal.url("/ipn"), "dialect": "paypal", "events": ["payment.completed"]}),
    )
    .await;
    gw.endpoint(&shop, json!({"url": standard.url("/hooks")}))
        .await;

    // Sent to both: the paypal form the gateway would make is exactly what it sent.
    let completed = gw
        .ingest(
            &shop,
            "payment.completed",
            payment_data(&shop.id, PAY, "completed"),
        )
        .await;
    let got = paypal.wait_for(1, WAIT).await;
    wait_delivered(&gw, &shop, &completed).await;
    let event: Event = serde_json::from_value(completed.clone()).unwrap();
    let forged = encode_event(&event, Sending::First).unwrap();
    assert_eq!(forged, got[0].body.to_vec(), "forgeries below are faithful");
    assert_eq!(verdict(&gw, &with_cmd_first(&forged)).await, "VERIFIED");

    // Delivered to the standard endpoint only.
    let pending = gw
        .ingest(
            &shop,
            "payment.pending",
            payment_data(&shop.id, "pay_01KAZ3NDEKTSV4RRFFQ69G5FAW", "pending"),
        )
        .await;
    let got = standard.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    wait_delivered(&gw, &shop, &pending).await;
    let event: Event = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(event.id.to_string(), pending["id"].as_str().unwrap());
    let forged = encode_event(&event, Sending::First).unwrap();
    assert_eq!(verdict(&gw, &with_cmd_first(&forged)).await, "INVALID");
    assert_eq!(
        paypal.requests().len(),
        1,
        "the paypal endpoint got only one"
    );

    // Never sent at all: a well-formed message for an event that does not exist.
    let mut unknown = completed.clone();
    unknown["id"] = json!(EventId::generate(time::OffsetDateTime::now_utc()).to_string());
    let event: Event = serde_json::from_value(unknown).unwrap();
    let forged = encode_event(&event, Sending::First).unwrap();
    assert_eq!(verdict(&gw, &with_cmd_first(&forged)).await, "INVALID");

    // Another gateway never sent this message, so it cannot verify it.
    let other = TestGateway::start().await;
    assert_eq!(
        verdict(&other, &with_cmd_first(&got_first(&paypal))).await,
        "INVALID"
    );
}

fn got_first(receiver: &Receiver) -> Vec<u8> {
    receiver.requests()[0].body.to_vec()
}

#[tokio::test]
async fn a_resent_message_says_resend_and_verifies() {
    let sent = sent_message().await;
    let id = sent.event["id"].as_str().unwrap();
    let (status, body) = sent
        .gw
        .post(
            &sent.shop.key,
            &format!("/v1/events/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let got = sent.paypal.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    sent.gw
        .wait_attempts(&sent.shop, id, "the resend recorded", |a| {
            a.len() == 2 && a.iter().all(|x| x["status"] == "succeeded")
        })
        .await;
    let resent = IpnMessage::parse(&got[1].body).unwrap();
    assert_eq!(resent.get("resend"), Some("true"));
    assert_eq!(resent.ipn_track_id(), Some(id));
    assert_eq!(resent.txn_id(), Some(PAY));

    assert_eq!(
        verdict(&sent.gw, &with_cmd_first(&got[1].body)).await,
        "VERIFIED"
    );
    let rebuilt = rebuilt_cmd_last(&fields(&got[1].body));
    assert_eq!(verdict(&sent.gw, &rebuilt).await, "VERIFIED");
    // The first send still verifies too.
    assert_eq!(
        verdict(&sent.gw, &with_cmd_first(&sent.body)).await,
        "VERIFIED"
    );
}

#[tokio::test]
async fn a_paypal_endpoint_takes_only_types_paypal_has() {
    let gw = TestGateway::start().await;
    let shop = gw.merchant("shop").await;
    for events in [json!(["invoice.paid"]), json!(["payment.*", "order.*"])] {
        let (status, body) = gw
            .post(
                &shop.key,
                "/v1/endpoints",
                json!({"url": "http://127.0.0.1:9/ipn", "dialect": "paypal", "events": events}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{events}: {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    let (_, list) = gw.get(&shop.key, "/v1/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

/// Where a listener puts `cmd=_notify-validate`.
#[derive(Debug, Clone, Copy)]
enum Cmd {
    First,
    Last,
}

/// How a published listener rebuilds the body it posts back, written down
/// from each library's source: which bytes it leaves as they are, how it
/// writes a space and hex, where `cmd` goes, and what `Content-Type` it sends.
#[derive(Debug)]
struct Listener {
    name: &'static str,
    /// Posts the body back byte for byte (only `cmd` added).
    verbatim: bool,
    cmd: Cmd,
    /// Writes `&name=value` for every field, so the body starts with '&'.
    leading_amp: bool,
    /// Copies names as received instead of re-encoding them.
    raw_names: bool,
    space: &'static str,
    lower_hex: bool,
    /// Bytes written as they are, besides ASCII letters and digits.
    unreserved: &'static str,
    content_type: Option<&'static str>,
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

const LISTENERS: &[Listener] = &[
    // PayPal's sample listener (PaypalIPN.php): splits the raw body, PHP
    // `urldecode`s each value, then `cmd=_notify-validate` and `&name=`
    // + `urlencode(value)` for each; posted by curl as a form.
    Listener {
        name: "PHP sample listener",
        verbatim: false,
        cmd: Cmd::First,
        leading_amp: false,
        raw_names: true,
        space: "+",
        lower_hex: false,
        unreserved: "-_.",
        content_type: FORM,
    },
    // django-paypal: `b"cmd=_notify-validate&" + query` through
    // `requests.post(data=bytes)`, which sends no Content-Type.
    Listener {
        name: "django-paypal",
        verbatim: true,
        cmd: Cmd::First,
        leading_amp: false,
        raw_names: true,
        space: "+",
        lower_hex: false,
        unreserved: "",
        content_type: None,
    },
    // npm paypal-ipn: `params.cmd = '_notify-validate'` then Node's
    // `querystring.stringify(params)`, posted as a form.
    Listener {
        name: "npm paypal-ipn",
        verbatim: false,
        cmd: Cmd::Last,
        leading_amp: false,
        raw_names: false,
        space: "%20",
        lower_hex: false,
        unreserved: "-_.!~*'()",
        content_type: FORM,
    },
    // The npm listener that outside testing used: `&` + name + `=` +
    // `encodeURIComponent(value)` for each field, `&cmd=_notify-validate`
    // last, and no Content-Type at all.
    Listener {
        name: "npm listener, leading '&'",
        verbatim: false,
        cmd: Cmd::Last,
        leading_amp: true,
        raw_names: false,
        space: "%20",
        lower_hex: false,
        unreserved: "-_.!~*'()",
        content_type: None,
    },
    // Python: `requests.post(url, data=[("cmd", "_notify-validate"), *fields])`,
    // which form-encodes with `urllib.parse.urlencode` (quote_plus).
    Listener {
        name: "Python requests form",
        verbatim: false,
        cmd: Cmd::First,
        leading_amp: false,
        raw_names: false,
        space: "+",
        lower_hex: false,
        unreserved: "-_.~",
        content_type: FORM,
    },
    // Hand-written JavaScript that escapes with lowercase hex and posts as
    // text/plain by mistake.
    Listener {
        name: "hand-written, lowercase hex, text/plain",
        verbatim: false,
        cmd: Cmd::Last,
        leading_amp: false,
        raw_names: false,
        space: "%20",
        lower_hex: true,
        unreserved: "-_.~",
        content_type: Some("text/plain;charset=UTF-8"),
    },
];

impl Listener {
    fn escape(&self, text: &str) -> String {
        let mut out = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || self.unreserved.as_bytes().contains(&b) {
                out.push(char::from(b));
            } else if b == b' ' {
                out.push_str(self.space);
            } else if self.lower_hex {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// The body this listener posts back for a message it received as `received`.
    fn postback(&self, received: &[u8]) -> Vec<u8> {
        if self.verbatim {
            return with_cmd_first(received);
        }
        let raw_names: Vec<&[u8]> = received
            .split(|&b| b == b'&')
            .map(|pair| pair.split(|&b| b == b'=').next().unwrap())
            .collect();
        let mut parts: Vec<String> = fields(received)
            .iter()
            .zip(raw_names)
            .map(|((name, value), raw_name)| {
                let name = if self.raw_names {
                    String::from_utf8(raw_name.to_vec()).unwrap()
                } else {
                    self.escape(name)
                };
                format!("{name}={}", self.escape(value))
            })
            .collect();
        match self.cmd {
            Cmd::First => parts.insert(0, "cmd=_notify-validate".to_owned()),
            Cmd::Last => parts.push("cmd=_notify-validate".to_owned()),
        }
        let body = parts.join("&");
        if self.leading_amp {
            format!("&{body}").into_bytes()
        } else {
            body.into_bytes()
        }
    }

    /// Posts `body` back on both routes, as this listener does.
    async fn verdict(&self, gw: &TestGateway, body: &[u8]) -> String {
        let mut answers = Vec::new();
        for route in ["/cgi-bin/webscr", "/ipn/verify"] {
            let (status, answer) = gw
                .postback_as(route, self.content_type, body.to_vec())
                .await;
            assert_eq!(status, StatusCode::OK, "{}: {route}: {answer}", self.name);
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "{}: both routes agree", self.name);
        answers.swap_remove(0)
    }
}

/// A message as received and as changed in one way: `(what, received body)`.
fn altered_messages(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let original = fields(body);
    let position = |name: &str| original.iter().position(|(k, _)| k == name).unwrap();
    let rebuild = |fields: Vec<(String, String)>| {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ipn_core::paypal::form::encode(&pairs, Form::parse(body).unwrap().charset()).unwrap()
    };
    let mut changed = original.clone();
    changed[position("mc_gross")].1 = "1.99".to_owned();
    let mut added = original.clone();
    added.push(("note".to_owned(), "hello".to_owned()));
    let mut missing = original.clone();
    missing.remove(position("custom"));
    let mut emptied = original.clone();
    emptied[position("custom")].1 = String::new();
    vec![
        ("mc_gross changed", rebuild(changed)),
        ("a field added", rebuild(added)),
        ("custom missing", rebuild(missing)),
        ("custom emptied", rebuild(emptied)),
    ]
}

#[tokio::test]
async fn every_published_listener_encoding_is_verified_and_changes_are_not() {
    let sent = sent_message().await;
    for listener in LISTENERS {
        let body = listener.postback(&sent.body);
        assert_eq!(
            listener.verdict(&sent.gw, &body).await,
            "VERIFIED",
            "{}: {}",
            listener.name,
            String::from_utf8_lossy(&body)
        );
        for (what, altered) in altered_messages(&sent.body) {
            let body = listener.postback(&altered);
            assert_eq!(
                listener.verdict(&sent.gw, &body).await,
                "INVALID",
                "{}: {what}",
                listener.name
            );
        }
    }
    // The fixtures really differ from the bytes the gateway sent.
    let npm = LISTENERS[3].postback(&sent.body);
    let text = String::from_utf8(npm).unwrap();
    assert!(text.starts_with("&") && text.ends_with("&cmd=_notify-validate"));
    assert!(text.contains("%20") && text.contains("%C3%B6"), "{text}");
}

#[tokio::test]
async fn empty_segments_anywhere_in_a_postback_are_skipped() {
    let sent = sent_message().await;
    let text = String::from_utf8(with_cmd_first(&sent.body)).unwrap();
    let cases = [
        ("leading", format!("&{text}")),
        ("trailing", format!("{text}&")),
        ("doubled", text.replacen("&", "&&", 3)),
        ("all three", format!("&&{}&&", text.replace('&', "&&"))),
    ];
    for (what, body) in cases {
        for content_type in [None, FORM, Some("text/plain"), Some("application/json")] {
            let (status, answer) = sent
                .gw
                .postback_as("/cgi-bin/webscr", content_type, body.clone())
                .await;
            assert_eq!(
                (status, answer.as_str()),
                (StatusCode::OK, "VERIFIED"),
                "{what}, {content_type:?}"
            );
        }
    }
    // An empty segment does not hide a change.
    let tampered = format!("&{}", text.replacen("mc_gross=19.99", "mc_gross=1.99", 1));
    assert_eq!(verdict(&sent.gw, tampered.as_bytes()).await, "INVALID");
    assert_eq!(verdict(&sent.gw, b"&&&").await, "INVALID");
}
