//! The `paypal` dialect: classic PayPal IPN.
//!
//! - [`form`]: the `x-www-form-urlencoded` codec that keeps bytes and order.
//! - [`message`]: typed reading of a received IPN.
//! - [`encode`]: events written as IPN bodies.
//! - [`postback`]: verification by posting the message back.
//! - [`date`]: PayPal's `payment_date` format.

pub mod date;
pub mod encode;
pub mod form;
pub mod message;
pub mod postback;

pub use encode::{EncodeError, Sending, encode_event};
pub use form::{Form, FormError};
pub use message::{CartItem, FieldError, IpnMessage, MAX_CART_ITEMS, PaymentStatus, TxnType};
pub use postback::{Answer, Mismatch, check_postback, parse_answer, request_body};
