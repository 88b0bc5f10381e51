//! How many walking tasks, and how many pages, the whole process holds at
//! once, all streams together (see `walk.rs` for why walks run as slices).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::client::Client;

/// Pages held in memory at once (see `Budget::pages`): about 2-4 MB each for
/// 1000 tickets. The writer, on its own thread, keeps up with far more
/// than the API can send; these cover the pages being read and conformed.
const PAGES_IN_MEMORY: usize = 3;
/// The most tasks walking at once, all streams together.
const MAX_SEATS: usize = 16;

/// How many walking tasks may run at once, all streams together.
pub struct Budget {
    active: AtomicUsize,
    max: usize,
    /// Pages held in memory at once, all streams together: from the moment
    /// an answer's headers arrive until its lines are handed to the writer.
    /// Requests waiting for an answer hold none, so a slow API can have
    /// many more requests in flight than this.
    pub(crate) pages: Arc<tokio::sync::Semaphore>,
}

/// A walking task's place in the budget, given back when dropped.
pub(crate) struct Seat(Arc<Budget>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Budget {
    pub fn new() -> Arc<Budget> {
        Budget::with_max(MAX_SEATS)
    }

    pub fn with_max(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            active: AtomicUsize::new(0),
            max: max.max(1),
            pages: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_MEMORY)),
        })
    }

    /// Requests that must be in flight to use the rate budget at the round
    /// trip measured so far (one more for the page being conformed). The
    /// rate is the budget's, or what the one worker thread conforms if that
    /// is less (an unlimited server): more in flight would only hold pages.
    pub(crate) fn target(&self, client: &Client) -> usize {
        let rtt = client
            .latency()
            .map_or(0.25, |d| d.as_secs_f64())
            .clamp(0.001, 30.0);
        let rate = client
            .pages_per_second()
            .map_or(client.rate_per_second(), |cpu| {
                cpu.min(client.rate_per_second())
            });
        let needed = (rate * rtt * 1.2).ceil() as usize + 1;
        needed.max(2).min(self.max)
    }

    /// A seat, whatever the budget: every walk has at least one task.
    pub(crate) fn join(self: &Arc<Budget>) -> Seat {
        self.active.fetch_add(1, Ordering::Relaxed);
        Seat(self.clone())
    }

    /// A seat for one more task, if the budget has room.
    pub(crate) fn try_join(self: &Arc<Budget>, client: &Client) -> Option<Seat> {
        let target = self.target(client);
        self.active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < target).then_some(n + 1)
            })
            .ok()
            .map(|_| Seat(self.clone()))
    }
}
