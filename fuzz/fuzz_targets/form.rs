//! The PayPal form codec: `Form::parse` and `Form::parse_lenient` on any
//! bytes never panic, keep the bytes as given, agree wherever the strict
//! parse succeeds, and what they read encodes back (when the charset can
//! encode it) to a body that parses to the same pairs and charset.

#![no_main]

use ipn_core::paypal::Form;
use ipn_core::paypal::form::{FormError, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let strict = Form::parse(body);
    let lenient = Form::parse_lenient(body);
    if let Ok(strict) = &strict {
        assert_eq!(
            lenient.as_ref(),
            Ok(strict),
            "a strict parse the lenient one disagrees with"
        );
    }
    if let Ok(form) = lenient {
        check(&form, body);
    }
});

fn check(form: &Form, body: &[u8]) {
    assert_eq!(form.as_bytes(), body);
    assert!(!form.is_empty());
    assert_eq!(form.len(), form.pairs().count());
    assert_eq!(form.len(), form.raw_pairs().count());
    for (name, value) in form.pairs() {
        assert!(!name.is_empty());
        assert_eq!(form.get(name), Some(value));
    }

    let pairs: Vec<(&str, &str)> = form.pairs().collect();
    let encoded = match encode(&pairs, form.charset()) {
        Ok(encoded) => encoded,
        // Text a charset decodes but cannot write back (GBK reads GB18030's
        // four-byte sequences) is not encodable: nothing to compare.
        Err(FormError::Unmappable { .. }) => return,
        Err(e) => panic!("pairs of a parsed form do not encode: {e}"),
    };
    let again = Form::parse(&encoded)
        .unwrap_or_else(|e| panic!("encoded body {encoded:?} does not parse: {e}"));
    assert_eq!(again.charset(), form.charset());
    assert_eq!(again.pairs().collect::<Vec<_>>(), pairs);
    // The canonical encoding is a fixed point.
    assert_eq!(
        encode(&pairs, again.charset()).as_deref(),
        Ok(encoded.as_slice())
    );
}
