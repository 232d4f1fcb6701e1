//! Benchmarks the CPU kernels of `convnet_runtime::ops` against candle's own ops (grouped
//! convolution; padding plus pooling), forward + backward, and against PyTorch when it is
//! installed.
//!
//! ```text
//! cargo run --release --example bench_kernels [-- REPS]
//! ```
//!
//! Environment:
//! - `CONVNET_ALLOC=mimalloc|system` picks the global allocator (default `system`, glibc
//!   malloc, which `GLIBC_TUNABLES` tunes);
//! - `CONVNET_PYTHON` names a python with PyTorch for `scripts/bench_kernels.py` (default
//!   `python3` when it can `import torch`); `CONVNET_PYTHON=none` skips PyTorch;
//! - `CONVNET_BENCH_CANDLE=0` skips the (slow) candle side.
//!
//! Each case prints `CASE: candle X ms, ours Y ms, speedup Zx` with medians over REPS runs
//! (default 5), then the PyTorch figures for the same shapes.

use candle_core::{Device, Result, Tensor, Var};
use convnet_runtime::ops::{self, Pad2d, Window2d};
use std::time::Instant;

mod alloc_switch {
    //! A global allocator that is glibc malloc or mimalloc, chosen by `CONVNET_ALLOC` at the
    //! first allocation (read without allocating) and fixed for the life of the process.
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::ffi::{c_char, CStr};
    use std::sync::atomic::{AtomicU8, Ordering};

    pub struct Switch;

    static MODE: AtomicU8 = AtomicU8::new(0);
    const SYSTEM: u8 = 1;
    const MIMALLOC: u8 = 2;

    extern "C" {
        fn getenv(name: *const c_char) -> *const c_char;
    }

    fn mode() -> u8 {
        let m = MODE.load(Ordering::Relaxed);
        if m != 0 {
            return m;
        }
        // SAFETY: getenv with a NUL-terminated name; the result is read before any
        // environment change (none happens in this program).
        let v = unsafe { getenv(c"CONVNET_ALLOC".as_ptr()) };
        let m = if !v.is_null() && unsafe { CStr::from_ptr(v) }.to_bytes() == b"mimalloc" {
            MIMALLOC
        } else {
            SYSTEM
        };
        MODE.store(m, Ordering::Relaxed);
        m
    }

    /// Name of the allocator in use.
    pub fn name() -> &'static str {
        if mode() == MIMALLOC {
            "mimalloc"
        } else {
            "glibc malloc"
        }
    }

    // SAFETY: forwards every call to one allocator, the same for the whole process.
    unsafe impl GlobalAlloc for Switch {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if mode() == MIMALLOC {
                mimalloc::MiMalloc.alloc(l)
            } else {
                System.alloc(l)
            }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if mode() == MIMALLOC {
                mimalloc::MiMalloc.alloc_zeroed(l)
            } else {
                System.alloc_zeroed(l)
            }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            if mode() == MIMALLOC {
                mimalloc::MiMalloc.dealloc(p, l)
            } else {
                System.dealloc(p, l)
            }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            if mode() == MIMALLOC {
                mimalloc::MiMalloc.realloc(p, l, n)
            } else {
                System.realloc(p, l, n)
            }
        }
    }
}

#[global_allocator]
static GLOBAL: alloc_switch::Switch = alloc_switch::Switch;

/// Minor page faults of this process so far (Linux; 0 elsewhere).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Median wall time (ms) and minor page faults per run of `f` over `reps` runs after one
/// warm-up run.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, u64)> {
    f()?;
    let mut ms = Vec::with_capacity(reps);
    let faults = minor_faults();
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let faults = (minor_faults() - faults) / reps.max(1) as u64;
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], faults))
}

type Conv = fn(&Tensor, &Tensor, &Window2d) -> Result<Tensor>;
type Pool = fn(&Tensor, &Window2d) -> Result<Tensor>;

fn randn(dims: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, dims, &Device::Cpu)
}

/// The loss of the backward benchmarks, `sum(y^2) / 2`: its gradient is `y` itself, a
/// contiguous tensor as in training (`sum(y)`'s is a broadcast view that candle copies
/// element by element before the op's backward, which then dominates the timing).
fn loss(y: &Tensor) -> Result<Tensor> {
    y.sqr()?.sum_all()? * 0.5
}

/// Forward + backward (`sum(y^2) / 2`) of a depthwise convolution, gradients for x and weight.
fn conv_step(conv: Conv, x: &Var, w: &Var, win: &Window2d) -> Result<()> {
    let y = conv(x.as_tensor(), w.as_tensor(), win)?;
    let grads = loss(&y)?.backward()?;
    assert!(grads.get(x.as_tensor()).is_some() && grads.get(w.as_tensor()).is_some());
    Ok(())
}

fn pool_step(pool: Pool, x: &Var, win: &Window2d, backward: bool) -> Result<()> {
    let y = pool(x.as_tensor(), win)?;
    if backward {
        let grads = loss(&y)?.backward()?;
        assert!(grads.get(x.as_tensor()).is_some());
    } else {
        y.sum_all()?.to_scalar::<f32>()?;
    }
    Ok(())
}

/// Depthwise convolution as candle's grouped convolution (`groups = C`), the input padded
/// first when its padding differs between sides; the baseline of the depthwise cases.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `weight`: `[C, 1, kh, kw]` -> `[N, C, OH, OW]`.
fn candle_depthwise_conv2d(x: &Tensor, weight: &Tensor, win: &Window2d) -> Result<Tensor> {
    assert!(win.stride.0 == win.stride.1 && win.dilation == (1, 1));
    let (x, p) = match win.pad.as_uniform() {
        Some(p) => (x.clone(), p),
        None => (ops::pad2d_with(x, win.pad, 0.0)?, 0),
    };
    x.conv2d(weight, p, win.stride.0, 1, x.dim(1)?)
}

