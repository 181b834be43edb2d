//! The resource vector every quota, node and pod request is measured in.
//! Integer units (milli-CPU, MiB, whole GPUs) so that sums and comparisons are
//! exact and results never depend on float rounding.

use std::fmt;

/// CPU, memory and GPUs: what a pod requests, a node offers or a quota allows.
///
/// Arithmetic saturates: [`Resources::UNLIMITED`] stays unlimited, and an
/// over-large sum never wraps around into a small one.
///
/// ```
/// use kf_train::scheduler::Resources;
/// let pod = Resources::new(4_000, 16_384, 1);
/// let node = Resources::new(64_000, 512_000, 8);
/// assert!(pod.times(8).fits_in(&node));
/// assert!(!pod.times(9).fits_in(&node));
/// assert_eq!(pod.to_string(), "cpu=4000m memory=16384Mi gpu=1");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPU in milli-cores.
    pub cpu_milli: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Whole GPUs.
    pub gpus: u64,
}

impl Resources {
    /// Nothing.
    pub const ZERO: Resources = Resources { cpu_milli: 0, memory_mib: 0, gpus: 0 };
    /// No limit in any dimension (a queue without a quota).
    pub const UNLIMITED: Resources = Resources { cpu_milli: u64::MAX, memory_mib: u64::MAX, gpus: u64::MAX };
    /// Dimension names, in the order [`Resources::get`] indexes them.
    pub const NAMES: [&'static str; 3] = ["cpu", "memory", "gpu"];

    /// A resource vector.
    pub const fn new(cpu_milli: u64, memory_mib: u64, gpus: u64) -> Resources {
        Resources { cpu_milli, memory_mib, gpus }
    }

    /// Only GPUs.
    pub const fn gpus(gpus: u64) -> Resources {
        Resources { cpu_milli: 0, memory_mib: 0, gpus }
    }

    /// Dimension `i` (0 cpu, 1 memory, 2 gpu; anything else is 0).
    pub fn get(&self, i: usize) -> u64 {
        match i {
            0 => self.cpu_milli,
            1 => self.memory_mib,
            2 => self.gpus,
            _ => 0,
        }
    }

    fn zip(self, other: Resources, f: impl Fn(u64, u64) -> u64) -> Resources {
        Resources {
            cpu_milli: f(self.cpu_milli, other.cpu_milli),
            memory_mib: f(self.memory_mib, other.memory_mib),
            gpus: f(self.gpus, other.gpus),
        }
    }

    /// `self + other`, saturating.
    pub fn plus(self, other: Resources) -> Resources {
        self.zip(other, u64::saturating_add)
    }

    /// `self - other`, saturating at zero. Subtracting from
    /// [`Resources::UNLIMITED`] leaves it unlimited.
    pub fn minus(self, other: Resources) -> Resources {
        self.zip(other, |a, b| if a == u64::MAX { a } else { a.saturating_sub(b) })
    }

    /// `self × n`, saturating.
    pub fn times(self, n: u64) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_mul(n),
            memory_mib: self.memory_mib.saturating_mul(n),
            gpus: self.gpus.saturating_mul(n),
        }
    }

    /// Element-wise minimum.
    pub fn min(self, other: Resources) -> Resources {
        self.zip(other, u64::min)
    }

    /// Element-wise maximum.
    pub fn max(self, other: Resources) -> Resources {
        self.zip(other, u64::max)
    }

    /// Whether every dimension is ≤ the same dimension of `limit`.
    pub fn fits_in(&self, limit: &Resources) -> bool {
        self.cpu_milli <= limit.cpu_milli && self.memory_mib <= limit.memory_mib && self.gpus <= limit.gpus
    }

    /// The first dimension in which `self` exceeds `limit`, by name.
    pub fn first_excess(&self, limit: &Resources) -> Option<&'static str> {
        (0..3).find(|&i| self.get(i) > limit.get(i)).map(|i| Self::NAMES[i])
    }

    /// Whether every dimension is zero.
    pub fn is_zero(&self) -> bool {
        *self == Resources::ZERO
    }

    /// How many copies of `self` fit in `free` (u64::MAX for a zero request).
    pub fn copies_in(&self, free: &Resources) -> u64 {
        (0..3).filter(|&i| self.get(i) > 0).map(|i| free.get(i) / self.get(i)).min().unwrap_or(u64::MAX)
    }

    /// The dominant share of `self` in `total`: max over dimensions of
    /// `self[i] / total[i]`, ignoring dimensions the total does not have.
    pub fn dominant_share(&self, total: &Resources) -> f64 {
        (0..3)
            .filter(|&i| total.get(i) > 0 && total.get(i) != u64::MAX)
            .map(|i| self.get(i) as f64 / total.get(i) as f64)
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: u64, unit: &str| if v == u64::MAX { "unlimited".to_string() } else { format!("{v}{unit}") };
        write!(
            f,
            "cpu={} memory={} gpu={}",
            show(self.cpu_milli, "m"),
            show(self.memory_mib, "Mi"),
            show(self.gpus, "")
        )
    }
}
