//! The test-mode payment processor: what each operation does to payments
//! (`payments`), subscriptions (`subscriptions`) and hosted checkout
//! sessions (`checkout`), each applied inside the writer's transaction with
//! its events; and the task that bills subscriptions on the gateway clock
//! (`billing`).

pub mod billing;
pub mod checkout;
pub mod payments;
pub mod subscriptions;
