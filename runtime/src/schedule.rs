//! Learning-rate schedules (constant, step, exponential, cosine, linear warm-up, warm-up then
//! cosine, one-cycle) evaluated at an epoch or step index, and Keras' reduce-on-plateau rule.

use std::f64::consts::PI;

/// Whether a schedule's index counts epochs or optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleUnit {
    /// The schedule is evaluated once at the start of each epoch (0-based epoch index).
    #[default]
    Epoch,
    /// The schedule is evaluated before each optimizer step (0-based global step).
    Step,
}

/// A learning rate as a function of a 0-based index `t` (epoch or step, see
/// [`ScheduleUnit`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Always `lr`.
    Constant(f64),
    /// `initial * factor^floor(t / every)`.
    Step {
        /// Rate at `t = 0`.
        initial: f64,
        /// Multiplier applied every `every` units.
        factor: f64,
        /// Period of the drops (>= 1).
        every: usize,
    },
    /// `initial * rate^(t / decay_steps)`, the exponent floored when `staircase` (Keras
    /// `ExponentialDecay`).
    Exponential {
        /// Rate at `t = 0`.
        initial: f64,
        /// Multiplier per `decay_steps`.
        rate: f64,
        /// Units per application of `rate`.
        decay_steps: usize,
        /// Floor the exponent.
        staircase: bool,
    },
    /// Keras `CosineDecay`: `initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(t, T) / T)) +
    /// alpha)` with `T = decay_steps`.
    Cosine {
        /// Rate at `t = 0`.
        initial: f64,
        /// Length of the decay.
        decay_steps: usize,
        /// Final rate as a fraction of `initial`.
        alpha: f64,
    },
    /// Linear warm-up from `start` to the wrapped schedule's first rate over `warmup` units,
    /// then the wrapped schedule with its index shifted: `after(t - warmup)`.
    Warmup {
        /// Rate at `t = 0`.
        start: f64,
        /// Length of the warm-up.
        warmup: usize,
        /// The schedule that follows.
        after: Box<Schedule>,
    },
    /// PyTorch `OneCycleLR` (two phases, cosine annealing): from `max_lr / div_factor` up to
    /// `max_lr` at `t = pct_start * total - 1`, then down to
    /// `max_lr / (div_factor * final_div_factor)` at `t = total - 1`, and there after.
    /// Each phase anneals as `end + (start - end) / 2 * (1 + cos(pi * p))`, `p` the fraction
    /// of the phase done.
    OneCycle {
        /// The peak rate.
        max_lr: f64,
        /// Steps (or epochs) of the whole cycle.
        total: usize,
        /// Fraction of the cycle spent rising (PyTorch default 0.3).
        pct_start: f64,
        /// `max_lr / initial rate` (PyTorch default 25).
        div_factor: f64,
        /// `initial rate / final rate` (PyTorch default 1e4).
        final_div_factor: f64,
    },
}

/// `end + (start - end) / 2 * (1 + cos(pi * p))`: `start` at `p = 0`, `end` at `p = 1`.
fn cosine_anneal(start: f64, end: f64, p: f64) -> f64 {
    end + (start - end) / 2.0 * (1.0 + (PI * p.clamp(0.0, 1.0)).cos())
}

impl Schedule {
    /// Linear warm-up from `start` to `peak` over `warmup` units, then Keras `CosineDecay`
    /// from `peak` down to `alpha * peak` at `t = total` (and there after).
    pub fn warmup_cosine(start: f64, peak: f64, warmup: usize, total: usize, alpha: f64) -> Self {
        Schedule::Cosine {
            initial: peak,
            decay_steps: total.saturating_sub(warmup).max(1),
            alpha,
        }
        .with_warmup(start, warmup)
    }

