//! Reading one image file: regular files only, JPEG completeness, decoding to RGB, and
//! TensorFlow's bilinear resize.
//!
//! The `image` crate's JPEG decoder (zune-jpeg, in its lenient mode) fills a stream that
//! ends early with grey and reports success, so a truncated or header-only JPEG would train
//! as a grey picture. Before decoding, [`check_jpeg_complete`] therefore walks the file's
//! marker segments and its entropy-coded data up to the end-of-image marker, as libjpeg
//! does when it warns "Premature end of JPEG file" (TensorFlow's `decode_jpeg` fails on such
//! a file). Bytes after the end-of-image marker, and stray bytes between segments, are
//! tolerated as by libjpeg.

use std::io::Cursor;
use std::path::Path;

use crate::error::Error;

/// Reads and decodes one image file to RGB, then resizes it to `height x width`.
///
/// # Shapes
/// Returns CHW `f32` data in `0..=255`, length `3 * height * width`.
///
/// Errors name the file ([`Error::Data`] or [`Error::Io`] inside the candle error): not a
/// regular file (a FIFO, socket or device is never opened), unreadable, unknown format, a
/// truncated or header-only JPEG, or corrupt data.
pub fn load_image(path: &Path, height: usize, width: usize) -> candle_core::Result<Vec<f32>> {
    decode_file(path, height, width).map_err(Into::into)
}

/// [`load_image`] with the runtime's error type.
pub(crate) fn decode_file(path: &Path, height: usize, width: usize) -> Result<Vec<f32>, Error> {
    let bytes = read_regular_file(path)?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        check_jpeg_complete(&bytes).map_err(|reason| Error::data(path, reason))?;
    }
    let decoder = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io("read image", path, e))?
        .into_decoder()
        .map_err(|e| Error::data(path, format!("cannot decode image: {e}")))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let color = image::ImageDecoder::color_type(&decoder);
    let need = decoding_bytes(w, h, color);
    if need > MAX_IMAGE_BYTES {
        return Err(Error::data(
            path,
            format!(
                "image of {w}x{h} pixels ({color:?}) would take {} MiB once decoded and converted to RGB, over the limit of {} MiB per image",
                need >> 20,
                MAX_IMAGE_BYTES >> 20
            ),
        ));
    }
    if w == 0 || h == 0 {
        return Err(Error::data(path, "image has no pixels"));
    }
    if let Some(warning) = small_image_warning(path, w, h, height, width) {
        eprintln!("{warning}");
    }
    let _share = DECODING.reserve(need);
    let image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| Error::data(path, format!("cannot decode image: {e}")))?
        .into_rgb8();
    Ok(resize_bilinear_rgb(
        image.as_raw(),
        h as usize,
        w as usize,
        height,
        width,
    ))
}

/// Most memory one image may take while it is decoded: its decoded pixels plus their RGB
/// conversion (a 12-megapixel RGB photo takes 36 MiB; a 20000x20000 grayscale PNG, 389 KB
/// on disk, would take 1.5 GiB and is refused).
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Most memory all the images being decoded at once (the parallel decoders of a batch) may
/// take together; a decoder whose image does not fit waits until others finish.
pub const MAX_DECODING_BYTES: u64 = 1 << 30;

/// Peak bytes of decoding a `w`x`h` image of `color`: the decoded buffer plus, unless it
/// is already 8-bit RGB, its RGB conversion.
fn decoding_bytes(w: u32, h: u32, color: image::ColorType) -> u64 {
    let pixels = u64::from(w) * u64::from(h);
    let decoded = pixels * u64::from(color.bytes_per_pixel());
    match color {
        image::ColorType::Rgb8 => decoded,
        _ => decoded + pixels * 3,
    }
}

/// Smallest side, in pixels, of an image that is decoded without a warning.
pub const MIN_IMAGE_SIDE: u32 = 8;

/// The warning for an image with a side under [`MIN_IMAGE_SIDE`] pixels, naming it: resized
/// to the model's input it carries almost no information (a 1x1 image is one colour).
pub(crate) fn small_image_warning(
    path: &Path,
    w: u32,
    h: u32,
    height: usize,
    width: usize,
) -> Option<String> {
    (w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE).then(|| {
        format!(
            "warning: {}: a very small image ({w}x{h} pixels), stretched to {width}x{height}",
            path.display()
        )
    })
}

