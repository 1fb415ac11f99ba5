//! The gateway's postback matching (`check_postback`), as the gateway reads a
//! postback (`Form::parse_lenient`).
//!
//! Input: an event's JSON, a NUL byte (never raw in JSON), then the posted
//! bytes. For an event the PayPal encoder writes: the sent body parses; the
//! sent body posted back as PayPal documents it (`cmd=_notify-validate&` in
//! front) or rebuilt as listener libraries do (`&name=value…&cmd=…`, `%20`,
//! lowercase hex) matches; any posted body, and the exact postback with the
//! posted bytes spliced in, never panics and matches only if its fields,
//! decoded, are exactly the sent ones.

#![no_main]

use ipn_core::event::Event;
use ipn_core::paypal::form::encode;
use ipn_core::paypal::{Form, Sending, check_postback, encode_event, request_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (json, posted) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let Ok(event) = serde_json::from_slice::<Event>(json) else {
        return;
    };
    let Ok(body) = encode_event(&event, Sending::First) else {
        return;
    };
    let sent = Form::parse(&body)
        .unwrap_or_else(|e| panic!("an encoded event does not parse: {e}\n{body:?}"));
    if let Ok(resent) = encode_event(&event, Sending::Resend) {
        Form::parse(&resent).expect("an encoded resend parses");
    }

    // As PayPal documents it, strictly and leniently read.
    let exact = request_body(sent.as_bytes());
    assert_eq!(
        check_postback(&Form::parse(&exact).expect("postback parses"), &sent),
        Ok(())
    );
    assert_eq!(check(&exact, &sent), Some(true));

    // As a listener library rebuilds it.
    let mut pairs: Vec<(&str, &str)> = sent.pairs().collect();
    pairs.push(("cmd", "_notify-validate"));
    let rebuilt = encode(&pairs, sent.charset()).expect("sent pairs encode again");
    let rebuilt = [b"&".as_slice(), &library_style(&rebuilt)].concat();
    assert_eq!(
        check(&rebuilt, &sent),
        Some(true),
        "{}",
        String::from_utf8_lossy(&rebuilt)
    );

    // Anything posted, alone or spliced into the exact postback.
    check(posted, &sent);
    let at = posted.len() % (exact.len() + 1);
    let spliced = [&exact[..at], posted, &exact[at..]].concat();
    check(&spliced, &sent);
});

/// Reads a posted body as the gateway does; whether it matched, `None` if
/// unreadable. A match is asserted to carry exactly the sent fields.
fn check(posted: &[u8], sent: &Form) -> Option<bool> {
    let form = Form::parse_lenient(posted).ok()?;
    let matched = check_postback(&form, sent).is_ok();
    if matched {
        let fields: Vec<(&str, &str)> = form
            .pairs()
            .filter(|&pair| pair != ("cmd", "_notify-validate"))
            .collect();
        assert_eq!(
            fields,
            sent.pairs().collect::<Vec<_>>(),
            "a different postback matched"
        );
        assert_eq!(form.len(), sent.len() + 1);
    }
    Some(matched)
}

/// `%20` for '+' and escapes in lowercase hex, as `encodeURIComponent`-style
/// and Python listeners write them.
fn library_style(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len());
    let mut escape = 0;
    for &b in canonical {
        if escape > 0 {
            out.push(b.to_ascii_lowercase());
            escape -= 1;
        } else if b == b'+' {
            out.extend_from_slice(b"%20");
        } else {
            escape = if b == b'%' { 2 } else { 0 };
            out.push(b);
        }
    }
    out
}
