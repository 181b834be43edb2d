//! [`Clock`]: where the executor gets the time and waits, so tests control both.
//!
//! The executor never calls `SystemTime::now` or `tokio::time::sleep` itself:
//! journal timestamps, cache freshness, retry backoff and task timeouts all go
//! through a clock. [`SystemClock`] is the real one (its sleeps are tokio's, so
//! `tokio::time::pause` also works with it); [`ManualClock`] never waits: a
//! sleep advances its time at once and is recorded, so a test can assert the
//! exact backoff delays a run asked for without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future the clock resolves after a delay.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The time and a way to wait.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The wall clock, with tokio's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a misconfigured host, not an input: report the epoch.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to or when something sleeps on it.
///
/// A sleep completes immediately and advances the clock by its duration, so
/// a run with retries finishes at once while its timestamps show the waits.
///
/// ```
/// use kf_dag::clock::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// futures::executor::block_on(clock.sleep(Duration::from_secs(2)));
/// assert_eq!(clock.now_ms(), 3_000);
/// assert_eq!(clock.sleeps(), [Duration::from_secs(2)]);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock { now_ms: AtomicU64::new(now_ms), sleeps: Mutex::new(Vec::new()) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Every sleep asked for so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Duration>> {
        // Each operation is one push: a poisoned lock still holds consistent data.
        self.sleeps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.lock().push(duration);
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}