/// Max pooling as `-inf` padding plus candle's `max_pool2d` (no backward when kernel !=
/// stride); the baseline of the pooling case.
///
/// # Shapes
/// `[N, C, H, W]` -> `[N, C, OH, OW]`.
fn candle_max_pool2d(x: &Tensor, win: &Window2d) -> Result<Tensor> {
    assert_eq!(win.dilation, (1, 1));
    ops::pad2d_with(x, win.pad, f64::NEG_INFINITY)?.max_pool2d_with_stride(win.kernel, win.stride)
}

/// TensorFlow "same" padding of one dim: extra row/column at the bottom/right.
fn same(size: usize, k: usize, s: usize) -> (usize, usize) {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(size);
    (total / 2, total - total / 2)
}

fn window(h: usize, w: usize, k: usize, s: usize) -> Window2d {
    let (top, bottom) = same(h, k, s);
    let (left, right) = same(w, k, s);
    Window2d::new(
        (k, k),
        (s, s),
        Pad2d {
            top,
            bottom,
            left,
            right,
        },
    )
}

fn python() -> Option<String> {
    let py = std::env::var("CONVNET_PYTHON").unwrap_or_else(|_| "python3".into());
    if py == "none" {
        return None;
    }
    let ok = std::process::Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let with_candle = std::env::var("CONVNET_BENCH_CANDLE").map_or(true, |v| v != "0");
    println!(
        "allocator: {}, GLIBC_TUNABLES={}, cpus: {}, median of {reps} runs",
        alloc_switch::name(),
        std::env::var("GLIBC_TUNABLES").unwrap_or_default(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut ours_total = 0.0;
    let mut ours_ms = Vec::new();
    for dims in [[16, 32, 176, 176], [16, 256, 45, 45], [16, 512, 11, 11]] {
        let name = format!("depthwise 3x3 same {dims:?}");
        let win = window(dims[2], dims[3], 3, 1);
        let x = Var::from_tensor(&randn(&dims)?)?;
        let w = Var::from_tensor(&randn(&[dims[1], 1, 3, 3])?)?;
        let (ours, faults) = time(reps, || conv_step(ops::depthwise_conv2d, &x, &w, &win))?;
        let (fwd, _) = time(reps, || {
            ops::depthwise_conv2d(x.as_tensor(), w.as_tensor(), &win).map(drop)
        })?;
        ours_total += ours;
        ours_ms.push((name.clone(), ours));
        if with_candle {
            let (candle, _) = time(reps.min(3), || {
                conv_step(candle_depthwise_conv2d, &x, &w, &win)
            })?;
            println!(
                "{name}: candle {candle:.2} ms, ours {ours:.2} ms, speedup {:.1}x (fwd+bwd; ours fwd {fwd:.2} ms, {faults} minor faults/step)",
                candle / ours
            );
        } else {
            println!(
                "{name}: ours {ours:.2} ms (fwd+bwd; fwd {fwd:.2} ms, {faults} minor faults/step)"
            );
        }
    }
    {
        let dims = [16, 32, 176, 176];
        let name = format!("max pool 3x3/2 same {dims:?}");
        let win = window(dims[2], dims[3], 3, 2);
        let x = Var::from_tensor(&randn(&dims)?)?;
        let (ours, faults) = time(reps, || pool_step(ops::max_pool2d, &x, &win, true))?;
        let (fwd, _) = time(reps, || pool_step(ops::max_pool2d, &x, &win, false))?;
        ours_total += ours;
        ours_ms.push((name.clone(), ours));
        if with_candle {
            let (candle, _) = time(reps, || pool_step(candle_max_pool2d, &x, &win, false))?;
            println!(
                "{name}: candle {candle:.2} ms, ours {ours:.2} ms, speedup {:.1}x (candle: pad -inf + max_pool2d forward only, it has no backward for kernel != stride; ours fwd+bwd, fwd alone {fwd:.2} ms, {faults} minor faults/step)",
                candle / ours
            );
        } else {
            println!(
                "{name}: ours {ours:.2} ms (fwd+bwd; fwd {fwd:.2} ms, {faults} minor faults/step)"
            );
        }
    }
    println!("ours total (fwd+bwd, 4 cases): {ours_total:.2} ms");

    match python() {
        None => println!("PyTorch: not found (set CONVNET_PYTHON to a python with torch)"),
        Some(py) => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_kernels.py");
            let out = std::process::Command::new(&py)
                .args([script, &reps.to_string()])
                .output()
                .map_err(candle_core::Error::wrap)?;
            if !out.status.success() {
                println!(
                    "PyTorch: {py} {script} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                // Machine-readable lines: `RESULT\t<case>\t<nchw ms>\t<channels_last ms>`.
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() == 4 && f[0] == "RESULT" {
                    let (nchw, cl): (f64, f64) = (
                        f[2].parse().unwrap_or(f64::NAN),
                        f[3].parse().unwrap_or(f64::NAN),
                    );
                    let ours = ours_ms
                        .iter()
                        .find(|(n, _)| n == f[1])
                        .map_or(f64::NAN, |(_, v)| *v);
                    println!(
                        "{}: PyTorch NCHW {nchw:.2} ms, channels_last {cl:.2} ms; ours {ours:.2} ms = {:.2}x NCHW speed, {:.2}x channels_last speed",
                        f[1],
                        nchw / ours,
                        cl / ours
                    );
                } else {
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}
