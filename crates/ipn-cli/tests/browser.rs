//! `ipn up` in a real browser, as a person uses it: buy the e-book in the
//! shop, pay on the gateway's checkout page, watch the order page turn to
//! paid, read the download email in the shop's admin and fetch the file;
//! then buy again with a card that is declined and see it said; last, the
//! merchant refunds the paid order in the gateway's dashboard and the shop's
//! page shows it refunded, its download gone. A second test subscribes to
//! the demo membership, watches the renewal arrive on the open order page
//! without a reload, and cancels it from the dashboard.
//!
//! Each step's screenshot is written to `target/screenshots/<step>.png`,
//! the test's artifacts for a person to look at.
//!
//! It needs `chromedriver` and Chromium (the Debian packages `chromium
//! chromium-driver`; `scripts/test` installs them). Without them the test
//! fails, saying so: it does not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use ipn_testkit::webdriver::Browser;
use serde_json::Value;

/// Long enough for a page to reload itself (every 3 s) after the IPN.
const WAIT: Duration = Duration::from_secs(20);

/// `ipn up` on free ports, stopped (SIGTERM, as Ctrl-C) when dropped, so a
/// failing test does not leave it running.
struct Up(Child);

impl Up {
    /// Starts it on `data_dir`; returns it with its `credentials.json`.
    fn start(data_dir: &Path) -> (Self, Value) {
        let up = Self(common::start_up(data_dir));
        let file = std::fs::read(data_dir.join("credentials.json")).unwrap();
        (up, serde_json::from_slice(&file).unwrap())
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        common::terminate(&mut self.0);
    }
}

/// Where the screenshots go: the workspace's `target/screenshots`.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn snap(browser: &Browser, step: &str) {
    let path = screenshots().join(format!("{step}.png"));
    browser
        .screenshot_full_page(&path)
        .await
        .unwrap_or_else(|e| panic!("screenshot {step}: {e:#}"));
}

/// Clicks the element `css` finds.
async fn click(browser: &Browser, css: &str) {
    let element = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"));
    element.click().await.unwrap();
}

/// Types `text` into the field `css` finds, after what it holds.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let element = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"));
    element.send_keys(text).await.unwrap();
}

/// Signs in to the gateway's dashboard with the merchant's key.
async fn sign_in(browser: &Browser, gateway: &str, credentials: &Value) {
    browser
        .goto(&format!("{gateway}/dashboard/login"))
        .await
        .unwrap();
    let key = credentials["merchant_api_key"].as_str().unwrap();
    fill(browser, "#api_key", key).await;
    click(browser, "form button[type=submit]").await;
    browser
        .wait_for_url(&format!("{gateway}/dashboard/events"), WAIT)
        .await
        .unwrap();
}

/// On the catalog: buys one e-book for `email`; returns once the browser is
/// on the gateway's checkout page.
async fn buy_ebook(browser: &Browser, shop: &str, gateway: &str, email: &str) {
    browser.goto(&format!("{shop}/")).await.unwrap();
    let quantity = browser
        .find("#product-ebook input[name=quantity]")
        .await
        .unwrap();
    quantity.clear().await.unwrap();
    quantity.send_keys("1").await.unwrap();
    fill(browser, "#product-ebook input[name=customer_email]", email).await;
    click(browser, "#product-ebook button[type=submit]").await;
    browser
        .wait_for_url(&format!("{gateway}/checkout/"), WAIT)
        .await
        .unwrap();
}

/// On the checkout page: fills the form in.
async fn fill_checkout(browser: &Browser, name: &str, email: &str, card: &str) {
    fill(browser, "#name", name).await;
    let field = browser.find("#email").await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(email).await.unwrap();
    fill(browser, "#card_number", card).await;
}

/// On the checkout page: presses Pay.
async fn press_pay(browser: &Browser) {
    click(browser, "form button[type=submit]").await;
}

