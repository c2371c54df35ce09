//! Operating the service under failure and abuse: the Toss circuit breaker, the payments pause
//! switch and the rate limits. Each is a small piece of state held in [`crate::App`] and
//! consulted by the flows and the router; none of them changes how a payment is settled.

pub mod breaker;
pub mod pause;
pub mod ratelimit;