    /// PyTorch's `OneCycleLR` with its defaults (`pct_start 0.3`, `div_factor 25`,
    /// `final_div_factor 1e4`) over `total` units, peaking at `max_lr`.
    pub fn one_cycle(max_lr: f64, total: usize) -> Self {
        Schedule::OneCycle {
            max_lr,
            total,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// Wraps `self` in a linear warm-up of `warmup` units starting from `start`.
    pub fn with_warmup(self, start: f64, warmup: usize) -> Schedule {
        Schedule::Warmup {
            start,
            warmup,
            after: Box::new(self),
        }
    }

    /// The learning rate at index `t`.
    pub fn at(&self, t: usize) -> f64 {
        match self {
            Schedule::Constant(lr) => *lr,
            Schedule::Step {
                initial,
                factor,
                every,
            } => initial * factor.powi((t / (*every).max(1)) as i32),
            Schedule::Exponential {
                initial,
                rate,
                decay_steps,
                staircase,
            } => {
                let mut p = t as f64 / (*decay_steps).max(1) as f64;
                if *staircase {
                    p = p.floor();
                }
                initial * rate.powf(p)
            }
            Schedule::Cosine {
                initial,
                decay_steps,
                alpha,
            } => {
                let total = (*decay_steps).max(1) as f64;
                let progress = (t as f64).min(total) / total;
                let cosine = 0.5 * (1.0 + (PI * progress).cos());
                initial * ((1.0 - alpha) * cosine + alpha)
            }
            Schedule::Warmup {
                start,
                warmup,
                after,
            } => {
                if t < *warmup {
                    let peak = after.at(0);
                    start + (peak - start) * t as f64 / *warmup as f64
                } else {
                    after.at(t - warmup)
                }
            }
            Schedule::OneCycle {
                max_lr,
                total,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = max_lr / div_factor;
                let min_lr = initial / final_div_factor;
                let up_end = (pct_start * *total as f64 - 1.0).max(0.0);
                let down_end = (*total as f64 - 1.0).max(up_end);
                let t = t as f64;
                if t <= up_end {
                    if up_end == 0.0 {
                        return *max_lr;
                    }
                    cosine_anneal(initial, *max_lr, t / up_end)
                } else if down_end > up_end {
                    cosine_anneal(*max_lr, min_lr, (t - up_end) / (down_end - up_end))
                } else {
                    min_lr
                }
            }
        }
    }
}

/// Whether a monitored quantity improves by going down or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

impl Mode {
    /// The natural mode of a metric name: `Max` for names containing `acc`, else `Min`.
    pub fn for_metric(name: &str) -> Mode {
        if name.contains("acc") {
            Mode::Max
        } else {
            Mode::Min
        }
    }

    /// Whether `current` beats `best` by more than `min_delta`.
    pub fn improves(&self, current: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Mode::Min => current < best - min_delta,
            Mode::Max => current > best + min_delta,
        }
    }

    /// The starting "best" value: `+inf` for `Min`, `-inf` for `Max`.
    pub fn worst(&self) -> f64 {
        match self {
            Mode::Min => f64::INFINITY,
            Mode::Max => f64::NEG_INFINITY,
        }
    }
}

/// Keras `ReduceLROnPlateau`: multiply the rate by `factor` after `patience` epochs without
/// improvement, then wait `cooldown` epochs before counting again; never below `min_lr`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    /// Multiplier applied on a plateau (< 1).
    pub factor: f64,
    /// Epochs without improvement before a reduction.
    pub patience: usize,
    /// Direction of improvement.
    pub mode: Mode,
    /// Smallest change counted as an improvement.
    pub min_delta: f64,
    /// Epochs to wait after a reduction before counting again.
    pub cooldown: usize,
    /// Lower bound of the rate.
    pub min_lr: f64,
    best: f64,
    wait: usize,
    cooldown_counter: usize,
}

impl ReduceOnPlateau {
    /// A rule with Keras' defaults for the rest (`min_delta 1e-4`, `cooldown 0`,
    /// `min_lr 0`).
    pub fn new(factor: f64, patience: usize, mode: Mode) -> Self {
        Self {
            factor,
            patience,
            mode,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: mode.worst(),
            wait: 0,
            cooldown_counter: 0,
        }
    }

