//! The invocation's time budget, built once from Lambda's deadline: when the
//! work must end, when ECR calls are cut, when a sweep starts nothing new.
//! Everything else asks it rather than doing its own arithmetic.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::registry::OPERATION_TIMEOUT;

/// Kept back from Lambda's deadline to log, emit metrics and post the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Kept back between cutting the ECR calls and the end of the work, to build
/// the report that says which tags were cut.
const CALLS_MARGIN: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// When the work must be done. `None`: no deadline (local runners); only the SDK's own timeouts apply.
    end: Option<Instant>,
}

impl Budget {
    /// Up to the margin before `deadline`, as seen at `now` (wall clock) and `started` (monotonic).
    /// A deadline that has already passed is no real one (Lambda would have stopped the function):
    /// local runners such as `cargo lambda watch` send one.
    pub fn from_deadline(deadline: SystemTime, now: SystemTime, started: Instant) -> Budget {
        let left = deadline.duration_since(now).ok().filter(|left| !left.is_zero());
        Budget { end: left.map(|l| started + l.saturating_sub(DEADLINE_MARGIN)) }
    }

    pub fn unlimited() -> Budget {
        Budget { end: None }
    }

    /// The time left, `None` when unlimited.
    pub fn left(&self) -> Option<Duration> {
        self.end.map(|end| end.saturating_duration_since(Instant::now()))
    }

    /// When ECR calls still unanswered are cut ([`crate::registry::deadline::Deadline`]).
    pub fn calls_end(&self) -> Option<Instant> {
        self.end.map(|end| end.checked_sub(CALLS_MARGIN).unwrap_or(end))
    }

    /// When a sweep starts no new ECR work: all but one ECR operation's timeout
    /// of what is left, so the calls under way still end in time (at least half of it).
    pub fn sweep_stop(&self) -> Option<Instant> {
        self.left().map(|left| Instant::now() + left.saturating_sub(OPERATION_TIMEOUT).max(left / 2))
    }

    /// Runs `work`; `None` when the budget ran out first (and `work` was stopped).
    pub async fn run<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        match self.end {
            Some(end) => tokio::time::timeout_at(end, work).await.ok(),
            None => Some(work.await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_margin_before_the_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let started = Instant::now();
        let end = |deadline| Budget::from_deadline(deadline, now, started).end;
        assert_eq!(end(now + Duration::from_secs(30)), Some(started + Duration::from_millis(29_500)));
        assert_eq!(end(now + Duration::from_millis(300)), Some(started), "nearly out of time: stop now");
        let budget = Budget::from_deadline(now + Duration::from_secs(30), now, started);
        assert_eq!(budget.calls_end(), Some(started + Duration::from_millis(29_250)));
    }

    #[test]
    fn a_deadline_already_past_is_no_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for deadline in [now, now - Duration::from_secs(5), SystemTime::UNIX_EPOCH] {
            assert_eq!(Budget::from_deadline(deadline, now, Instant::now()), Budget::unlimited());
        }
        assert_eq!((Budget::unlimited().left(), Budget::unlimited().calls_end()), (None, None));
    }

    #[test]
    fn a_sweep_keeps_one_operation_timeout_for_the_calls_under_way() {
        let started = Instant::now();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let long = Budget::from_deadline(now + Duration::from_secs(30), now, started).sweep_stop().unwrap();
        assert!(long <= started + Duration::from_millis(29_500) - OPERATION_TIMEOUT + Duration::from_millis(50));
        let short = Budget::from_deadline(now + Duration::from_secs(4), now, started).sweep_stop().unwrap();
        assert!(short >= started + Duration::from_millis(1_700), "at least half of what is left");
    }
}
