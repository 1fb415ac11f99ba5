//! Material for hostile-corpus tests: what an attacker, a careless client
//! or a broken library sends. Every list is deterministic, so a failing case
//! is named and repeatable. The services' tests pair these with each of
//! their routes and check that every one gets a clear 4xx and changes
//! nothing.

/// Text meant to break out of wherever it lands: markup, SQL, templates,
/// paths, headers, shells, format strings, Unicode tricks, control bytes.
pub const INJECTIONS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "' OR '1'='1' --",
    "1; DROP TABLE events; --",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "${jndi:ldap://127.0.0.1:9/x}",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "$(touch /tmp/pwned)`id`",
    "%s%s%s%n%x",
    "line\r\nX-Injected: yes",
    "nul\u{0}byte",
    "bell\u{7}escape\u{1b}[31m",
    "\u{202e}gnp.exe",
    "\u{feff}bom",
    "😀🏳️‍🌈ẞ",
    "%00%0d%0a%25",
    "\\ud800",
    "null",
];

/// An identifier of `prefix` (`pay_`, `evt_` …) in every wrong shape.
pub fn bad_ids(prefix: &str) -> Vec<String> {
    let ulid = "01KAZ3NDEKTSV4RRFFQ69G5FAV";
    vec![
        String::new(),
        prefix.to_owned(),
        format!("{prefix}{}", &ulid[..10]),
        format!("{prefix}{ulid}0"),
        format!("{prefix}{}", ulid.to_lowercase()),
        format!("{}{ulid}", prefix.to_uppercase()),
        format!("xyz_{ulid}"),
        ulid.to_owned(),
        format!("{prefix}{ulid}%00"),
        format!("{prefix}..%2F..%2Fetc%2Fpasswd"),
        format!("{prefix}%3Cscript%3E"),
        format!("{prefix}{}", "A".repeat(4096)),
        format!("{prefix}%FF%FE"),
        format!("{prefix}%F0%9F%98%80"),
        // Well formed, but nobody's.
        format!("{prefix}{ulid}"),
    ]
}

/// Bodies that are not a JSON object a route could take, each named.
pub fn bad_json_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let nested = |levels: usize| ["[".repeat(levels), "]".repeat(levels)].concat();
    vec![
        ("empty", Vec::new()),
        ("whitespace", b" \r\n\t ".to_vec()),
        ("invalid UTF-8", b"{\"a\": \"\xff\xfe\xfd\"}".to_vec()),
        (
            "bare invalid bytes",
            b"\xc3\x28\xa0\xa1\xe2\x28\xa1".to_vec(),
        ),
        ("NUL bytes", b"{\0\"a\0\": 1}".to_vec()),
        ("truncated", b"{\"amount\": 19".to_vec()),
        ("trailing garbage", b"{} {}".to_vec()),
        ("array", b"[]".to_vec()),
        ("array of values", b"[1999, \"USD\"]".to_vec()),
        ("string", b"\"hello\"".to_vec()),
        ("number", b"42".to_vec()),
        ("null", b"null".to_vec()),
        ("true", b"true".to_vec()),
        ("nested 100,000 deep", nested(100_000).into_bytes()),
        ("object nested 10,000 deep", {
            let mut body = "{\"a\":".repeat(10_000);
            body.push('1');
            body.push_str(&"}".repeat(10_000));
            body.into_bytes()
        }),
        ("300 KiB string", {
            let mut body = b"{\"a\": \"".to_vec();
            body.extend(std::iter::repeat_n(b'a', 300 * 1024));
            body.extend_from_slice(b"\"}");
            body
        }),
        ("lone surrogate", br#"{"a": "\ud800"}"#.to_vec()),
        ("number out of range", b"{\"a\": 1e999}".to_vec()),
        ("byte order mark", b"\xef\xbb\xbf{}".to_vec()),
        ("XML", b"<?xml version=\"1.0\"?><a>1</a>".to_vec()),
        ("form", b"amount=1999&currency=USD".to_vec()),
        (
            "multipart",
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n".to_vec(),
        ),
        ("JSON with comments", b"{/* hi */ \"a\": 1}".to_vec()),
        ("single quotes", b"{'a': 1}".to_vec()),
        ("unquoted key", b"{a: 1}".to_vec()),
        ("NaN", b"{\"a\": NaN}".to_vec()),
    ]
}

