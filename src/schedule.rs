//! When each account polls. Many accounts in one process must neither all poll at start-up nor
//! line up later: the first polls are spread evenly over most of one interval (after which the
//! ±5 % jitter of each poller keeps them apart), and a bound on polls running at once keeps the
//! sockets, buffers and API load of the process bounded whatever the number of accounts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Share of the interval over which first polls are spread; the rest leaves the last ones
/// time to finish, so that every account has been polled (and /-/ready answers 200) within
/// one interval.
const SPREAD: f64 = 0.9;

/// How long account `index` of `count` waits before its first poll: 0 for the first, then
/// evenly spaced. A single account polls at once.
pub fn first_poll_delay(index: usize, count: usize, interval: Duration) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    interval.mul_f64(SPREAD * index as f64 / count as f64)
}

/// Slots for polls running at once, shared by every poller of the process.
#[derive(Debug, Clone)]
pub struct PollSlots(Arc<Semaphore>);

impl PollSlots {
    pub fn new(max_concurrent: std::num::NonZeroUsize) -> Self {
        PollSlots(Arc::new(Semaphore::new(max_concurrent.get())))
    }

    /// Waits for a free slot; the poll holds it until the permit is dropped.
    pub async fn acquire(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.0.acquire().await.expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_polls_are_spread_over_most_of_one_interval() {
        let interval = Duration::from_secs(300);
        assert_eq!(first_poll_delay(0, 1, interval), Duration::ZERO);
        let delays: Vec<Duration> = (0..1000).map(|i| first_poll_delay(i, 1000, interval)).collect();
        assert_eq!(delays[0], Duration::ZERO);
        // Evenly spaced: 270 s / 1,000 = 270 ms apart, so never two at the same moment.
        for pair in delays.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap > Duration::from_millis(269) && gap < Duration::from_millis(271), "{gap:?}");
        }
        assert!(*delays.last().unwrap() < interval.mul_f64(0.9));
    }

    #[tokio::test]
    async fn slots_bound_polls_at_once() {
        let slots = PollSlots::new(std::num::NonZeroUsize::new(2).unwrap());
        let a = slots.acquire().await;
        let _b = slots.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(third.is_err(), "a third poll ran with two slots");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), slots.acquire()).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
    }
}
