//! Injected provider faults: what the network and Toss's servers do to a payment service on a
//! bad day, on demand.
//!
//! Toss documents no fault injection beyond `TossPayments-Test-Code` (which forces an error
//! *answer*); these model what its documentation warns about instead: a 5xx
//! (`FAILED_INTERNAL_SYSTEM_PROCESSING`), no answer in time, a slow answer and a dropped
//! connection. With `afterProcessing` the operation is carried out first and only the answer is
//! lost, which is the case a payment service must resolve by looking the payment up.
//!
//! Sandbox choices: a fault applies to the next `count` matching `/v1` calls in arrival order
//! (whatever they are: replays and errors consume it too). A 5xx, before or after processing,
//! is an answer from Toss: it is stored under the request's Idempotency-Key and replayed to
//! every retry with that key, as Toss's idempotency guide says of any first answer — so a
//! caller recovers by looking the payment up, never by retrying the same key. A dropped
//! connection *before* processing never reached Toss: nothing is stored and a retry with the
//! key executes; after processing, the real answer is stored (only its delivery was lost). A
//! caller that gives up during a before-processing hang leaves nothing behind either.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `/v1` operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Confirm,
    Lookup,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultMode {
    /// 500 `FAILED_INTERNAL_SYSTEM_PROCESSING`.
    #[serde(rename = "status5xx")]
    Status5xx,
    /// Hang for the configured `timeout_fault_hang`, then answer normally.
    #[serde(rename = "timeout")]
    Timeout,
    /// Sleep `delayMs`, then answer normally.
    #[serde(rename = "delay")]
    Delay,
    /// Drop the connection without an HTTP answer.
    #[serde(rename = "reset")]
    Reset,
}

/// Body of `POST /sandbox/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    pub mode: FaultMode,
    /// How many matching calls it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// For `delay`; absent means one second.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Carry the operation out, then lose the answer.
    #[serde(default)]
    pub after_processing: bool,
    /// Which operations it applies to; absent means all three.
    #[serde(default)]
    pub operations: Option<Vec<Operation>>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// One occurrence on any operation, before processing.
    pub fn new(mode: FaultMode) -> Self {
        Fault {
            mode,
            count: 1,
            delay_ms: None,
            after_processing: false,
            operations: None,
        }
    }

    fn applies_to(&self, op: Operation) -> bool {
        self.operations.as_ref().is_none_or(|ops| ops.contains(&op))
    }

    pub(crate) fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.unwrap_or(1000))
    }
}

/// Pending faults, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Vec<Fault>,
}

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.count > 0 {
            self.pending.push(fault);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Consumes one occurrence of the oldest fault that targets `op`.
    pub(crate) fn take(&mut self, op: Operation) -> Option<Fault> {
        let i = self.pending.iter().position(|f| f.applies_to(op))?;
        let fault = self.pending[i].clone();
        self.pending[i].count -= 1;
        if self.pending[i].count == 0 {
            self.pending.remove(i);
        }
        Some(fault)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_body() {
        let f: Fault = serde_json::from_str(
            r#"{"mode":"status5xx","count":2,"afterProcessing":true,"operations":["confirm"]}"#,
        )
        .unwrap();
        assert_eq!(f.mode, FaultMode::Status5xx);
        assert_eq!(f.count, 2);
        assert!(f.after_processing);
        let f: Fault = serde_json::from_str(r#"{"mode":"delay","delayMs":50}"#).unwrap();
        assert_eq!((f.count, f.delay()), (1, Duration::from_millis(50)));
        assert!(serde_json::from_str::<Fault>(r#"{"mode":"explode"}"#).is_err());
    }

    #[test]
    fn consumed_in_order_and_by_operation() {
        let mut faults = Faults::default();
        faults.push(Fault {
            count: 2,
            operations: Some(vec![Operation::Cancel]),
            ..Fault::new(FaultMode::Reset)
        });
        faults.push(Fault::new(FaultMode::Status5xx));
        assert_eq!(
            faults.take(Operation::Lookup).unwrap().mode,
            FaultMode::Status5xx
        );
        assert!(faults.take(Operation::Lookup).is_none());
        assert_eq!(
            faults.take(Operation::Cancel).unwrap().mode,
            FaultMode::Reset
        );
        assert_eq!(
            faults.take(Operation::Cancel).unwrap().mode,
            FaultMode::Reset
        );
        assert!(faults.take(Operation::Cancel).is_none());
    }
}
