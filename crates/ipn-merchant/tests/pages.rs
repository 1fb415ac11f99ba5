//! The shop's HTML pages end to end: a real gateway takes the payments and
//! sends the IPNs (standard dialect) to the real merchant server; the pages
//! are fetched as a browser would (no redirects followed, Basic auth and
//! `Origin` set by hand).

mod common;

use std::time::Duration;

use common::stack::{Stack, VISA, card};
use common::{TestMerchant, WAIT};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};

const PASSWORD: &str = "correct horse battery staple";
const BOOK: &[u8] = b"%PDF-1.4 webhooks, exactly once\n";

/// The shop's stack with /admin on and the e-book's file in place, and a
/// browser-like client (no redirects followed).
struct Site {
    stack: Stack,
    client: reqwest::Client,
    _downloads: tempfile::TempDir,
}

impl std::ops::Deref for Site {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

/// What a page request came to.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Site {
    async fn start() -> Self {
        let downloads = tempfile::tempdir().unwrap();
        std::fs::write(downloads.path().join("webhooks-exactly-once.pdf"), BOOK).unwrap();
        let dir = downloads.path().to_owned();
        let stack = Stack::start("standard", None, |config| {
            config.admin_password = Some(ipn_merchant::Hidden::new(PASSWORD));
            config.downloads_dir = Some(dir);
        })
        .await;
        Self {
            stack,
            client: browser(),
            _downloads: downloads,
        }
    }

    async fn get(&self, path: &str, password: Option<&str>) -> Page {
        get(&self.client, &self.shop.url, path, password).await
    }

    /// POSTs a form as the shop's own page would (`Origin` = the shop).
    async fn post_form(&self, path: &str, body: &str, password: Option<&str>) -> Page {
        self.post_from(&self.shop.url, path, body, password).await
    }

