//! `ipn-merchant`: the merchant server and its notification handler.
//!
//! Nothing is built here yet: it arrives with issue 5. Until then this crate
//! only fixes its place in the workspace and its dependency on `ipn-core`,
//! which already verifies and reads both wire formats a merchant receives.