#[tokio::test]
async fn a_customer_buys_and_an_operator_reads_the_email_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, credentials) = Up::start(&dir.path().join("ipn-data"));
    let shop = credentials["shop_url"].as_str().unwrap();
    let gateway = credentials["gateway_url"].as_str().unwrap();
    let password = credentials["admin_password"].as_str().unwrap();

    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("this test needs a browser: {e:#}"));

    // a) The catalog; the e-book bought and paid with the card that pays.
    browser.goto(&format!("{shop}/")).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Shop · ipn demo shop");
    snap(&browser, "01-catalog").await;
    buy_ebook(&browser, shop, gateway, "ann@example.com").await;
    browser.wait_for_text("h1", "Pay", WAIT).await.unwrap();
    snap(&browser, "02-checkout").await;
    fill_checkout(
        &browser,
        "Ann Smith",
        "ann@example.com",
        "4242 4242 4242 4242",
    )
    .await;
    snap(&browser, "03-checkout-filled").await;
    press_pay(&browser).await;
    let order_url = browser
        .wait_for_url(&format!("{shop}/orders/ord_"), WAIT)
        .await
        .unwrap();
    // The page reloads itself until the IPN has made the order paid.
    let status = browser
        .wait_for_text("#status", "Paid", WAIT)
        .await
        .unwrap();
    assert_eq!(status, "Paid — thank you!");
    let total = browser.find("#total").await.unwrap().text().await.unwrap();
    assert!(total.ends_with("USD"), "{total}");
    snap(&browser, "04-order-paid").await;

    // b) The admin: refused without the password (on a Basic challenge
    // headless Chromium shows an empty page, neither a prompt nor the 401's
    // body), shown with the password sent as HTTP Basic auth.
    browser.goto(&format!("{shop}/admin")).await.unwrap();
    assert!(
        browser.find_all("main").await.unwrap().is_empty(),
        "without the password nothing is shown: {}",
        browser.page_source().await.unwrap()
    );
    browser.set_basic_auth("admin", password).await.unwrap();
    browser.goto(&format!("{shop}/admin")).await.unwrap();
    browser.wait_for_text("h1", "Admin", WAIT).await.unwrap();
    snap(&browser, "05-admin").await;
    let mut download_email = None;
    for link in browser
        .find_all("table.emails a[href*='/admin/emails/']")
        .await
        .unwrap()
    {
        if link.text().await.unwrap().starts_with("Your download") {
            download_email = Some(link);
            break;
        }
    }
    let download_email = download_email.expect("the download email on /admin");
    download_email.click().await.unwrap();
    let email_url = browser
        .wait_for_url(&format!("{shop}/admin/emails/"), WAIT)
        .await
        .unwrap();
    let subject = browser
        .find("#subject")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(subject.starts_with("Your download:"), "{subject}");
    let body = browser
        .find("#text-body")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("ready to download"), "{body}");
    snap(&browser, "06-admin-email").await;
    let link = browser
        .find("#links a[href*='/downloads/']")
        .await
        .unwrap()
        .attribute("href")
        .await
        .unwrap()
        .expect("the download link has an href");
    assert!(link.starts_with(&format!("{shop}/downloads/")), "{link}");
    // Headless Chromium turns a navigation to an attachment into a
    // download and stays on the page, so the file is fetched as the link
    // would fetch it, and checked to be the PDF.
    let file = reqwest::get(&link).await.unwrap();
    assert_eq!(file.status(), 200, "{link}");
    assert!(file.bytes().await.unwrap().starts_with(b"%PDF"));
    // The email page is the admin's alone.
    let http = reqwest::Client::new();
    let refused = http.get(&email_url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let missing = http
        .get(format!("{shop}/admin/emails/999999"))
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The order's admin page links its emails too.
    browser
        .goto(&order_url.replacen("/orders/", "/admin/orders/", 1))
        .await
        .unwrap();
    let linked = browser
        .find_all("table.emails a[href*='/admin/emails/']")
        .await
        .unwrap();
    assert_eq!(linked.len(), 2, "the order's two emails are linked");
    snap(&browser, "07-admin-order").await;

    // c) Again with the card that is declined: the checkout says so.
    buy_ebook(&browser, shop, gateway, "bob@example.com").await;
    fill_checkout(
        &browser,
        "Bob Jones",
        "bob@example.com",
        "4000 0000 0000 0002",
    )
    .await;
    press_pay(&browser).await;
    let problem = browser
        .wait_for_text(".problem", "declined", WAIT)
        .await
        .unwrap();
    assert_eq!(
        problem,
        "Your card was declined and nothing was charged. Try another card."
    );
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .starts_with(&format!("{gateway}/checkout/")),
        "the customer stays on the checkout to try another card"
    );
    snap(&browser, "08-checkout-declined").await;

    // The shop's own page for that order (the newest on the admin page),
    // where the payment-failed email sends the customer.
    browser.goto(&format!("{shop}/admin")).await.unwrap();
    let newest = browser
        .find("#orders tbody tr a")
        .await
        .unwrap()
        .property("href")
        .await
        .unwrap()
        .unwrap();
    browser
        .goto(&newest.replacen("/admin/orders/", "/orders/", 1))
        .await
        .unwrap();
    // The gateway's IPN for the declined payment marks the order failed;
    // the page reloads itself until it has.
    let status = browser
        .wait_for_text("#status", "Payment failed", WAIT)
        .await
        .unwrap();
    assert_eq!(status, "Payment failed");
    let words = browser.find("main").await.unwrap().text().await.unwrap();
    assert!(words.contains("Nothing was charged."), "{words}");
    snap(&browser, "09-order-after-decline").await;

    // e) The merchant refunds the paid order in the gateway's dashboard;
    // the shop's page says refunded and its download is gone.
    let paid_order = order_url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    sign_in(&browser, gateway, &credentials).await;
    snap(&browser, "10-dashboard-events").await;
    browser
        .goto(&format!("{gateway}/dashboard/payments?q={paid_order}"))
        .await
        .unwrap();
    click(&browser, "table a[href^='/dashboard/payments/pay_']").await;
    browser
        .wait_for_url(&format!("{gateway}/dashboard/payments/pay_"), WAIT)
        .await
        .unwrap();
    snap(&browser, "11-dashboard-payment").await;
    // No amount: all that is left.
    click(&browser, "#refund").await;
    browser
        .wait_for_text("main", "refunded", WAIT)
        .await
        .unwrap();
    snap(&browser, "12-dashboard-refunded").await;

    // The shop learns of it by IPN; its page shows it when next loaded.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        browser.goto(&order_url).await.unwrap();
        let status = browser.find("#status").await.unwrap().text().await.unwrap();
        if status == "Refunded" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order page still says {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let links = browser.find_all("a[href*='/downloads/']").await.unwrap();
    assert!(links.is_empty(), "a refunded order offers no download");
    snap(&browser, "13-order-refunded").await;

    browser.quit().await.unwrap();
}

