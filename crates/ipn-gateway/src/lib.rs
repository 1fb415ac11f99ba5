//! `ipn-gateway`: the payment gateway and its durable, signed delivery engine.
//!
//! Nothing is built here yet: the gateway arrives with issue 3 (delivery
//! engine) and issue 4 (test-mode payments). Until then this crate only fixes
//! its place in the workspace and its dependency on `ipn-core`, which already
//! holds the event model and both wire formats it will send.
