//! The SSRF guard (DESIGN §4): endpoints may not point the gateway at the
//! networks it runs in, neither when created nor later, when DNS changes.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{TestGateway, TestMerchant};
use ipn_gateway::delivery::ssrf::NetworkPolicy;
use ipn_testkit::{Receiver, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const HOST: &str = "hooks.example.test";

async fn public_only() -> TestGateway {
    TestGateway::start_with(|c| c.network = NetworkPolicy::public_only()).await
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Creates an endpoint and expects a 400 `url_refused`; returns the message.
async fn refused(gw: &TestGateway, shop: &TestMerchant, url: &str) -> String {
    let (status, body) = gw
        .post(&shop.key, "/v1/endpoints", json!({"url": url}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    assert_eq!(body["error"]["code"], "url_refused", "{url}: {body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

async fn endpoint_count(gw: &TestGateway, shop: &TestMerchant) -> usize {
    let (status, body) = gw.get(&shop.key, "/v1/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn ip_literals_of_every_refused_class_are_refused_with_the_class_named() {
    let gw = public_only().await;
    let shop = gw.merchant("shop").await;
    let cases = [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "CGNAT"),
        // The same loopback address spelled as one decimal number.
        ("http://2130706433/hook", "loopback"),
        ("https://127.0.0.1:8443/hook", "loopback"),
    ];
    for (url, class) in cases {
        let message = refused(&gw, &shop, url).await;
        assert!(
            message.contains(class),
            "{url}: {message:?} does not name {class:?}"
        );
    }
    assert_eq!(endpoint_count(&gw, &shop).await, 0, "nothing was created");
}

#[tokio::test]
async fn a_host_name_resolving_to_a_private_address_is_refused_at_create() {
    let gw = public_only().await;
    let shop = gw.merchant("shop").await;

    gw.resolver.set(HOST, vec![ip("192.168.10.20")]);
    let message = refused(&gw, &shop, &format!("https://{HOST}/ipn")).await;
    assert!(message.contains(HOST), "{message}");
    assert!(message.contains("192.168.10.20"), "{message}");
    assert!(message.contains("private"), "{message}");

    // One private address among public ones is enough to refuse.
    gw.resolver
        .set("mixed.example.test", vec![ip("93.184.216.34"), ip("::1")]);
    let message = refused(&gw, &shop, "https://mixed.example.test/ipn").await;
    assert!(message.contains("loopback"), "{message}");

    // A name that does not resolve is refused too, saying so.
    let message = refused(&gw, &shop, "https://nowhere.example.test/ipn").await;
    assert!(message.contains("nowhere.example.test"), "{message}");
    assert_eq!(endpoint_count(&gw, &shop).await, 0);

    // A public address is fine.
    gw.resolver
        .set("public.example.test", vec![ip("93.184.216.34")]);
    gw.endpoint(&shop, json!({"url": "https://public.example.test/ipn"}))
        .await;
    assert_eq!(endpoint_count(&gw, &shop).await, 1);
}

#[tokio::test]
async fn other_schemes_and_credentials_in_urls_are_refused() {
    let gw = public_only().await;
    let shop = gw.merchant("shop").await;
    // Public addresses, so only the scheme or the credentials are at fault.
    for url in [
        "ftp://93.184.216.34/ipn",
        "file:///etc/passwd",
        "gopher://93.184.216.34:70/_x",
        "http://user:pass@93.184.216.34/ipn",
        "https://user@93.184.216.34/ipn",
    ] {
        let (status, body) = gw
            .post(&shop.key, "/v1/endpoints", json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    for url in ["not a url", "", "/relative/path"] {
        let (status, body) = gw
            .post(&shop.key, "/v1/endpoints", json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url:?}: {body}");
    }
    assert_eq!(endpoint_count(&gw, &shop).await, 0);
}

#[tokio::test]
async fn an_update_to_a_refused_url_is_refused() {
    let gw = public_only().await;
    let shop = gw.merchant("shop").await;
    gw.resolver
        .set("public.example.test", vec![ip("93.184.216.34")]);
    let ep = gw
        .endpoint(&shop, json!({"url": "https://public.example.test/ipn"}))
        .await;
    let (status, body) = gw
        .request(
            reqwest::Method::PATCH,
            &shop.key,
            &format!("/v1/endpoints/{}", ep.id),
            Some(json!({"url": "http://169.254.169.254/latest/meta-data"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "url_refused");
    let (_, endpoint) = gw.get(&shop.key, &format!("/v1/endpoints/{}", ep.id)).await;
    assert_eq!(endpoint["url"], "https://public.example.test/ipn");
}

/// A gateway that may reach 127.0.0.1 only, and an endpoint whose host name
/// resolves there, to `receiver`.
async fn loopback_only(receiver: &Receiver) -> (TestGateway, TestMerchant) {
    let gw = TestGateway::start_with(|c| {
        c.network = NetworkPolicy::with_allow_list(&["127.0.0.1/32"]).unwrap();
    })
    .await;
    let shop = gw.merchant("shop").await;
    gw.resolver.set(HOST, vec![ip("127.0.0.1")]);
    let url = format!("http://{HOST}:{}/hook", receiver.addr().port());
    gw.endpoint(&shop, json!({"url": url})).await;
    (gw, shop)
}

async fn first_attempt(gw: &TestGateway, shop: &TestMerchant, event: &Value) -> Value {
    let id = event["id"].as_str().unwrap();
    gw.wait_attempts(shop, id, "an attempt", |a| !a.is_empty())
        .await
        .remove(0)
}

#[tokio::test]
async fn the_allow_list_admits_only_what_it_names() {
    let gw = TestGateway::start_with(|c| {
        c.network = NetworkPolicy::with_allow_list(&["127.0.0.1/32"]).unwrap();
    })
    .await;
    let shop = gw.merchant("shop").await;
    let receiver = Receiver::start().await.unwrap();
    gw.endpoint(&shop, json!({"url": receiver.url("/hook")}))
        .await;
    for url in [
        "http://127.0.0.2/hook",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
    ] {
        refused(&gw, &shop, url).await;
    }
}

/// DNS rebinding: the name was checked when the endpoint was created, then
/// points somewhere refused. Every delivery checks again, before connecting.
/// The receiver closes each connection, so no pooled connection hides the
/// new answer (see pending_bugs.rs for a receiver that keeps it open).
#[tokio::test]
async fn a_host_that_later_resolves_to_a_refused_address_gets_nothing_more() {
    let receiver = Receiver::start().await.unwrap();
    receiver.respond_with(Reply::ok().header("connection", "close"));
    let (gw, shop) = loopback_only(&receiver).await;

    let first = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_1"}))
        .await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    assert_eq!(
        first_attempt(&gw, &shop, &first).await["status"],
        "succeeded"
    );

    gw.resolver.set(HOST, vec![ip("10.0.0.5")]);
    let second = gw
        .ingest(&shop, "invoice.paid", json!({"id": "inv_2"}))
        .await;
    let attempt = first_attempt(&gw, &shop, &second).await;
    assert_eq!(attempt["status"], "failed", "{attempt:#}");
    assert!(attempt["response_status"].is_null(), "{attempt:#}");
    let error = attempt["error"].as_str().unwrap();
    assert!(error.contains("refused"), "{error}");
    assert!(error.contains("10.0.0.5"), "{error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "the receiver got nothing more"
    );
}

/// A DNS server that never answers.
#[derive(Debug)]
struct Silent;

impl ipn_gateway::delivery::ssrf::HostResolver for Silent {
    fn resolve(&self, _host: &str, _port: u16) -> ipn_gateway::delivery::ssrf::ResolveFuture<'_> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_host_that_never_resolves_is_refused_in_time_not_hung_on() {
    let gw = TestGateway::start_with(|c| {
        c.resolver = std::sync::Arc::new(Silent);
        c.delivery.connect_timeout = Duration::from_millis(200);
    })
    .await;
    let shop = gw.merchant("shop").await;
    let create = gw.post(
        &shop.key,
        "/v1/endpoints",
        json!({"url": "https://hooks.example.test/x"}),
    );
    // Without the bound the request would wait forever on the silent DNS.
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), create)
        .await
        .expect("the gateway answers instead of waiting on DNS");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "url_refused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not resolve in time")
    );
}