/// JSON values of the wrong kind for a field that wants `kind`, plus the
/// injections as strings where a string is wanted but must be one of a few.
pub fn wrong_values() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        ("null", json!(null)),
        ("true", json!(true)),
        ("negative", json!(-1)),
        ("zero", json!(0)),
        ("huge integer", json!(u64::MAX)),
        ("float", json!(19.99)),
        ("empty string", json!("")),
        ("string number", json!("1999")),
        ("array", json!([1, 2])),
        ("object", json!({"a": 1})),
        ("100 KiB string", json!("x".repeat(100 * 1024))),
    ]
}

/// How a route says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A 4xx with the JSON error both services use: `{"error": {"code",
    /// "message"}}`, both non-empty.
    Api,
    /// A 4xx page with text (HTML, plain text, or that JSON error), or a
    /// redirect to `sign_in` when the request had no session.
    Page { sign_in: &'static str },
    /// PayPal's postback protocol: 200 with exactly `INVALID` (or a JSON
    /// 413 for a body over the limit).
    Postback,
}

/// One request of a corpus.
#[derive(Debug, Clone)]
pub struct Shot {
    /// The route it aims at, as counted (`POST /v1/payments`).
    pub route: &'static str,
    pub answer: Answer,
    pub method: reqwest::Method,
    /// Path and query, percent-encoded as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// What is wrong with it, for the failure list.
    pub what: String,
}

/// Sends `shot` to the server at `base_url`; `None` when the answer is the
/// clear refusal its route owes, else what was wrong with the answer.
pub async fn fire(base_url: &str, shot: &Shot) -> Option<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let mut request = client.request(shot.method.clone(), format!("{base_url}{}", shot.path));
    for (name, value) in &shot.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &shot.body {
        request = request.body(body.clone());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Some(format!("no answer: {e}")),
    };
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, location) = (header("content-type"), header("location"));
    let text = response.text().await.unwrap_or_default();
    let shown = || {
        let start: String = text.chars().take(300).collect();
        format!("{status} {content_type}: {start}")
    };
    if status.is_server_error() {
        return Some(format!("server error: {}", shown()));
    }
    let api_error = || {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .is_some_and(|v| {
                v["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
                    && v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
            })
    };
    let ok = match shot.answer {
        Answer::Api => status.is_client_error() && api_error(),
        Answer::Page { sign_in } => {
            (status.is_client_error()
                && (content_type.starts_with("text/") || api_error())
                && !text.trim().is_empty())
                || (status.is_redirection() && location == sign_in)
        }
        Answer::Postback => {
            (status == reqwest::StatusCode::OK && text == "INVALID")
                || (status == reqwest::StatusCode::PAYLOAD_TOO_LARGE && api_error())
        }
    };
    (!ok).then(shown)
}

/// Fires every shot; returns how many went to each route and the list of
/// wrong answers, each naming its shot.
pub async fn fire_all(
    base_url: &str,
    shots: &[Shot],
) -> (std::collections::BTreeMap<&'static str, usize>, Vec<String>) {
    let mut per_route = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for shot in shots {
        *per_route.entry(shot.route).or_default() += 1;
        if let Some(wrong) = fire(base_url, shot).await {
            let path: String = shot.path.chars().take(80).collect();
            failures.push(format!("{} {} [{path}]: {wrong}", shot.route, shot.what));
        }
    }
    (per_route, failures)
}

/// Fires the corpus between two snapshots of the stores and asserts what a
/// run must show: no wrong answer, nothing stored (`snapshot` before and
/// after are equal), at least `min` requests a route. Prints the counts a
/// closing note quotes.
pub async fn assert_refused<S: PartialEq + std::fmt::Debug>(
    base_url: &str,
    shots: &[Shot],
    min: usize,
    snapshot: impl Fn() -> S,
) {
    let before = snapshot();
    let (per_route, failures) = fire_all(base_url, shots).await;
    let after = snapshot();
    let total = shots.len();
    assert!(
        failures.is_empty(),
        "{} of {total} answers were wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(before, after, "a refused request changed what is stored");
    let thin: Vec<_> = per_route.iter().filter(|(_, n)| **n < min).collect();
    assert!(
        thin.is_empty(),
        "routes with fewer than {min} requests: {thin:?}"
    );
    println!(
        "hostile corpus: {total} requests over {} routes, 0 wrong answers, nothing stored",
        per_route.len()
    );
    for (route, n) in &per_route {
        println!("  {n:5}  {route}");
    }
}
