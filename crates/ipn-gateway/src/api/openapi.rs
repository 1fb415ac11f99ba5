//! `GET /openapi.json`: the OpenAPI 3.1 description of the API, the checkout
//! page, the postback, the operations routes and the webhook deliveries
//! themselves. The document is a static file kept next to the handlers it
//! describes; the tests below check that it names every route of the router.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The document, as served.
const SPEC: &str = include_str!("openapi.json");

pub async fn spec() -> Response {
    let mut response = (StatusCode::OK, SPEC).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Every (method, path) of `super::super::router`, in OpenAPI syntax.
    const ROUTES: &[(&str, &str)] = &[
        ("post", "/v1/merchants"),
        ("get", "/v1/merchants"),
        ("post", "/v1/endpoints"),
        ("get", "/v1/endpoints"),
        ("get", "/v1/endpoints/{id}"),
        ("patch", "/v1/endpoints/{id}"),
        ("post", "/v1/endpoints/{id}/disable"),
        ("post", "/v1/endpoints/{id}/enable"),
        ("post", "/v1/endpoints/{id}/rotate-secret"),
        ("post", "/v1/endpoints/{id}/recover"),
        ("post", "/v1/events"),
        ("get", "/v1/events"),
        ("get", "/v1/events/{id}"),
        ("get", "/v1/events/{id}/attempts"),
        ("post", "/v1/events/{id}/resend"),
        ("post", "/v1/payments"),
        ("get", "/v1/payments/{id}"),
        ("post", "/v1/payments/{id}/complete"),
        ("post", "/v1/payments/{id}/fail"),
        ("post", "/v1/payments/{id}/refunds"),
        ("post", "/v1/payments/{id}/reverse"),
        ("post", "/v1/payments/{id}/cancel-reversal"),
        ("post", "/v1/checkout/sessions"),
        ("get", "/v1/checkout/sessions/{id}"),
        ("get", "/checkout/{id}"),
        ("post", "/checkout/{id}"),
        ("post", "/v1/subscriptions"),
        ("get", "/v1/subscriptions/{id}"),
        ("post", "/v1/subscriptions/{id}/cancel"),
        ("post", "/v1/subscriptions/{id}/payment-method"),
        ("post", "/v1/test/clock/advance"),
        ("post", "/cgi-bin/webscr"),
        ("post", "/ipn/verify"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];

    /// POST routes that are not JSON API routes and take no Idempotency-Key:
    /// the postback (PayPal's protocol has none) and the customer's checkout
    /// form (the session itself makes a second submit harmless).
    const NOT_API: &[&str] = &["/cgi-bin/webscr", "/ipn/verify", "/checkout/{id}"];

    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn doc() -> Value {
        serde_json::from_str(SPEC).expect("openapi.json is JSON")
    }

    /// Follows a local `$ref` (`#/a/b`), with JSON Pointer unescaping.
    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        doc.pointer(pointer)
    }

    /// A parameter, through its `$ref` if it has one.
    fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => resolve(doc, reference).unwrap_or(value),
            None => value,
        }
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child) {
                        ("$ref", Value::String(target)) => out.push(target),
                        _ => collect_refs(child, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn is_openapi_3_1() {
        let doc = doc();
        let version = doc["openapi"].as_str().expect("openapi is a string");
        assert!(version.starts_with("3.1."), "openapi is {version}");
        assert!(doc["info"]["title"].is_string());
        assert!(doc["info"]["version"].is_string());
    }

    #[test]
    fn describes_every_route_of_the_router() {
        let doc = doc();
        let paths = doc["paths"].as_object().expect("paths is an object");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{} {path} is not described",
                method.to_uppercase()
            );
        }
        // And nothing the router does not serve.
        for (path, item) in paths {
            for method in METHODS {
                if item.get(*method).is_some() {
                    assert!(
                        ROUTES.contains(&(*method, path.as_str())),
                        "{} {path} is described but not routed",
                        method.to_uppercase()
                    );
                }
            }
        }
    }

    #[test]
    fn every_api_post_takes_an_idempotency_key() {
        let doc = doc();
        for (method, path) in ROUTES {
            if *method != "post" {
                continue;
            }
            let item = &doc["paths"][*path];
            let parameters = item["post"]["parameters"]
                .as_array()
                .into_iter()
                .chain(item["parameters"].as_array())
                .flatten()
                .map(|p| deref(&doc, p));
            let has_key = parameters
                .filter(|p| p["in"] == "header")
                .any(|p| p["name"].as_str() == Some("Idempotency-Key"));
            assert_eq!(
                has_key,
                !NOT_API.contains(path),
                "POST {path}: Idempotency-Key parameter present = {has_key}"
            );
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = doc();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            assert!(
                reference.starts_with("#/"),
                "{reference} points outside the document"
            );
            assert!(
                resolve(&doc, reference).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc = doc();
        for (method, path) in ROUTES.iter().filter(|(_, p)| p.contains('{')) {
            let item = &doc["paths"][*path];
            let declared = item[*method]["parameters"]
                .as_array()
                .into_iter()
                .chain(item["parameters"].as_array())
                .flatten()
                .map(|p| deref(&doc, p))
                .any(|p| p["in"] == "path" && p["name"] == "id" && p["required"] == true);
            assert!(declared, "{method} {path}: no required path parameter id");
        }
    }

    /// The test-card table in `POST /v1/payments` is written by hand: it
    /// must list every card `ipn_core::card` knows.
    #[test]
    fn the_payments_description_lists_every_test_card() {
        let doc = doc();
        let description = doc["paths"]["/v1/payments"]["post"]["description"]
            .as_str()
            .expect("POST /v1/payments has a description");
        for card in ipn_core::card::TEST_CARDS {
            assert!(
                description.contains(card.number),
                "POST /v1/payments does not list the test card {}",
                card.number
            );
        }
    }

    #[tokio::test]
    async fn is_served_as_json() {
        let response = spec().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            HeaderValue::from_static("application/json")
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(body, SPEC.as_bytes());
    }
}
