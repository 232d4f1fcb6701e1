//! Benchmark: training and inference throughput of the DSL-generated mini-Xception on the
//! CPU, against the same network in PyTorch (`scripts/bench_train.py`) when it is available.
//!
//! `cargo run --release --example bench_train -- [--iters N] [--warmup N] [--budget-s S]
//! [--rounds N] [--sizes 180,64] [--batches 16,32] [--modes train,infer]`
//!
//! Cases: mode (train, infer) x size (180: `convnet::zoo::MiniXception`; 64: the same
//! description at 64x64 from `convnet::mini_xception!`; both with dropout 0.5) x batch. Each
//! case runs in a child process (this executable re-run with `--child`) so its peak memory is
//! its own:
//! - train: `forward_t(x, true)`, `convnet::loss::binary_cross_entropy_with_logits`, backward,
//!   one RMSprop step (`convnet::optim`);
//! - infer: `forward_t(x, false)` inside `convnet::grad_mode::no_grad` (no autograd graph).
//!
//! Figures: images per second from the median step time over up to `--iters` (5) timed steps
//! after `--warmup` (1) untimed ones, stopping early once a case has spent `--budget-s` (20)
//! seconds; peak memory is the child's `VmHWM` (peak resident set, from `/proc/self/status`),
//! which includes the model, its optimizer state and the program itself. With `--rounds N`
//! (1) each case runs N times, alternating ours and PyTorch's, and the table shows medians
//! over the rounds and the range of the per-round throughput ratio: on a shared machine a
//! slow spell then hits both sides.
//!
//! PyTorch: `CONVNET_PYTHON` names a python with torch (default `python3` when it can
//! `import torch`; `none` skips it). It runs the same cases in NCHW and channels-last with
//! 2 threads and peak memory from `ru_maxrss` (which includes libtorch); the table prints the
//! ratios ours / PyTorch for throughput (higher is better) and memory (lower is better).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use convnet::loss::binary_cross_entropy_with_logits;
use convnet::optim::{RmsProp, RmsPropConfig, TrainOptimizer};
use convnet::prelude::*;
use convnet::zoo::MiniXception;
use std::process::Command;
use std::time::{Duration, Instant};

mod tuning;

convnet::mini_xception!(
    /// Mini-Xception at 64x64 (the zoo's description).
    Xception64, 64
);

struct Options {
    iters: usize,
    warmup: usize,
    budget: Duration,
    rounds: usize,
    sizes: Vec<usize>,
    batches: Vec<usize>,
    modes: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: bench_train [--iters N] [--warmup N] [--budget-s S] [--rounds N] [--sizes 180,64] \
         [--batches 16,32] [--modes train,infer]"
    );
    std::process::exit(2)
}

fn list<T>(flag: &str, value: &str, f: impl Fn(&str) -> Option<T>) -> Vec<T> {
    value
        .split(',')
        .map(|s| f(s.trim()).unwrap_or_else(|| usage(&format!("{flag}: bad item `{s}`"))))
        .collect()
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        iters: 5,
        warmup: 1,
        budget: Duration::from_secs(20),
        rounds: 1,
        sizes: vec![180, 64],
        batches: vec![16, 32],
        modes: vec!["train".into(), "infer".into()],
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("{flag}: `{value}` is not a number")))
        };
        match flag.as_str() {
            "--iters" => o.iters = number().max(1),
            "--warmup" => o.warmup = number(),
            "--budget-s" => o.budget = Duration::from_secs(number() as u64),
            "--rounds" => o.rounds = number().max(1),
            "--sizes" => {
                o.sizes = list(flag, value, |s| match s.parse() {
                    Ok(n @ (64 | 180)) => Some(n),
                    _ => None,
                })
            }
            "--batches" => o.batches = list(flag, value, |s| s.parse().ok().filter(|&b| b > 0)),
            "--modes" => {
                o.modes = list(flag, value, |s| {
                    matches!(s, "train" | "infer").then(|| s.to_string())
                })
            }
            _ => usage(&format!("unknown flag `{flag}`")),
        }
    }
    o
}

/// Peak resident set of this process in KiB (`VmHWM`).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs one case in this process; returns (img/s, samples).
fn run_case<M: Network + ModuleT>(
    mode: &str,
    size: usize,
    batch: usize,
    o: &Options,
) -> Result<(f64, usize)> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = M::new(vb)?;
    let x = Tensor::rand(0f32, 255f32, (batch, 3, size, size), &dev)?;
    let y = Tensor::rand(0f32, 1f32, batch, &dev)?
        .ge(0.5)?
        .to_dtype(DType::U32)?;
    let mut opt = RmsProp::from_varmap(&varmap, RmsPropConfig::default());
    let mut step = || -> Result<()> {
        if mode == "train" {
            let logits = model.forward_t(&x, true)?;
            let loss = binary_cross_entropy_with_logits(&logits, &y)?;
            let grads = loss.backward()?;
            opt.apply(&grads)
        } else {
            convnet::grad_mode::no_grad(|| model.forward_t(&x, false)).map(drop)
        }
    };
    for _ in 0..o.warmup {
        step()?;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    for _ in 0..o.iters {
        let t = Instant::now();
        step()?;
        samples.push(t.elapsed());
        if start.elapsed() > o.budget {
            break;
        }
    }
    samples.sort();
    let med = samples[samples.len() / 2];
    Ok((batch as f64 / med.as_secs_f64(), samples.len()))
}

fn child(mode: &str, size: usize, batch: usize, o: &Options) {
    let r = match size {
        180 => run_case::<MiniXception>(mode, size, batch, o),
        _ => run_case::<Xception64>(mode, size, batch, o),
    };
    match r {
        Ok((ips, n)) => println!("RESULT\t{ips:.4}\t{}\t{n}", vm_hwm_kib()),
        Err(e) => {
            println!("ERROR\t{}", e.to_string().lines().next().unwrap_or(""));
            std::process::exit(1)
        }
    }
}