/// The shared budget of [`MAX_DECODING_BYTES`] across decoding threads.
static DECODING: Budget = Budget::new(MAX_DECODING_BYTES);

/// A number of bytes shared by threads: [`Budget::reserve`] waits until a share fits.
pub(crate) struct Budget {
    limit: u64,
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

/// A reserved share of a [`Budget`], given back when dropped.
pub(crate) struct Share<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    pub(crate) const fn new(limit: u64) -> Self {
        Self {
            limit,
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Reserves `bytes` (at most the limit), waiting while the other shares leave too little.
    pub(crate) fn reserve(&self, bytes: u64) -> Share<'_> {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Share {
            budget: self,
            bytes,
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// Reads `path` after checking that it is a regular file (symbolic links are followed), so
/// that a FIFO named `x.jpg` is reported instead of blocking the reader forever.
pub(crate) fn read_regular_file(path: &Path) -> Result<Vec<u8>, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io("read image", path, e))?;
    if let Some(kind) = not_regular(&metadata.file_type()) {
        return Err(Error::data(
            path,
            format!("not a regular file ({kind}); only regular image files are read"),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io("read image", path, e))
}

/// What a non-regular file is (`None` for a regular file).
pub(crate) fn not_regular(file_type: &std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return Some("a device");
        }
    }
    Some("a special file")
}

/// Checks that JPEG data (starting with the start-of-image marker `FF D8`) holds at least one
/// scan and reaches its end-of-image marker `FF D9`: marker segments are skipped by their
/// length, entropy-coded data up to the next marker that is neither a stuffed `FF 00` nor a
/// restart marker. Returns why the data is incomplete, e.g. `truncated JPEG: ...`.
///
/// ```
/// use convnet_runtime::data::check_jpeg_complete;
/// // SOI, then a start-of-scan segment whose data is cut off.
/// let cut = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34];
/// assert!(check_jpeg_complete(&cut).unwrap_err().contains("truncated"));
/// ```
pub fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len();
    let truncated = |what: &str| {
        Err(format!(
            "truncated JPEG: the data ends {what} before the end-of-image marker ({n} bytes)"
        ))
    };
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("not JPEG data (no start-of-image marker)".into());
    }
    let mut i = 2;
    let mut in_scan = false;
    let mut scans = 0usize;
    loop {
        // Find the next marker: the byte after a run of 0xFF. Inside a scan, `FF 00` (a
        // stuffed data byte) and `FF D0..D7` (restart markers) belong to the data.
        let marker = loop {
            let Some(at) = bytes[i..].iter().position(|&b| b == 0xFF) else {
                return truncated(if in_scan {
                    "inside the image data"
                } else {
                    "between segments"
                });
            };
            let mut k = i + at + 1;
            while k < n && bytes[k] == 0xFF {
                k += 1;
            }
            if k >= n {
                return truncated("at a marker");
            }
            i = k + 1;
            match bytes[k] {
                0x00 => continue,
                0xD0..=0xD7 if in_scan => continue,
                code => break code,
            }
        };
        match marker {
            0xD9 if scans == 0 => {
                return Err("JPEG has no image data (end-of-image marker before any scan)".into())
            }
            0xD9 => return Ok(()),
            // Markers without a segment: start of image, TEM, restart outside a scan.
            0xD8 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                if i + 2 > n {
                    return truncated("in a segment header");
                }
                let len = u16::from_be_bytes([bytes[i], bytes[i + 1]]) as usize;
                if len < 2 {
                    return Err(format!(
                        "corrupt JPEG: segment FF {marker:02X} at byte {} has length {len}",
                        i - 2
                    ));
                }
                if i + len > n {
                    return truncated("inside a header segment");
                }
                i += len;
                in_scan = marker == 0xDA;
                if in_scan {
                    scans += 1;
                }
            }
        }
    }
}

/// TensorFlow's bilinear resize (half-pixel centres, no antialiasing) of interleaved RGB
/// `u8` pixels to CHW `f32`.
///
/// # Shapes
/// `src` is HWC `[in_h, in_w, 3]`; returns CHW `[3, out_h, out_w]` flattened.
pub fn resize_bilinear_rgb(
    src: &[u8],
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let ys = interpolation_weights(in_h, out_h);
    let xs = interpolation_weights(in_w, out_w);
    let plane = out_h * out_w;
    let mut out = vec![0f32; 3 * plane];
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row0 = &src[y0 * in_w * 3..(y0 + 1) * in_w * 3];
        let row1 = &src[y1 * in_w * 3..(y1 + 1) * in_w * 3];
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let tl = row0[x0 * 3 + c] as f32;
                let tr = row0[x1 * 3 + c] as f32;
                let bl = row1[x0 * 3 + c] as f32;
                let br = row1[x1 * 3 + c] as f32;
                let top = tl + (tr - tl) * fx;
                let bottom = bl + (br - bl) * fx;
                out[c * plane + oy * out_w + ox] = top + (bottom - top) * fy;
            }
        }
    }
    out
}

