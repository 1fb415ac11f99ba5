//! The event JSON: `serde_json::from_slice::<Event>` on any bytes never
//! panics, and an event that parses writes JSON that reads back as the same
//! event and writes the same bytes again.

#![no_main]

use ipn_core::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
        return;
    };
    let json = serde_json::to_vec(&event).expect("a parsed event serializes");
    let again: Event = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "the JSON of a parsed event does not read back: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, event);
    assert_eq!(serde_json::to_vec(&again).expect("serializes"), json);
});