    /// Feeds one epoch's value of the monitored metric and the current rate; returns the
    /// rate to use next. A NaN value counts as no improvement.
    pub fn update(&mut self, value: f64, lr: f64) -> f64 {
        let in_cooldown = self.cooldown_counter > 0;
        if in_cooldown {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.mode.improves(value, self.best, self.min_delta) {
            self.best = value;
            self.wait = 0;
            lr
        } else if !in_cooldown {
            self.wait += 1;
            if self.wait >= self.patience && lr > self.min_lr {
                self.cooldown_counter = self.cooldown;
                self.wait = 0;
                (lr * self.factor).max(self.min_lr)
            } else {
                lr
            }
        } else {
            lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_schedules() {
        assert_eq!(Schedule::Constant(0.1).at(1000), 0.1);
        let s = Schedule::Step {
            initial: 1.0,
            factor: 0.5,
            every: 3,
        };
        let got: Vec<f64> = (0..7).map(|t| s.at(t)).collect();
        assert_eq!(got, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        let e = Schedule::Exponential {
            initial: 2.0,
            rate: 0.5,
            decay_steps: 2,
            staircase: false,
        };
        assert_eq!(e.at(0), 2.0);
        assert_eq!(e.at(2), 1.0);
        assert_eq!(e.at(4), 0.5);
        assert!((e.at(1) - 2.0 * 0.5f64.sqrt()).abs() < 1e-15);
        let es = Schedule::Exponential {
            initial: 2.0,
            rate: 0.5,
            decay_steps: 2,
            staircase: true,
        };
        assert_eq!([es.at(1), es.at(3)], [2.0, 1.0]);
    }

    #[test]
    fn cosine_and_warmup() {
        let c = Schedule::Cosine {
            initial: 1.0,
            decay_steps: 4,
            alpha: 0.0,
        };
        // 0.5 * (1 + cos(pi * t / 4)).
        assert_eq!(c.at(0), 1.0);
        assert!((c.at(1) - (0.5 + 0.5 * (PI / 4.0).cos())).abs() < 1e-15);
        assert!((c.at(2) - 0.5).abs() < 1e-15);
        assert!(c.at(4).abs() < 1e-15);
        assert!(c.at(10).abs() < 1e-15);
        let ca = Schedule::Cosine {
            initial: 1.0,
            decay_steps: 4,
            alpha: 0.1,
        };
        assert!((ca.at(4) - 0.1).abs() < 1e-15);
        let w = Schedule::Constant(0.4).with_warmup(0.0, 4);
        let got: Vec<f64> = (0..6).map(|t| w.at(t)).collect();
        assert_eq!(got, [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.4]);
        let wc = c.clone().with_warmup(0.0, 2);
        assert_eq!(wc.at(1), 0.5);
        assert_eq!(wc.at(2), 1.0);
        assert!((wc.at(4) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule::warmup_cosine(0.0, 1e-3, 10, 110, 0.1);
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 0.5e-3).abs() < 1e-15);
        assert!((s.at(10) - 1e-3).abs() < 1e-15);
        // Half-way through the 100-unit decay: alpha + (1 - alpha) / 2 of the peak.
        assert!((s.at(60) - 1e-3 * (0.1 + 0.9 * 0.5)).abs() < 1e-15);
        assert!((s.at(110) - 1e-4).abs() < 1e-15);
        assert!((s.at(500) - 1e-4).abs() < 1e-15);
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // Reference values from PyTorch's `OneCycleLR(max_lr=0.1, total_steps=100)` formula
        // (anneal_strategy='cos', three_phase=False), computed independently.
        let s = Schedule::one_cycle(0.1, 100);
        let want = [
            (0, 0.004),
            (1, 0.004_281_378_056_590_748),
            (14, 0.049_401_332_387_899_96),
            (29, 0.1),
            (30, 0.099_949_653_528_452_43),
            (64, 0.050_000_2),
            (99, 4e-7),
            (150, 4e-7),
        ];
        for (t, lr) in want {
            assert!((s.at(t) - lr).abs() < 1e-12, "t={t}: {} vs {lr}", s.at(t));
        }
        for t in 1..30 {
            assert!(s.at(t) > s.at(t - 1), "rising at {t}");
        }
        for t in 30..100 {
            assert!(s.at(t) < s.at(t - 1), "falling at {t}");
        }
    }

    #[test]
    fn reduce_on_plateau_follows_keras() {
        let mut r = ReduceOnPlateau::new(0.5, 2, Mode::Min);
        r.cooldown = 1;
        let mut lr = 1.0;
        let mut lrs = Vec::new();
        for v in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5] {
            lr = r.update(v, lr);
            lrs.push(lr);
        }
        // improve, improve, wait 1, wait 2 -> halve (cooldown 1), cooldown, wait 1, wait 2 ->
        // halve, improve.
        assert_eq!(lrs, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
        let mut r = ReduceOnPlateau::new(0.1, 1, Mode::Max);
        r.min_lr = 0.05;
        assert_eq!(r.update(0.5, 1.0), 1.0);
        assert_eq!(r.update(0.5, 1.0), 0.1);
        assert_eq!(r.update(0.4, 0.1), 0.05);
        assert_eq!(r.update(0.4, 0.05), 0.05);
    }
}