/// The demo's subscription, bought in a real browser: the checkout page
/// states the terms, the order page turns to subscribed by itself (without
/// reloading), and a cancellation in the gateway's dashboard reaches it.
#[tokio::test]
async fn a_customer_subscribes_and_the_merchant_cancels_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, credentials) = Up::start(&dir.path().join("ipn-data"));
    let shop = credentials["shop_url"].as_str().unwrap();
    let gateway = credentials["gateway_url"].as_str().unwrap();
    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("this test needs a browser: {e:#}"));

    browser.goto(&format!("{shop}/")).await.unwrap();
    let price = browser
        .find("#product-membership .price")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(price, "4.99 USD / month");
    fill(
        &browser,
        "#product-membership input[name=customer_email]",
        "cat@example.com",
    )
    .await;
    click(&browser, "#product-membership button[type=submit]").await;
    browser
        .wait_for_url(&format!("{gateway}/checkout/"), WAIT)
        .await
        .unwrap();
    let terms = browser.find("#terms").await.unwrap().text().await.unwrap();
    assert_eq!(terms, "every month");
    let button = browser
        .find("form button[type=submit]")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(button, "Subscribe");
    fill_checkout(
        &browser,
        "Cat Jones",
        "cat@example.com",
        "4242 4242 4242 4242",
    )
    .await;
    snap(&browser, "20-checkout-subscription").await;
    press_pay(&browser).await;
    let order_url = browser
        .wait_for_url(&format!("{shop}/orders/ord_"), WAIT)
        .await
        .unwrap();
    let status = browser
        .wait_for_text("#status", "Subscribed", WAIT)
        .await
        .unwrap();
    assert_eq!(status, "Subscribed — thank you!");
    let state = browser
        .wait_for_text("#subscription", "Active", WAIT)
        .await
        .unwrap();
    assert!(state.contains("Periods paid\n1"), "{state}");
    snap(&browser, "21-order-subscribed").await;

    // A month passes on the gateway's test clock: the renewal shows on the
    // open page by itself. The banner is outside the part that refreshes,
    // so a full reload would have made it stale.
    let banner = browser.find("header").await.unwrap();
    let advanced = reqwest::Client::new()
        .post(format!("{gateway}/v1/test/clock/advance"))
        .bearer_auth(credentials["admin_key"].as_str().unwrap())
        .json(&serde_json::json!({"seconds": 31 * 24 * 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    let state = browser
        .wait_for_text("#subscription", "Periods paid\n2", WAIT)
        .await
        .unwrap();
    assert!(state.contains("Active"), "{state}");
    assert!(
        banner.text().await.is_ok(),
        "the page updated in place, without reloading"
    );

    // The merchant cancels it in the gateway's dashboard, at the period's
    // end; the shop's page says access continues until then.
    sign_in(&browser, gateway, &credentials).await;
    browser
        .goto(&format!("{gateway}/dashboard/subscriptions"))
        .await
        .unwrap();
    click(&browser, "a[href^='/dashboard/subscriptions/sub_']").await;
    browser
        .wait_for_text("#status", "active", WAIT)
        .await
        .unwrap();
    snap(&browser, "22-dashboard-subscription").await;
    click(&browser, "#cancel-at-period-end").await;
    browser
        .wait_for_text("main", "Canceled; access lasts until", WAIT)
        .await
        .unwrap();
    snap(&browser, "23-dashboard-subscription-canceled").await;
    browser.goto(&order_url).await.unwrap();
    let state = browser
        .wait_for_text("#subscription", "Canceled", WAIT)
        .await
        .unwrap();
    assert!(state.contains("access continues"), "{state}");
    let status = browser.find("#status").await.unwrap();
    assert_eq!(status.text().await.unwrap(), "Subscription canceled");
    assert_eq!(
        status.attribute("data-status").await.unwrap().as_deref(),
        Some("paid"),
        "the order stays paid"
    );
    snap(&browser, "24-order-subscription-canceled").await;
    browser.quit().await.unwrap();
}