/// `(lower, upper, lerp)` source indices for each output index, as in TensorFlow's
/// `compute_interpolation_weights` with half-pixel centres.
pub(crate) fn interpolation_weights(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|o| {
            let x = (o as f64 + 0.5) * scale - 0.5;
            let floor = x.floor();
            let lower = (floor.max(0.0) as usize).min(in_size - 1);
            let upper = (x.ceil().max(0.0) as usize).min(in_size - 1);
            (lower, upper, (x - floor) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header says `w`x`h` 8-bit grayscale, with a token of image data: what
    /// a decoder reads before it allocates the pixels.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend(kind);
            out.extend(data);
            let crc = crc32fast::hash(&out[start..]);
            out.extend(crc.to_be_bytes());
        }
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let mut ihdr = Vec::new();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, no filter, no interlace
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn an_image_too_large_once_converted_is_refused_with_its_dimensions() {
        let dir = crate::testutil::temp_dir("decode-huge");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.png");
        std::fs::write(&path, png_header(20_000, 20_000)).unwrap();
        let err = decode_file(&path, 64, 64).unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("huge.png")
                && text.contains("20000x20000")
                && text.contains("over the limit of 256 MiB per image"),
            "{text}"
        );
        // 400 MB of gray pixels are under `image`'s own 512 MiB limit: the RGB copy is not.
        assert_eq!(
            decoding_bytes(20_000, 20_000, image::ColorType::L8),
            1_600_000_000
        );
        assert_eq!(decoding_bytes(10, 10, image::ColorType::Rgb8), 300);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn very_small_images_are_named_in_a_warning() {
        let path = Path::new("train/cats/dot.png");
        let warning = small_image_warning(path, 1, 1, 64, 64).unwrap();
        assert!(
            warning.contains("train/cats/dot.png") && warning.contains("1x1 pixels"),
            "{warning}"
        );
        assert!(small_image_warning(path, 640, 4, 64, 64).is_some());
        assert!(small_image_warning(path, 8, 8, 64, 64).is_none());
    }

    #[test]
    fn parallel_decoders_share_one_budget() {
        let budget = Budget::new(100);
        let peak = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let _share = budget.reserve(40);
                        peak.fetch_max(budget.used(), std::sync::atomic::Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                });
            }
        });
        let peak = peak.into_inner();
        assert!((40..=100).contains(&peak), "peak {peak}");
        assert_eq!(budget.used(), 0, "every share is given back");
        // A share larger than the whole budget is capped rather than waiting forever.
        let _all = budget.reserve(1_000);
        assert_eq!(budget.used(), 100);
    }

    /// A minimal structurally complete JPEG: SOI, a segment, a scan with stuffed bytes and a
    /// restart marker, EOI.
    fn complete() -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
        v.extend([0xFF, 0xDA, 0x00, 0x03, 0x01]);
        v.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD9]);
        v
    }

    #[test]
    fn complete_jpeg_structure_passes_and_every_cut_fails() {
        let full = complete();
        assert_eq!(check_jpeg_complete(&full), Ok(()));
        // Trailing bytes after EOI are tolerated (as libjpeg does).
        let mut trailing = full.clone();
        trailing.extend([0, 0, 1, 2]);
        assert_eq!(check_jpeg_complete(&trailing), Ok(()));
        for cut in 2..full.len() {
            let err = check_jpeg_complete(&full[..cut]).unwrap_err();
            assert!(err.contains("truncated JPEG"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn jpeg_without_a_scan_or_with_a_bad_length_is_rejected() {
        let no_scan = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0xFF, 0xD9];
        assert!(check_jpeg_complete(&no_scan)
            .unwrap_err()
            .contains("no image data"));
        let bad_len = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0xFF, 0xD9];
        assert!(check_jpeg_complete(&bad_len)
            .unwrap_err()
            .contains("length 1"));
        assert!(check_jpeg_complete(b"PNG").is_err());
    }
}
