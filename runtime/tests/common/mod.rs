//! Helpers shared by the data tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A fresh, empty folder for one test (removed first if a previous run left it).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("convnet-data-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a solid-colour RGB image; the format follows the extension.
pub fn write_solid(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

/// Writes an RGB image from a function of (x, y).
pub fn write_fn(path: &Path, width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}
