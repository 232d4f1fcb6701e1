//! Benchmark: training and inference throughput of the DSL-generated mini-Xception on the
//! CPU, against the same network in PyTorch (`scripts/bench_train.py`) when it is available.
//!
//! `cargo run --release --example bench_train -- [--iters N] [--warmup N] [--budget-s S]
//! [--rounds N] [--sizes 180,64] [--batches 16,32] [--modes train,infer] [--device cpu|cuda]`
//!
//! `--device cuda` (a build with `--features cuda`) runs both sides on GPU 0 (a step ends
//! with a device synchronisation) and leaves memory out: the peak resident set says nothing
//! about the GPU's memory. Before the table it checks the CUDA path's numerics: a small
//! network with every mini-Xception layer (`CheckNet`, no dropout) gets the same weights on
//! the GPU and the CPU, and its training-mode logits and parameter gradients must agree to a
//! relative error of 1e-3; the run stops otherwise.
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

convnet! {
    /// Mini-Xception's layers without dropout, two residual blocks at 32x32: the network of
    /// the CUDA-versus-CPU check.
    CheckNet(3, 32, 32) -> (1) {
        rescale(1.0 / 255.0),
        conv2d(16, 5, bias = false),
        for size in [16, 32] {
            residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                batch_norm, relu,
                separable_conv2d(size, 3, padding = same, bias = false),
                max_pool2d(3, stride = 2, padding = same),
            }
        }
        global_avg_pool2d,
        linear(1),
    }
}

/// `|a - b| / |b|` over all elements (L2 norms), `b` the reference.
fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let norm = |t: &Tensor| -> Result<f64> { t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>() };
    Ok(norm(&(a - &b)?)? / norm(&b)?.max(1e-30))
}

/// Trains one step of [`CheckNet`] on `gpu` and on the CPU from the same weights and batch;
/// returns the logits' relative error and the worst parameter gradient's (with its name).
/// A parameter with a gradient on the CPU but none on the GPU is an error.
fn check_against_cpu(gpu: &Device) -> Result<(f64, f64, String)> {
    let (cpu_vars, gpu_vars) = (VarMap::new(), VarMap::new());
    let cpu_model = CheckNet::new(VarBuilder::from_varmap(&cpu_vars, DType::F32, &Device::Cpu))?;
    let gpu_model = CheckNet::new(VarBuilder::from_varmap(&gpu_vars, DType::F32, gpu))?;
    let cpu_data = cpu_vars.data().lock().expect("var map");
    let gpu_data = gpu_vars.data().lock().expect("var map");
    for (name, var) in gpu_data.iter() {
        var.set(&cpu_data[name].as_tensor().to_device(gpu)?)?;
    }
    let x = Tensor::rand(0f32, 255f32, (8, 3, 32, 32), &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1, 1, 0, 1, 0, 0, 1], &Device::Cpu)?;
    let step = |model: &CheckNet, dev: &Device| -> Result<_> {
        let logits = model.forward_t(&x.to_device(dev)?, true)?;
        let loss = binary_cross_entropy_with_logits(&logits, &y.to_device(dev)?)?;
        Ok((logits, loss.backward()?))
    };
    let (cpu_logits, cpu_grads) = step(&cpu_model, &Device::Cpu)?;
    let (gpu_logits, gpu_grads) = step(&gpu_model, gpu)?;
    let mut worst = (0.0, String::new());
    for (name, var) in cpu_data.iter() {
        let Some(c) = cpu_grads.get(var) else {
            continue;
        };
        let Some(g) = gpu_grads.get(&gpu_data[name]) else {
            candle_core::bail!("{name} has a gradient on the CPU and none on the GPU");
        };
        let e = rel_err(g, c)?;
        if e >= worst.0 {
            worst = (e, name.clone());
        }
    }
    Ok((rel_err(&gpu_logits, &cpu_logits)?, worst.0, worst.1))
}

struct Options {
    iters: usize,
    warmup: usize,
    budget: Duration,
    rounds: usize,
    sizes: Vec<usize>,
    batches: Vec<usize>,
    modes: Vec<String>,
    device: String,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: bench_train [--iters N] [--warmup N] [--budget-s S] [--rounds N] [--sizes 180,64] \
         [--batches 16,32] [--modes train,infer] [--device cpu|cuda]"
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
        device: "cpu".into(),
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
            "--device" => match value.as_str() {
                "cpu" | "cuda" => o.device = value.clone(),
                _ => usage(&format!("--device: `{value}` is not cpu or cuda")),
            },
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
    let dev = match o.device.as_str() {
        "cuda" => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
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
            opt.apply(&grads)?;
        } else {
            convnet::grad_mode::no_grad(|| model.forward_t(&x, false))?;
        }
        dev.synchronize()
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
        Ok((ips, n)) => {
            let kib = if o.device == "cpu" { vm_hwm_kib() } else { 0 };
            println!("RESULT\t{ips:.4}\t{kib}\t{n}")
        }
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
        Some((ips, 0, n)) => format!("{ips:7.2} {:>6} ({n})", "-"),
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
    let pairs: Vec<_> = ours
        .iter()
        .zip(theirs)
        .filter_map(|(a, b)| Some((a.as_ref()?, b.as_ref()?)))
        .collect();
    let mut t: Vec<f64> = pairs.iter().map(|(a, b)| a.0 / b.0).collect();
    // Memory 0 means not measured (GPU runs).
    let mut m: Vec<f64> = pairs
        .iter()
        .filter(|(a, b)| a.1 > 0 && b.1 > 0)
        .map(|(a, b)| a.1 as f64 / b.1 as f64)
        .collect();
    let Some(tm) = median(&mut t) else {
        return format!("{:>5} {:>5}", "-", "-");
    };
    let mm = median(&mut m).map_or(format!("{:>5}", "-"), |mm| format!("{mm:5.2}"));
    let range = if t.len() > 1 {
        format!(" ({:.2}-{:.2})", t[0], t[t.len() - 1])
    } else {
        String::new()
    };
    format!("{tm:5.2} {mm}{range}")
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
    if o.device == "cuda" {
        let checked = Device::new_cuda(0).and_then(|gpu| check_against_cpu(&gpu));
        match checked {
            Ok((logits, grad, name)) => {
                println!(
                    "check: CheckNet on cuda vs cpu, same weights: logits rel. error {logits:.2e}, \
                     worst gradient {grad:.2e} ({name})"
                );
                if !(logits <= 1e-3 && grad <= 1e-3) {
                    eprintln!("check failed: the CUDA path disagrees with the CPU");
                    std::process::exit(1)
                }
            }
            Err(e) => {
                eprintln!("check on cuda: {e}");
                std::process::exit(1)
            }
        }
    }
    let exe = std::env::current_exe().expect("current executable");
    let py = python();
    println!(
        "bench_train: candle on {}, {} CPU threads, median of up to {} steps after {} warm-up \
         (budget {} s per case); peak = VmHWM of a process running one case (MiB); \
         PyTorch: {}",
        o.device,
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
    // The checkout this was built from, else `scripts/` under the working directory (a binary
    // copied to another machine).
    let script = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_train.py"),
        "scripts/bench_train.py",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("scripts/bench_train.py");
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
                        .args(["--device", &o.device])
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
                            o.device.clone(),
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
