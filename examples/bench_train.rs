//! Benchmark: training and inference throughput of the DSL-generated mini-Xception on the
//! CPU, against the same network in PyTorch (`scripts/bench_train.py`) when it is available.
//!
//! `cargo run --release --example bench_train -- [--iters N] [--warmup N] [--budget-s S]
//! [--rounds N] [--sizes 180,64] [--batches 16,32] [--modes train,infer]
//! [--peers nchw,cl,compile,bf16|none] [--device cpu|cuda]`
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
//! (1) each case runs N times, alternating ours and every peer, and the table shows medians
//! over the rounds and the range of the per-round throughput ratio: on a shared machine a
//! slow spell then hits all of them.
//!
//! PyTorch: `CONVNET_PYTHON` names a python with torch (default `python3` when it can
//! `import torch`; `none` skips it; install with `pip install torch torchvision` in a venv).
//! Each peer runs the same cases in its own process with 2 threads and peak memory from
//! `VmHWM` (which includes libtorch). `--peers` picks them (default all):
//! - `nchw`, `cl`: eager PyTorch in NCHW and channels-last;
//! - `compile`: `torch.compile` (inductor, channels-last); the first step compiles and is
//!   left out of the timing (the table shows its time, `compile N s`, which is shorter in
//!   later rounds when inductor's cache has the kernels) and of the peak (reset after it);
//!   inductor on the CPU needs a C++ compiler;
//! - `bf16`: eager channels-last under `torch.autocast("cpu", dtype=torch.bfloat16)` (fp32
//!   master weights and optimizer step, as in ordinary autocast training). It is fast only
//!   where the CPU has AMX or AVX512-BF16: the header prints those flags from
//!   `/proc/cpuinfo` and torch's CPU capability.
//!
//! A peer that cannot run here (no C++ compiler, compilation failed) shows `unavailable:
//! <reason>` and the rest of the table still prints. The table has one line per case and
//! peer: ours (img/s, peak MiB, timed steps), the peer's, and the ratios ours / peer for
//! throughput (higher is better, with its range over the rounds) and peak memory (lower is
//! better).

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
    peers: Vec<Peer>,
}

/// A PyTorch configuration of the comparison (`scripts/bench_train.py`'s PEER).
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    /// Eager, NCHW tensors.
    Nchw,
    /// Eager, channels-last model and input.
    ChannelsLast,
    /// `torch.compile` (inductor), channels-last; compile time excluded.
    Compile,
    /// Eager, channels-last, under `torch.autocast(dtype=torch.bfloat16)`.
    Bf16,
}

impl Peer {
    const ALL: [Peer; 4] = [Peer::Nchw, Peer::ChannelsLast, Peer::Compile, Peer::Bf16];