/// (img/s, peak KiB, samples) from a `RESULT` line of a child's stdout.
fn parse_result(out: &[u8]) -> Option<(f64, u64, usize)> {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().find(|l| l.starts_with("RESULT\t"))?;
    let mut f = line.split('\t').skip(1);
    Some((
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
    ))
}

fn python() -> Option<String> {
    let py = std::env::var("CONVNET_PYTHON").unwrap_or_else(|_| "python3".into());
    if py == "none" {
        return None;
    }
    let ok = Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

type Cell = Option<(f64, u64, usize)>;

fn show(c: &Cell) -> String {
    match c {
        Some((ips, kib, n)) => format!("{ips:7.2} {:6.0} ({n})", *kib as f64 / 1024.0),
        None => format!("{:>7} {:>6}    ", "-", "-"),
    }
}

/// Median of `v` (sorted in place); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// The median over rounds of one implementation's results (img/s and peak each their own
/// median; samples summed).
fn median_cell(cells: &[Cell]) -> Cell {
    let ok: Vec<_> = cells.iter().flatten().collect();
    let ips = median(&mut ok.iter().map(|c| c.0).collect::<Vec<_>>())?;
    let mem = median(&mut ok.iter().map(|c| c.1 as f64).collect::<Vec<_>>())?;
    Some((ips, mem as u64, ok.iter().map(|c| c.2).sum()))
}

/// Ours / theirs per round (throughput, memory): the medians and, over several rounds, the
/// throughput ratio's range.
fn ratio(ours: &[Cell], theirs: &[Cell]) -> String {
    let (mut t, mut m): (Vec<f64>, Vec<f64>) = ours
        .iter()
        .zip(theirs)
        .filter_map(|(a, b)| Some((a.as_ref()?, b.as_ref()?)))
        .map(|(a, b)| (a.0 / b.0, a.1 as f64 / b.1 as f64))
        .unzip();
    let (Some(tm), Some(mm)) = (median(&mut t), median(&mut m)) else {
        return format!("{:>5} {:>5}", "-", "-");
    };
    let range = if t.len() > 1 {
        format!(" ({:.2}-{:.2})", t[0], t[t.len() - 1])
    } else {
        String::new()
    };
    format!("{tm:5.2} {mm:5.2}{range}")
}

fn main() {
    tuning::apply();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let mode = args[1].clone();
        let size: usize = args[2].parse().expect("size");
        let batch: usize = args[3].parse().expect("batch");
        let o = parse_options(&args[4..]);
        child(&mode, size, batch, &o);
        return;
    }
    let o = parse_options(&args);
    let exe = std::env::current_exe().expect("current executable");
    let py = python();
    println!(
        "bench_train: candle CPU, {} threads, median of up to {} steps after {} warm-up \
         (budget {} s per case); peak = VmHWM of a process running one case (MiB); \
         PyTorch: {}",
        candle_core::utils::get_num_threads(),
        o.iters,
        o.warmup,
        o.budget.as_secs(),
        py.as_deref().unwrap_or("not found (set CONVNET_PYTHON)")
    );
    println!(
        "{:<5} {:>4} {:>3} | {:^21} | {:^21} | {:^21} | {:^11} | {:^11}",
        "mode",
        "size",
        "b",
        "ours img/s peak (n)",
        "torch NCHW",
        "torch channels-last",
        "/NCHW t mem",
        "/CL t mem"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_train.py");
    for mode in &o.modes {
        for &size in &o.sizes {
            for &batch in &o.batches {
                let common = [
                    "--iters".to_string(),
                    o.iters.to_string(),
                    "--warmup".into(),
                    o.warmup.to_string(),
                    "--budget-s".into(),
                    o.budget.as_secs().to_string(),
                ];
                let run_ours = || -> Cell {
                    let ours = Command::new(&exe)
                        .args(["--child", mode, &size.to_string(), &batch.to_string()])
                        .args(&common)
                        .output();
                    match ours {
                        Ok(out) => {
                            let r = parse_result(&out.stdout);
                            if r.is_none() {
                                eprintln!(
                                    "{mode} {size} b{batch}: {}{}",
                                    String::from_utf8_lossy(&out.stdout).trim(),
                                    String::from_utf8_lossy(&out.stderr).trim()
                                );
                            }
                            r
                        }
                        Err(e) => {
                            eprintln!("{mode} {size} b{batch}: {e}");
                            None
                        }
                    }
                };
                let torch = |fmt: &str| -> Cell {
                    let py = py.as_ref()?;
                    let out = Command::new(py)
                        .arg(script)
                        .args([mode.as_str(), &size.to_string(), &batch.to_string(), fmt])
                        .args([
                            o.iters.to_string(),
                            o.warmup.to_string(),
                            o.budget.as_secs().to_string(),
                        ])
                        .output()
                        .ok()?;
                    parse_result(&out.stdout)
                };
                // Rounds alternate the implementations, so a slow spell of the (shared)
                // machine hits all of them; ratios are taken per round.
                let (mut ours, mut nchw, mut cl) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..o.rounds {
                    ours.push(run_ours());
                    nchw.push(torch("nchw"));
                    cl.push(torch("cl"));
                }
                println!(
                    "{:<5} {:>4} {:>3} | {} | {} | {} | {} | {}",
                    mode,
                    size,
                    batch,
                    show(&median_cell(&ours)),
                    show(&median_cell(&nchw)),
                    show(&median_cell(&cl)),
                    ratio(&ours, &nchw),
                    ratio(&ours, &cl)
                );
            }
        }
    }
}