    async fn post_from(
        &self,
        origin: &str,
        path: &str,
        body: &str,
        password: Option<&str>,
    ) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.shop.url))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(password) = password {
            request = request.basic_auth("admin", Some(password));
        }
        page(request.send().await.unwrap()).await
    }

    /// Buys through the catalog's form; returns the order id.
    async fn buy(&self, sku: &str, quantity: u32) -> String {
        let body = format!("sku={sku}&quantity={quantity}&customer_email=ann%40example.com");
        let answer = self.post_form("/orders", &body, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        let checkout = answer.location().to_owned();
        assert!(
            checkout.starts_with(&format!("{}/checkout/cs_", self.gw.url)),
            "{checkout}"
        );
        let rows = self.shop.data.rows(
            "SELECT id FROM orders WHERE checkout_url = $1",
            &[checkout.as_str().into()],
        );
        let row = rows
            .first()
            .expect("the order was stored with its checkout");
        row[0].text()
    }

    /// Fetches `path` until its text contains `needle`.
    async fn wait_for(&self, path: &str, password: Option<&str>, needle: &str) -> Page {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let page = self.get(path, password).await;
            if page.text.contains(needle) {
                return page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {needle:?} on {path}: {} {}",
                page.status,
                page.text
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A client that, like a test of a browser's view, sees redirects rather
/// than following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, base: &str, path: &str, password: Option<&str>) -> Page {
    let mut request = client.get(format!("{base}{path}"));
    if let Some(password) = password {
        request = request.basic_auth("admin", Some(password));
    }
    page(request.send().await.unwrap()).await
}

async fn page(response: reqwest::Response) -> Page {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Page {
        status,
        headers,
        text,
    }
}

/// Every page is HTML that runs no script but the shop's own `/live.js`
/// and cannot be framed.
fn assert_html(page: &Page) {
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let ours = "<script src=\"/live.js\" defer></script>";
    assert_eq!(page.text.matches("<script").count(), 1, "{}", page.text);
    assert!(page.text.contains(ours), "{}", page.text);
}

/// The first `/downloads/…` link on a page.
fn download_link(text: &str) -> Option<String> {
    let start = text.find("href=\"/downloads/")? + "href=\"".len();
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_owned())
}

#[tokio::test]
async fn the_catalog_has_a_buy_form_per_product_and_refuses_bad_input() {
    let stack = Site::start().await;
    let home = stack.get("/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert_html(&home);
    for (name, price, sku) in [
        ("Enamel mug", "12.50 USD", "mug"),
        ("IPN T-shirt", "20.00 USD", "tshirt"),
        ("Webhooks, exactly once (e-book)", "9.99 USD", "ebook"),
        (
            "Webhook Weekly membership",
            "4.99 USD / month",
            "membership",
        ),
    ] {
        assert!(home.text.contains(name), "{name}: {}", home.text);
        assert!(home.text.contains(price), "{price}");
        assert!(
            home.text.contains(&format!("name=\"sku\" value=\"{sku}\"")),
            "{sku}"
        );
    }
    assert_eq!(home.text.matches("action=\"/orders\"").count(), 4);
    assert_eq!(home.text.matches(">Buy</button>").count(), 3);
    assert_eq!(home.text.matches(">Subscribe</button>").count(), 1);
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!("form-action 'self' {}", stack.gw.url)),
        "{csp}"
    );

    for (body, problem) in [
        (
            "sku=mug&quantity=0&customer_email=ann%40example.com",
            "quantity must be 1 to 100",
        ),
        (
            "sku=mug&quantity=lots&customer_email=ann%40example.com",
            "whole number",
        ),
        (
            "sku=nope&quantity=1&customer_email=ann%40example.com",
            "no product with sku",
        ),
        (
            "sku=mug&quantity=1&customer_email=%3Cscript%3E",
            "is not an email address",
        ),
        // The mailer could never send to it, so the download link would be lost.
        (
            "sku=ebook&quantity=1&customer_email=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40example.com",
            "is not an email address",
        ),
    ] {
        let refused = stack.post_form("/orders", body, None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert_html(&refused);
        assert!(refused.text.contains(problem), "{body}: {}", refused.text);
        assert!(refused.text.contains(">Buy</button>"), "the catalog again");
    }
    // The same form posted from another site, or with no origin at all.
    let good = "sku=mug&quantity=1&customer_email=ann%40example.com";
    let refused = stack
        .post_from("https://evil.example", "/orders", good, None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_html(&refused);
    let bare = stack
        .client
        .post(format!("{}/orders", stack.shop.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    assert!(stack.shop.count("orders") == 0, "nothing was stored");

    let unknown = stack.get("/orders/ord_nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_html(&unknown);
}

#[tokio::test]
async fn a_paid_order_says_so_and_its_download_works() {
    let stack = Site::start().await;
    let order = stack.buy("ebook", 1).await;
    let path = format!("/orders/{order}");

    let waiting = stack.get(&path, None).await;
    assert_eq!(waiting.status, StatusCode::OK);
    assert_html(&waiting);
    assert!(
        waiting.text.contains("Waiting for your payment"),
        "{}",
        waiting.text
    );
    // It refreshes itself in place, or without script reloads.
    assert!(
        waiting.text.contains("<div id=\"order\" data-live=\"3\">"),
        "{}",
        waiting.text
    );
    assert!(
        waiting
            .text
            .contains("<noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>")
    );
    assert!(
        waiting
            .text
            .contains("<script src=\"/live.js\" defer></script>")
    );
    let script = reqwest::get(format!("{}/live.js", stack.shop.url))
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(script.text().await.unwrap().contains("data-live"));
    assert!(waiting.text.contains("9.99 USD"));

    stack.pay(&order, 999, card(VISA)).await;
    // Where the gateway's checkout sends the customer back to.
    let back = format!("{path}?session_id=cs_whatever");
    let paid = stack.wait_for(&back, None, "/downloads/").await;
    assert_eq!(paid.status, StatusCode::OK);
    assert!(paid.text.contains("Paid — thank you!"), "{}", paid.text);
    assert!(
        !paid.text.contains("http-equiv=\"refresh\""),
        "no reload once paid"
    );
    assert!(
        paid.text.contains("<div id=\"order\" data-live=\"10\">"),
        "slower once paid"
    );
    assert!(paid.text.contains("Payment of 9.99 USD"), "{}", paid.text);

    let link = download_link(&paid.text).unwrap();
    let file = stack
        .client
        .get(format!("{}{link}", stack.shop.url))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.bytes().await.unwrap().as_ref(), BOOK);
}

#[tokio::test]
async fn admin_needs_the_password_and_is_off_without_one() {
    let stack = Site::start().await;
    for password in [None, Some("wrong"), Some("")] {
        let denied = stack.get("/admin", password).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{password:?}");
        assert_html(&denied);
        let challenge = denied.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Basic realm=\"ipn shop admin\""),
            "{challenge}"
        );
        assert!(!denied.text.contains("Orders"));
        let order_page = stack.get("/admin/orders/ord_x", password).await;
        assert_eq!(order_page.status, StatusCode::UNAUTHORIZED);
    }
    let admin = stack.get("/admin", Some(PASSWORD)).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    assert_html(&admin);
    assert!(admin.text.contains("<h2>Orders</h2>"), "{}", admin.text);
    let mail_dir = stack.shop.data.dir.path().join("mail");
    assert!(
        admin.text.contains(&mail_dir.display().to_string()),
        "where the .eml files are: {}",
        admin.text
    );

    let closed = TestMerchant::alone(&ipn_core::standard::WebhookSecret::generate().reveal()).await;
    let client = browser();
    for password in [None, Some(""), Some(PASSWORD)] {
        let off = get(&client, &closed.url, "/admin", password).await;
        assert_eq!(off.status, StatusCode::NOT_FOUND, "{password:?}");
        assert!(off.text.contains("--admin-password"), "{}", off.text);
    }
}

#[tokio::test]
async fn the_admin_sees_the_ipn_fulfils_a_mug_and_resolves_a_flag() {
    let stack = Site::start().await;
    let mug = stack.buy("mug", 2).await;
    stack.pay(&mug, 2500, card(VISA)).await;
    let admin_path = format!("/admin/orders/{mug}");
    let page = stack
        .wait_for(&admin_path, Some(PASSWORD), "data-status=\"paid\"")
        .await;
    assert_html(&page);
    assert!(page.text.contains("payment.completed"), "{}", page.text);
    assert!(
        page.text.contains("<td class=\"outcome\">applied</td>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("signature valid"), "{}", page.text);
    assert!(page.text.contains("Mark fulfilled"), "{}", page.text);
    let dashboard = stack.get("/admin", Some(PASSWORD)).await;
    assert!(
        dashboard
            .text
            .contains(&format!("href=\"/admin/orders/{mug}\""))
    );

    // A page elsewhere making the operator's browser post: refused.
    let fulfil = format!("/admin/orders/{mug}/fulfil");
    let forged = stack
        .post_from("http://evil.example", &fulfil, "", Some(PASSWORD))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let no_password = stack.post_form(&fulfil, "", None).await;
    assert_eq!(no_password.status, StatusCode::UNAUTHORIZED);
    let (_, still) = stack.shop.get_json(&format!("/api/orders/{mug}")).await;
    assert_eq!(still["status"], "paid");

    let done = stack.post_form(&fulfil, "", Some(PASSWORD)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(), admin_path);
    let (_, fulfilled) = stack.shop.get_json(&format!("/api/orders/{mug}")).await;
    assert_eq!(fulfilled["status"], "fulfilled");
    let page = stack.get(&admin_path, Some(PASSWORD)).await;
    assert!(page.text.contains("data-status=\"fulfilled\""));
    assert!(!page.text.contains("Mark fulfilled"));
    let customer = stack.get(&format!("/orders/{mug}"), None).await;
    assert!(
        customer.text.contains("Paid and shipped"),
        "{}",
        customer.text
    );

    // An unpaid order cannot be fulfilled: 409 with the reason.
    let unpaid = stack.buy("tshirt", 1).await;
    let refused = stack
        .post_form(
            &format!("/admin/orders/{unpaid}/fulfil"),
            "",
            Some(PASSWORD),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("only a paid order can be fulfilled"));

    // Paid the wrong amount: flagged; the operator resolves the flag.
    stack.pay(&unpaid, 1, card(VISA)).await;
    let flagged = stack
        .wait_for("/admin", Some(PASSWORD), "but the order&#39;s total is")
        .await;
    let start = flagged.text.find("action=\"/admin/flags/").unwrap() + "action=\"".len();
    let end = start + flagged.text[start..].find('"').unwrap();
    let resolve = flagged.text[start..end].to_owned();
    let forged = stack
        .post_from(
            "http://evil.example",
            &resolve,
            "back=%2Fadmin",
            Some(PASSWORD),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let resolved = stack
        .post_form(&resolve, "back=%2F%2Fevil.example", Some(PASSWORD))
        .await;
    assert_eq!(resolved.status, StatusCode::SEE_OTHER, "{}", resolved.text);
    assert_eq!(resolved.location(), "/admin", "never sent off-site");
    let after = stack.get("/admin", Some(PASSWORD)).await;
    assert!(after.text.contains("Open flags (0)"), "{}", after.text);
}

#[tokio::test]
async fn wrong_admin_passwords_lock_the_address_out_for_a_minute() {
    let stack = Site::start().await;
    // A right password clears the count, so the operator's own typo does
    // not add up.
    for _ in 0..9 {
        let denied = stack.get("/admin", Some("guess")).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        stack.get("/admin", Some(PASSWORD)).await.status,
        StatusCode::OK
    );
    for _ in 0..ipn_merchant::pages::throttle::LIMIT {
        let denied = stack.get("/admin", Some("guess")).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }
    // Locked out: even the right password waits, on every admin path.
    for (path, password) in [
        ("/admin", Some("guess")),
        ("/admin", Some(PASSWORD)),
        ("/admin/orders/ord_x", Some(PASSWORD)),
    ] {
        let locked = stack.get(path, password).await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_html(&locked);
        assert!(
            locked.text.contains("Too many wrong passwords"),
            "{}",
            locked.text
        );
        let wait: u64 = locked.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    let locked = stack
        .post_form("/admin/messages/1/retry", "", Some(PASSWORD))
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    // The shop itself is not behind the lock.
    assert_eq!(stack.get("/", None).await.status, StatusCode::OK);
}

/// An admin request with these Basic credentials, and `cookie` if given.
async fn admin_as(site: &Site, user: &str, password: &str, cookie: Option<&str>) -> Page {
    let mut request = site
        .client
        .get(format!("{}/admin", site.shop.url))
        .basic_auth(user, Some(password));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    page(request.send().await.unwrap()).await
}

#[tokio::test]
async fn admin_needs_the_user_name_too_and_any_case_of_basic() {
    let site = Site::start().await;
    for user in ["", "root", "Admin", "admin "] {
        let denied = admin_as(&site, user, PASSWORD, None).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{user:?}");
    }
    assert_eq!(
        admin_as(&site, "admin", PASSWORD, None).await.status,
        StatusCode::OK
    );
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"));
    for scheme in ["basic", "BASIC"] {
        let response = site
            .client
            .get(format!("{}/admin", site.shop.url))
            .header("authorization", format!("{scheme} {encoded}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }

    // Another name, configured.
    let named = Stack::start("standard", None, |config| {
        config.admin_user = "owner".into();
        config.admin_password = Some(ipn_merchant::Hidden::new(PASSWORD));
    })
    .await;
    let site = Site {
        stack: named,
        client: browser(),
        _downloads: tempfile::tempdir().unwrap(),
    };
    assert_eq!(
        admin_as(&site, "admin", PASSWORD, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin_as(&site, "owner", PASSWORD, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_known_device_is_not_locked_out_by_others_at_its_address() {
    let site = Site::start().await;
    // The owner signs in once: the browser becomes a known device.
    let signed_in = admin_as(&site, "admin", PASSWORD, None).await;
    assert_eq!(signed_in.status, StatusCode::OK);
    let set_cookie = signed_in.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("ipn_admin_device="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Someone else at the same address guesses until it is locked out.
    for _ in 0..ipn_merchant::pages::throttle::LIMIT {
        let denied = admin_as(&site, "admin", "guess", None).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }
    let locked = admin_as(&site, "admin", PASSWORD, None).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);

    // The owner's browser is let through, and gets no second cookie.
    let owner = admin_as(&site, "admin", PASSWORD, Some(&cookie)).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text);
    assert!(!owner.headers.contains_key("set-cookie"));
    // A forged or altered cookie counts for nothing.
    let forged = format!("{}x", cookie);
    for cookie in [forged.as_str(), "ipn_admin_device=admin-device:1"] {
        let refused = admin_as(&site, "admin", PASSWORD, Some(cookie)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{cookie}");
    }
    // The device's own wrong passwords still count, against the device.
    for _ in 0..ipn_merchant::pages::throttle::LIMIT {
        let denied = admin_as(&site, "admin", "typo", Some(&cookie)).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    }
    let device_locked = admin_as(&site, "admin", PASSWORD, Some(&cookie)).await;
    assert_eq!(device_locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(device_locked.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn control_characters_from_an_ipn_never_reach_the_admin_page() {
    // A postback service that vouches for anything, so the message is
    // handled and shown as a verified one would be.
    let paypal = ipn_testkit::Receiver::start().await.unwrap();
    paypal.respond_with(ipn_testkit::Reply::ok().body("VERIFIED"));
    let secret = ipn_core::standard::WebhookSecret::generate().reveal();
    let shop = TestMerchant::configured(
        common::Bound::new().await,
        &paypal.url(""),
        "merchant-key",
        &secret,
        |config| config.admin_password = Some(ipn_merchant::Hidden::new(PASSWORD)),
    )
    .await;
    let body = "txn_type=web_accept&txn_id=61E67681CH3238416&payment_status=Completed\
                &mc_gross=19.99&mc_currency=USD&receiver_email=shop%40example.com\
                &invoice=NUL%00MARK%01%1B%5B31m&verify_sign=AFcWxV21C7fd0v3bYYYRCpSSRl31A\
                &charset=UTF-8";
    let (status, text) = shop
        .post(
            "/ipn",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let client = browser();
    let deadline = tokio::time::Instant::now() + WAIT;
    let admin = loop {
        let admin = get(&client, &shop.url, "/admin", Some(PASSWORD)).await;
        if admin.text.contains("MARK") {
            break admin;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the invoice never showed: {}",
            admin.text
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        admin.text.contains("NUL\u{FFFD}MARK\u{FFFD}\u{FFFD}[31m"),
        "{}",
        admin.text
    );
    for control in ['\0', '\u{1}', '\u{1b}'] {
        assert!(
            !admin.text.contains(control),
            "{control:?} reached the page"
        );
    }
}

/// Once a hole: the lockout read "the password was right" off any answer
/// but 401, and a path axum refuses before the handler (not UTF-8) answers
/// 400, so a guess sent there cleared the count and earned a device cookie.
#[tokio::test]
async fn a_wrong_password_counts_whatever_the_path_answers() {
    let site = Site::start().await;
    for n in 0..ipn_merchant::pages::throttle::LIMIT {
        let guess = site
            .client
            .get(format!("{}/admin/orders/%FF", site.shop.url))
            .basic_auth("admin", Some(format!("guess {n}")))
            .send()
            .await
            .unwrap();
        assert!(guess.status().is_client_error(), "{}", guess.status());
        assert!(
            !guess.headers().contains_key("set-cookie"),
            "no device for a wrong password"
        );
    }
    let locked = admin_as(&site, "admin", PASSWORD, None).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
}