    /// The name of `--peers` and of the script's PEER argument.
    fn name(self) -> &'static str {
        match self {
            Peer::Nchw => "nchw",
            Peer::ChannelsLast => "cl",
            Peer::Compile => "compile",
            Peer::Bf16 => "bf16",
        }
    }

    /// The table's label.
    fn label(self) -> &'static str {
        match self {
            Peer::Nchw => "torch NCHW",
            Peer::ChannelsLast => "torch channels-last",
            Peer::Compile => "torch.compile (CL)",
            Peer::Bf16 => "torch bf16 autocast (CL)",
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: bench_train [--iters N] [--warmup N] [--budget-s S] [--rounds N] [--sizes 180,64] \
         [--batches 16,32] [--modes train,infer] [--peers nchw,cl,compile,bf16|none] \
         [--device cpu|cuda]"
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
        peers: Peer::ALL.to_vec(),
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
            "--peers" if value == "none" => o.peers.clear(),
            "--peers" => {
                o.peers = list(flag, value, |s| {
                    Peer::ALL.into_iter().find(|p| p.name() == s)
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

/// One implementation's figures for one case in one round.
#[derive(Clone, Copy)]
struct Figures {
    /// Images per second (median step).
    ips: f64,
    /// Peak resident set, KiB (0: not measured).
    kib: u64,
    /// Timed steps.
    n: usize,
    /// Seconds of the first, compiling step (`torch.compile`; 0 for the others).
    compile_s: f64,
}

/// A run's figures, or why there are none (`unavailable: ...`, `failed: ...`).
type Cell = std::result::Result<Figures, String>;

/// The result of a child's run from its stdout (`RESULT\t<img/s>\t<peak KiB>\t<samples>
/// [\t<compile s>]`, `UNAVAILABLE\t<reason>` or `ERROR\t<message>`), stderr's last line when
/// it printed none of them.
fn parse_output(stdout: &[u8], stderr: &[u8]) -> Cell {
    let text = String::from_utf8_lossy(stdout);
    for line in text.lines() {
        let mut f = line.split('\t');
        match f.next() {
            Some("RESULT") => {
                let mut num = |what: &str| -> std::result::Result<f64, String> {
                    f.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("failed: bad {what} in `{line}`"))
                };
                let ips = num("img/s")?;
                let kib = num("peak")? as u64;
                let n = num("samples")? as usize;
                let compile_s = num("compile time").unwrap_or(0.0);
                return Ok(Figures {
                    ips,
                    kib,
                    n,
                    compile_s,
                });
            }
            Some("UNAVAILABLE") => return Err(format!("unavailable: {}", f.collect::<String>())),
            Some("ERROR") => return Err(format!("failed: {}", f.collect::<String>())),
            _ => {}
        }
    }
    let err = String::from_utf8_lossy(stderr);
    let last = err.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!("failed: {}", last.unwrap_or("no output").trim()))
}

/// A python that can `import torch` (`CONVNET_PYTHON`, default `python3`; `none`: no peers)
/// and a description of its torch: version and CPU kernel capability.
fn python() -> Option<(String, String)> {
    let py = std::env::var("CONVNET_PYTHON").unwrap_or_else(|_| "python3".into());
    if py == "none" {
        return None;
    }
    let probe = "import torch; print(torch.__version__, \
                 getattr(torch.backends.cpu, 'get_cpu_capability', lambda: '?')())";
    let out = Command::new(&py).args(["-c", probe]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let version = words.next().filter(|_| out.status.success())?.to_string();
    let capability = words.next().unwrap_or("?");
    Some((py, format!("torch {version}, CPU capability {capability}")))
}

/// The CPU's AMX and AVX512-BF16 flags from `/proc/cpuinfo` (what bf16 matrix multiplies can
/// use; without them bf16 is converted to fp32 in software), sorted, or `none`.
fn bf16_cpu_flags() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut flags: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .filter(|f| f.starts_with("amx") || *f == "avx512_bf16")
        .collect();
    flags.sort_unstable();
    flags.dedup();
    if flags.is_empty() {
        "none (no amx*, no avx512_bf16)".into()
    } else {
        flags.join(" ")
    }
}

/// `img/s peak (n)`, 21 wide, or the reason there are no figures.
fn show(c: &Cell) -> String {
    match c {
        Ok(f) if f.kib == 0 => format!("{:<21}", format!("{:7.2} {:>6} ({})", f.ips, "-", f.n)),
        Ok(f) => format!(
            "{:<21}",
            format!("{:7.2} {:6.0} ({})", f.ips, f.kib as f64 / 1024.0, f.n)
        ),
        Err(reason) => reason.clone(),
    }
}

/// Median of `v` (sorted in place); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// The median over rounds of one implementation's results (img/s, peak and compile time each
/// their own median; samples summed); the first round's reason when no round has figures.
fn median_cell(cells: &[Cell]) -> Cell {
    let ok: Vec<&Figures> = cells.iter().flatten().collect();
    let of = |get: fn(&Figures) -> f64| median(&mut ok.iter().map(|f| get(f)).collect::<Vec<_>>());
    let Some(ips) = of(|f| f.ips) else {
        return Err(cells
            .iter()
            .find_map(|c| c.as_ref().err().cloned())
            .unwrap_or_else(|| "failed: no rounds".into()));
    };
    Ok(Figures {
        ips,
        kib: of(|f| f.kib as f64).unwrap_or(0.0) as u64,
        n: ok.iter().map(|f| f.n).sum(),
        compile_s: of(|f| f.compile_s).unwrap_or(0.0),
    })
}

/// Ours / theirs per round (throughput, memory): the medians and, over several rounds, the
/// throughput ratio's range.
fn ratio(ours: &[Cell], theirs: &[Cell]) -> String {
    let pairs: Vec<_> = ours
        .iter()
        .zip(theirs)
        .filter_map(|(a, b)| Some((a.as_ref().ok()?, b.as_ref().ok()?)))
        .collect();
    let mut t: Vec<f64> = pairs.iter().map(|(a, b)| a.ips / b.ips).collect();
    // Memory 0 means not measured (GPU runs).
    let mut m: Vec<f64> = pairs
        .iter()
        .filter(|(a, b)| a.kib > 0 && b.kib > 0)
        .map(|(a, b)| a.kib as f64 / b.kib as f64)
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

/// The compile times of a `torch.compile` peer over the rounds (`compile 41 s`, or a range);
/// empty for the eager peers.
fn compile_times(cells: &[Cell]) -> String {
    let mut s: Vec<f64> = cells
        .iter()
        .flatten()
        .map(|f| f.compile_s)
        .filter(|&s| s > 0.0)
        .collect();
    s.sort_by(f64::total_cmp);
    match (s.first(), s.last()) {
        (Some(a), Some(b)) if s.len() > 1 => format!("  compile {a:.0}-{b:.0} s"),
        (Some(a), _) => format!("  compile {a:.0} s"),
        _ => String::new(),
    }
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
        py.as_ref()
            .map_or("not found (set CONVNET_PYTHON)".into(), |(py, torch)| {
                format!("{py} ({torch})")
            })
    );
    println!("CPU bf16 flags (amx*, avx512_bf16): {}", bf16_cpu_flags());
    // No python, or `--peers none`: ours alone.
    let peers = if py.is_some() {
        o.peers.clone()
    } else {
        Vec::new()
    };
    println!(
        "{:<5} {:>4} {:>3} | {:<21} | {:<24} {:<21} | ours/peer t mem (range t)",
        "mode", "size", "b", "ours img/s peak (n)", "peer", "img/s peak (n)",
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
                    let out = Command::new(&exe)
                        .args(["--child", mode, &size.to_string(), &batch.to_string()])
                        .args(&common)
                        .args(["--device", &o.device])
                        .output()
                        .map_err(|e| format!("failed: {e}"))?;
                    parse_output(&out.stdout, &out.stderr)
                };
                let torch = |peer: Peer| -> Cell {
                    let (py, _) = py.as_ref().ok_or("unavailable: no python with torch")?;
                    let out = Command::new(py)
                        .arg(script)
                        .args([mode.as_str(), &size.to_string(), &batch.to_string()])
                        .arg(peer.name())
                        .args([
                            o.iters.to_string(),
                            o.warmup.to_string(),
                            o.budget.as_secs().to_string(),
                            o.device.clone(),
                        ])
                        .output()
                        .map_err(|e| format!("failed: {py}: {e}"))?;
                    parse_output(&out.stdout, &out.stderr)
                };
                // Rounds alternate the implementations, so a slow spell of the (shared)
                // machine hits all of them; ratios are taken per round. A peer that is
                // unavailable here is not tried again.
                let mut ours = Vec::new();
                let mut theirs: Vec<Vec<Cell>> = vec![Vec::new(); peers.len()];
                for _ in 0..o.rounds {
                    ours.push(run_ours());
                    for (peer, cells) in peers.iter().zip(&mut theirs) {
                        let gone = cells
                            .iter()
                            .any(|c| matches!(c, Err(r) if r.starts_with("unavailable")));
                        if !gone {
                            cells.push(torch(*peer));
                        }
                    }
                }
                let case = format!("{mode:<5} {size:>4} {batch:>3}");
                let ours_cell = format!("{:<21}", show(&median_cell(&ours)));
                if peers.is_empty() {
                    println!("{case} | {ours_cell} |");
                }
                for (i, (peer, cells)) in peers.iter().zip(&theirs).enumerate() {
                    let (case, ours_cell) = if i == 0 {
                        (case.as_str(), ours_cell.as_str())
                    } else {
                        ("", "")
                    };
                    let peer_cell = median_cell(cells);
                    let figures = match &peer_cell {
                        Ok(_) => format!(
                            "{} | {}{}",
                            show(&peer_cell),
                            ratio(&ours, cells),
                            compile_times(cells)
                        ),
                        Err(reason) => reason.clone(),
                    };
                    println!(
                        "{case:<14} | {ours_cell:<21} | {:<24} {figures}",
                        peer.label()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(ips: f64, kib: u64) -> Cell {
        Ok(Figures {
            ips,
            kib,
            n: 3,
            compile_s: 0.0,
        })
    }

    #[test]
    fn peers_default_to_all_and_are_chosen_by_name() {
        let all = parse_options(&[]);
        assert!(all.peers == Peer::ALL);
        let args = |v: &str| ["--peers".to_string(), v.to_string()];
        assert!(parse_options(&args("bf16,nchw")).peers == [Peer::Bf16, Peer::Nchw]);
        assert!(parse_options(&args("compile")).peers == [Peer::Compile]);
        assert!(parse_options(&args("none")).peers.is_empty());
    }

    #[test]
    fn results_unavailable_peers_and_failures_are_told_apart() {
        let ok = parse_output(b"noise\nRESULT\t12.5\t2048\t4\t37.2\n", b"");
        let f = ok.expect("figures");
        assert_eq!((f.ips, f.kib, f.n, f.compile_s), (12.5, 2048, 4, 37.2));
        // Ours and the eager peers print no compile time.
        let eager = parse_output(b"RESULT\t8\t1024\t5\n", b"").expect("figures");
        assert_eq!(eager.compile_s, 0.0);
        let gone = parse_output(b"UNAVAILABLE\ttorch.compile failed: no C++ compiler\n", b"");
        assert_eq!(
            gone.err().as_deref(),
            Some("unavailable: torch.compile failed: no C++ compiler")
        );
        let crashed = parse_output(b"", b"Traceback\nRuntimeError: out of memory\n\n");
        assert_eq!(
            crashed.err().as_deref(),
            Some("failed: RuntimeError: out of memory")
        );
        assert!(parse_output(b"RESULT\tx\t1\t1\n", b"").is_err());
    }

    #[test]
    fn medians_and_ratios_skip_failed_rounds() {
        let ours = [
            figures(20.0, 1000),
            figures(10.0, 1000),
            figures(30.0, 1000),
        ];
        let theirs = [
            figures(10.0, 2000),
            Err("failed: x".into()),
            figures(20.0, 2000),
        ];
        let m = median_cell(&theirs).expect("two rounds have figures");
        assert_eq!((m.ips, m.n), (20.0, 6));
        // Rounds 1 and 3: ratios 2.0 and 1.5, memory 0.5.
        assert_eq!(ratio(&ours, &theirs), " 2.00  0.50 (1.50-2.00)");
        let never = [Err("unavailable: no inductor".to_string())];
        assert_eq!(
            median_cell(&never).err().as_deref(),
            Some("unavailable: no inductor")
        );
        assert_eq!(ratio(&ours, &never), "    -     -");
    }
}
