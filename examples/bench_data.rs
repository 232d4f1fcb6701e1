//! Decode throughput of the image-folder pipeline (decode + resize + batch), with and
//! without the in-memory cache.
//!
//! ```text
//! CONVNET_DATA_DIR=/path/to/cats_vs_dogs cargo run --release --example bench_data [-- SIZE BATCH]
//! ```
//!
//! Reads `$CONVNET_DATA_DIR/train`; without the variable it generates the synthetic shapes
//! dataset in a temporary folder and reads that. Uses 2 threads unless `RAYON_NUM_THREADS`
//! says otherwise. SIZE defaults to 180 (images are resized to SIZE x SIZE), BATCH to 32.

use std::path::PathBuf;
use std::time::Instant;

use convnet_runtime::data::{Batches, DataLoader, ImageFolder, SyntheticShapes};

fn epoch_rate(loader: &mut DataLoader, epoch: usize) -> candle_core::Result<(usize, f64)> {
    let start = Instant::now();
    let mut n = 0;
    for batch in loader.epoch(epoch) {
        n += batch?.targets.dim(0)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((n, n as f64 / secs))
}

fn main() -> candle_core::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "2");
    }
    let mut args = std::env::args().skip(1);
    let size: usize = args
        .next()
        .map_or(180, |s| s.parse().expect("SIZE must be a number"));
    let batch: usize = args
        .next()
        .map_or(32, |s| s.parse().expect("BATCH must be a number"));
    let root = match std::env::var_os("CONVNET_DATA_DIR") {
        Some(dir) => PathBuf::from(dir).join("train"),
        None => {
            let dir = std::env::temp_dir().join("convnet-bench-shapes");
            println!(
                "CONVNET_DATA_DIR unset: generating synthetic shapes in {}",
                dir.display()
            );
            SyntheticShapes::new().image_size(256, 256).write(&dir)?;
            dir.join("train")
        }
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    println!(
        "{}: {size}x{size}, batch {batch}, {threads} threads",
        root.display()
    );

    let plain = ImageFolder::builder(&root, size, size).build()?;
    let n = plain.len();
    let mut loader = DataLoader::new(plain, batch).shuffle(true).seed(0);
    let (_, rate) = epoch_rate(&mut loader, 0)?;
    println!("uncached:               {n} images, {rate:8.1} images/s");

    let cached = ImageFolder::builder(&root, size, size)
        .cache(true)
        .build()?;
    let mut loader = DataLoader::new(cached, batch).shuffle(true).seed(0);
    let (_, first) = epoch_rate(&mut loader, 0)?;
    let (_, second) = epoch_rate(&mut loader, 1)?;
    println!(
        "cached, first epoch:    {n} images, {first:8.1} images/s (decodes and fills the cache)"
    );
    println!("cached, later epochs:   {n} images, {second:8.1} images/s");
    let mb = n * 3 * size * size * 4 / (1 << 20);
    println!("cache size: {mb} MiB");
    Ok(())
}
