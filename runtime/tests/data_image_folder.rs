//! Image-folder dataset: listing, labels, decoding, resizing, errors (corrupt, truncated and
//! header-only JPEGs, FIFOs, non-UTF-8 folder names), verification, split, cache, and the
//! real cats-vs-dogs photos (an ignored test, run by `.ci/run` with `CONVNET_DATA_DIR`).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use common::{temp_dir, write_fn, write_solid};
use convnet_runtime::data::{
    load_image, resize_bilinear_rgb, Batches, DataLoader, Dataset, ImageFolder, Subset,
};
use convnet_runtime::error::Error;

#[test]
fn labels_follow_sorted_folder_order() {
    let root = temp_dir("labels");
    // Created out of order; classes must come back sorted.
    write_solid(&root.join("zebra/z0.png"), 4, 4, [0, 0, 255]);
    write_solid(&root.join("ant/a0.png"), 4, 4, [255, 0, 0]);
    write_solid(&root.join("ant/a1.JPG"), 4, 4, [255, 0, 0]);
    write_solid(&root.join("mouse/nested/m0.jpeg"), 4, 4, [0, 255, 0]);
    write_solid(&root.join("mouse/m1.PNG"), 4, 4, [0, 255, 0]);
    // Ignored: a file in the root, a non-image file in a class folder.
    write_solid(&root.join("stray.png"), 4, 4, [1, 2, 3]);
    std::fs::write(root.join("ant/notes.txt"), "not an image").unwrap();

    let folder = ImageFolder::open(&root, 4, 4).unwrap();
    assert_eq!(folder.class_names(), ["ant", "mouse", "zebra"]);
    assert_eq!(folder.len(), 5);
    let expected: Vec<(String, u32)> = vec![
        ("a0.png".into(), 0),
        ("a1.JPG".into(), 0),
        ("m1.PNG".into(), 1),
        ("m0.jpeg".into(), 1),
        ("z0.png".into(), 2),
    ];
    let got: Vec<(String, u32)> = folder
        .paths()
        .iter()
        .zip(folder.labels())
        .map(|(p, &l)| (p.file_name().unwrap().to_string_lossy().into_owned(), l))
        .collect();
    // Within a class, files are sorted by full path ("mouse/m1.PNG" < "mouse/nested/...").
    assert_eq!(got, expected);

    // The label matches the folder's colour in the decoded pixels.
    let batch = folder.gather(&[0, 2, 4]).unwrap();
    assert_eq!(batch.targets.to_vec1::<u32>().unwrap(), [0, 1, 2]);
    let px = batch.inputs.to_dtype(DType::F32).unwrap();
    let red: Vec<f32> = px
        .narrow(1, 0, 1)
        .unwrap()
        .mean_keepdim(3)
        .unwrap()
        .mean_keepdim(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(red[0] > 200.0 && red[1] < 30.0 && red[2] < 30.0, "{red:?}");

    // Explicit class order (Keras `class_names`).
    let folder = ImageFolder::builder(&root, 4, 4)
        .class_names(["zebra", "ant"])
        .build()
        .unwrap();
    assert_eq!(folder.class_names(), ["zebra", "ant"]);
    assert_eq!(folder.labels(), [0, 1, 1]);
    let err = ImageFolder::builder(&root, 4, 4)
        .class_names(["cat"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cat") && err.contains(&root.display().to_string()),
        "{err}"
    );
}

#[test]
fn solid_colour_png_gives_that_colour_at_any_size() {
    let root = temp_dir("solid");
    write_solid(&root.join("a/solid.png"), 10, 7, [12, 200, 77]);
    write_solid(&root.join("b/solid.jpg"), 33, 20, [12, 200, 77]);
    let folder = ImageFolder::open(&root, 5, 9).unwrap();
    let png = folder.image(0).unwrap();
    assert_eq!(png.dims(), [3, 5, 9]);
    assert_eq!(png.dtype(), DType::F32);
    for (c, want) in [12.0f32, 200.0, 77.0].into_iter().enumerate() {
        let plane: Vec<f32> = png
            .get(c)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(plane.iter().all(|&v| v == want), "channel {c}: {plane:?}");
    }
    // JPEG is lossy: close, not exact.
    let jpg = folder.image(1).unwrap();
    assert_eq!(jpg.dims(), [3, 5, 9]);
    for (c, want) in [12.0f32, 200.0, 77.0].into_iter().enumerate() {
        let plane: Vec<f32> = jpg
            .get(c)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            plane.iter().all(|&v| (v - want).abs() <= 6.0),
            "channel {c}: {plane:?}"
        );
    }
}

#[test]
fn resize_is_tensorflow_bilinear_with_half_pixel_centres() {
    // 2 columns (0 and 100 in red) upsampled to 4: tf.image.resize gives [0, 25, 75, 100].
    let src = [0u8, 0, 0, 100, 0, 0];
    let out = resize_bilinear_rgb(&src, 1, 2, 1, 4);
    assert_eq!(&out[..4], [0.0, 25.0, 75.0, 100.0]);
    assert_eq!(&out[4..], [0.0; 8]);
    // 4 columns [0, 40, 80, 120] downsampled to 2: centres fall between pairs -> [20, 100].
    let src: Vec<u8> = [0u8, 40, 80, 120].iter().flat_map(|&v| [v, v, v]).collect();
    assert_eq!(
        resize_bilinear_rgb(&src, 1, 4, 1, 2),
        [20.0, 100.0, 20.0, 100.0, 20.0, 100.0]
    );

    // Through a file: a horizontal gradient, channel layout CHW.
    let root = temp_dir("resize");
    write_fn(&root.join("a/g.png"), 4, 3, |x, _| {
        [(x * 40) as u8, 7, 255 - (x * 40) as u8]
    });
    let image = ImageFolder::open(&root, 2, 2).unwrap().image(0).unwrap();
    let v: Vec<f32> = image.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(
        v,
        [20.0, 100.0, 20.0, 100.0, 7.0, 7.0, 7.0, 7.0, 235.0, 155.0, 235.0, 155.0]
    );
}

#[test]
fn corrupt_image_is_an_error_naming_the_file_or_skipped_and_counted() {
    let root = temp_dir("corrupt");
    for i in 0..3 {
        write_solid(&root.join(format!("a/ok{i}.png")), 6, 6, [9, 9, 9]);
    }
    std::fs::write(root.join("a/broken.jpg"), b"this is not a jpeg").unwrap();
    // A truncated PNG: valid header, missing data.
    write_solid(&root.join("b/full.png"), 16, 16, [1, 2, 3]);
    let bytes = std::fs::read(root.join("b/full.png")).unwrap();
    std::fs::write(root.join("b/truncated.png"), &bytes[..bytes.len() / 2]).unwrap();

    let folder = ImageFolder::open(&root, 4, 4).unwrap();
    assert_eq!(folder.len(), 6);
    let mut loader = DataLoader::new(folder, 2);
    let err = loader
        .epoch(0)
        .find_map(|b| b.err())
        .expect("a corrupt file must fail")
        .to_string();
    assert!(err.contains("broken.jpg"), "{err}");
    let err = ImageFolder::open(&root, 4, 4)
        .unwrap()
        .image(5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.png"), "{err}");

    for cache in [false, true] {
        let folder = ImageFolder::builder(&root, 4, 4)
            .skip_invalid(true)
            .cache(cache)
            .build()
            .unwrap();
        assert_eq!(folder.num_skipped(), 2);
        assert_eq!(folder.len(), 4);
        let skipped: HashSet<String> = folder
            .skipped()
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            skipped,
            HashSet::from(["broken.jpg".to_string(), "truncated.png".to_string()])
        );
        assert_eq!(folder.num_cached(), if cache { 4 } else { 0 });
        assert_eq!(folder.labels(), [0, 0, 0, 1]);
        let mut loader = DataLoader::new(folder, 3);
        assert_eq!(loader.num_examples(), 4);
        assert!(loader.epoch(0).all(|b| b.is_ok()));
    }
}

#[test]
fn missing_empty_and_imageless_folders_are_clear_errors() {
    let root = temp_dir("errors");
    let missing = root.join("nope");
    let err = ImageFolder::open(&missing, 8, 8).unwrap_err().to_string();
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("no such folder"),
        "{err}"
    );

    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_solid(&empty.join("loose.png"), 4, 4, [0, 0, 0]); // not in a class folder
    let err = ImageFolder::open(&empty, 8, 8).unwrap_err().to_string();
    assert!(
        err.contains(&empty.display().to_string()) && err.contains("no class sub-folders"),
        "{err}"
    );

    let imageless = root.join("imageless");
    std::fs::create_dir_all(imageless.join("cats")).unwrap();
    std::fs::create_dir_all(imageless.join("dogs")).unwrap();
    std::fs::write(imageless.join("dogs/readme.txt"), "no images").unwrap();
    let err = ImageFolder::open(&imageless, 8, 8).unwrap_err().to_string();
    assert!(
        err.contains(&imageless.display().to_string()) && err.contains("no images"),
        "{err}"
    );

    let file = root.join("file.png");
    write_solid(&file, 4, 4, [0, 0, 0]);
    let err = ImageFolder::open(&file, 8, 8).unwrap_err().to_string();
    assert!(err.contains("not a folder"), "{err}");
}

#[test]
fn validation_split_is_seeded_disjoint_and_complete() {
    let root = temp_dir("split");
    for i in 0..10 {
        write_solid(&root.join(format!("a/{i}.png")), 3, 3, [i as u8, 0, 0]);
    }
    for i in 0..7 {
        write_solid(&root.join(format!("b/{i}.png")), 3, 3, [0, i as u8, 0]);
    }
    let build = |subset, seed| {
        ImageFolder::builder(&root, 3, 3)
            .validation_split(0.2, subset)
            .seed(seed)
            .build()
            .unwrap()
    };
    let train = build(Subset::Training, 42);
    let val = build(Subset::Validation, 42);
    // Keras: floor(0.2 * 17) = 3 for validation, the rest for training.
    assert_eq!((train.len(), val.len()), (14, 3));
    let t: HashSet<PathBuf> = train.paths().iter().cloned().collect();
    let v: HashSet<PathBuf> = val.paths().iter().cloned().collect();
    assert!(t.is_disjoint(&v));
    assert_eq!(t.len() + v.len(), 17);
    let all: HashSet<PathBuf> = ImageFolder::open(&root, 3, 3)
        .unwrap()
        .paths()
        .iter()
        .cloned()
        .collect();
    assert_eq!(&t | &v, all);
    // Labels stay attached to their files.
    for (p, &l) in val.paths().iter().zip(val.labels()) {
        assert_eq!(
            l,
            if p.parent().unwrap().ends_with("a") {
                0
            } else {
                1
            }
        );
    }
    // Same seed, same split; some other seed gives another validation set.
    assert_eq!(build(Subset::Validation, 42).paths(), val.paths());
    assert!((0..10).any(|s| build(Subset::Validation, s).paths() != val.paths()));
    // Bad fractions.
    for bad in [0.0, 1.0, -0.5] {
        let err = ImageFolder::builder(&root, 3, 3)
            .validation_split(bad, Subset::Training)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("validation_split"), "{err}");
    }
}

#[test]
fn cache_gives_identical_tensors_to_uncached() {
    let root = temp_dir("cache");
    for i in 0..7u32 {
        write_fn(
            &root.join(format!(
                "c{}/{i}.{}",
                i % 2,
                if i % 3 == 0 { "jpg" } else { "png" }
            )),
            13 + i,
            9,
            |x, y| [(x * 17 + i) as u8, (y * 23) as u8, ((x * y) % 255) as u8],
        );
    }
    let make = |cache| {
        let folder = ImageFolder::builder(&root, 8, 6)
            .cache(cache)
            .build()
            .unwrap();
        DataLoader::new(folder, 3).shuffle(true).seed(5)
    };
    let (mut cached, mut plain) = (make(true), make(false));
    for epoch in 0..3 {
        let a: Vec<_> = cached.epoch(epoch).map(|b| b.unwrap()).collect();
        let b: Vec<_> = plain.epoch(epoch).map(|b| b.unwrap()).collect();
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.inputs.dims(), [x.inputs.dim(0).unwrap(), 3, 8, 6]);
            let xv: Vec<f32> = x.inputs.flatten_all().unwrap().to_vec1().unwrap();
            let yv: Vec<f32> = y.inputs.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(xv, yv);
            assert_eq!(
                x.targets.to_vec1::<u32>().unwrap(),
                y.targets.to_vec1::<u32>().unwrap()
            );
        }
    }
    let folder = cached.dataset();
    assert_eq!(folder.len(), 7);
}

/// Reads the real photos; set `CONVNET_DATA_DIR` to the `cats_vs_dogs` folder (`.ci/run` does)
/// and run with `--ignored`. Every file of every split must pass [`ImageFolder::verify`] (no
/// false alarm from the truncation check on 3,000 real JPEGs).
#[test]
#[ignore = "needs the real photos: set CONVNET_DATA_DIR and run with --ignored"]
fn real_cats_vs_dogs_splits_verify_and_load() {
    let dir = std::env::var("CONVNET_DATA_DIR")
        .expect("CONVNET_DATA_DIR must name the cats_vs_dogs folder for this test");
    let [train, validation, test] = ImageFolder::builder(&dir, 64, 64)
        .cache(true)
        .build_splits(["train", "validation", "test"])
        .unwrap();
    for (split, per_class) in [(&train, 1000), (&validation, 250), (&test, 250)] {
        assert_eq!(split.class_names(), ["cats", "dogs"]);
        assert_eq!(split.class_counts(), [per_class, per_class]);
        split.verify().unwrap();
        assert_eq!(split.num_cached(), split.len());
    }
    let folder = validation;
    assert_eq!(folder.len(), 500);
    for (p, &l) in folder.paths().iter().zip(folder.labels()) {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(if l == 0 { "cat." } else { "dog." }),
            "{name} labelled {l}"
        );
    }
    let mut loader = DataLoader::new(folder, 64).device(Device::Cpu);
    assert_eq!(loader.num_batches(), 8);
    let (mut min, mut max, mut seen, mut sum) = (f32::MAX, f32::MIN, 0, 0f64);
    for batch in loader.epoch(0) {
        let batch = batch.unwrap();
        assert_eq!(&batch.inputs.dims()[1..], [3, 64, 64]);
        assert_eq!(batch.targets.dtype(), DType::U32);
        let v: Vec<f32> = batch.inputs.flatten_all().unwrap().to_vec1().unwrap();
        min = v.iter().copied().fold(min, f32::min);
        max = v.iter().copied().fold(max, f32::max);
        sum += v.iter().map(|&x| x as f64).sum::<f64>();
        seen += batch.targets.dim(0).unwrap();
    }
    assert_eq!(seen, 500);
    assert!(min >= 0.0 && max <= 255.0, "range {min}..{max}");
    assert!(
        max > 250.0 && min < 5.0,
        "photos should span the range: {min}..{max}"
    );
    let mean = sum / (500.0 * 3.0 * 64.0 * 64.0);
    assert!((60.0..200.0).contains(&mean), "mean pixel {mean}");
}

#[test]
fn label_modes_encode_targets_like_keras() {
    let root = temp_dir("label-modes");
    for class in ["a", "b", "c"] {
        write_solid(&root.join(format!("{class}/0.png")), 3, 3, [0, 0, 0]);
    }
    use convnet_runtime::data::LabelMode;
    let folder = ImageFolder::builder(&root, 2, 2)
        .label_mode(LabelMode::Categorical)
        .build()
        .unwrap();
    let t = folder.gather(&[2, 0]).unwrap().targets;
    assert_eq!(
        t.to_vec2::<f32>().unwrap(),
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    );
    let err = ImageFolder::builder(&root, 2, 2)
        .label_mode(LabelMode::Binary)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly 2 classes"), "{err}");
    let folder = ImageFolder::builder(&root, 2, 2)
        .class_names(["c", "a"])
        .label_mode(LabelMode::Binary)
        .build()
        .unwrap();
    let t = folder.gather(&[1, 0]).unwrap().targets;
    assert_eq!(t.dims(), [2, 1]);
    assert_eq!(t.to_vec2::<f32>().unwrap(), [[1.0], [0.0]]);
    let t = ImageFolder::open(&root, 2, 2)
        .unwrap()
        .gather(&[1])
        .unwrap()
        .targets;
    assert_eq!(
        (t.dims(), t.to_vec1::<u32>().unwrap()),
        (&[1usize][..], vec![1u32])
    );
}

/// A real JPEG (a 64x48 textured picture) cut in two ways: in the middle of its image data,
/// and right after the start-of-scan header (no image data at all).
fn write_cut_jpegs(dir: &Path) -> (PathBuf, PathBuf) {
    let full = dir.join("full.jpg");
    write_fn(&full, 64, 48, |x, y| {
        [(x * 4) as u8, (y * 5) as u8, ((x * y) % 251) as u8]
    });
    let bytes = std::fs::read(&full).unwrap();
    let sos = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("a start-of-scan marker");
    let scan = sos + 2 + u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]) as usize;
    assert!(
        bytes.len() - scan > 200,
        "the image data should be sizeable"
    );
    let half = dir.join("half.jpg");
    std::fs::write(&half, &bytes[..(scan + bytes.len()) / 2]).unwrap();
    let header_only = dir.join("header_only.jpg");
    std::fs::write(&header_only, &bytes[..scan]).unwrap();
    (half, header_only)
}

/// The path and reason of a runtime `Error::Data` inside a candle error.
fn data_error(err: &candle_core::Error) -> (PathBuf, String) {
    match Error::find(err) {
        Some(Error::Data { path, reason }) => (path.clone(), reason.clone()),
        other => panic!("expected Error::Data, got {other:?} from {err}"),
    }
}

#[test]
fn truncated_and_header_only_jpegs_are_errors_naming_the_file_or_skipped() {
    let root = temp_dir("truncated-jpeg");
    let (half, header_only) = write_cut_jpegs(&root.join("a"));
    write_solid(&root.join("b/ok.png"), 6, 6, [1, 2, 3]);
    // Today the decoder fills the missing data with grey and reports success.
    for path in [&half, &header_only] {
        let err = load_image(path, 8, 8).unwrap_err();
        let (at, reason) = data_error(&err);
        assert_eq!(&at, path);
        assert!(reason.contains("truncated JPEG"), "{reason}");
    }
    let folder = ImageFolder::open(&root, 8, 8).unwrap();
    assert_eq!(folder.len(), 4); // full, half, header_only, ok
    let err = DataLoader::new(folder, 4)
        .epoch(0)
        .find_map(|b| b.err())
        .expect("a truncated JPEG must fail");
    assert!(err.to_string().contains("truncated JPEG"), "{err}");

    let folder = ImageFolder::builder(&root, 8, 8)
        .skip_invalid(true)
        .build()
        .unwrap();
    assert_eq!(folder.num_skipped(), 2);
    assert_eq!(folder.len(), 2);
    let skipped: HashSet<PathBuf> = folder.skipped().iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(skipped, HashSet::from([half, header_only]));
    assert!(folder
        .skipped()
        .iter()
        .all(|(_, why)| why.contains("truncated JPEG")));
}

#[test]
fn verify_finds_a_bad_image_before_training_and_fills_the_cache() {
    let root = temp_dir("verify");
    for i in 0..4 {
        write_solid(&root.join(format!("a/{i}.png")), 5, 5, [i, 0, 0]);
        write_solid(&root.join(format!("b/{i}.jpg")), 5, 5, [0, i, 0]);
    }
    let good = ImageFolder::builder(&root, 4, 4)
        .cache(true)
        .build()
        .unwrap();
    assert_eq!(good.num_cached(), 0);
    good.verify().unwrap();
    assert_eq!(good.num_cached(), 8);

    // Two bad files: the error names the first (in dataset order) and counts the other.
    let (half, _) = write_cut_jpegs(&root.join("b"));
    std::fs::write(root.join("a/broken.png"), b"not a png").unwrap();
    let folder = ImageFolder::open(&root, 4, 4).unwrap();
    let err = folder.verify().unwrap_err();
    let (path, reason) = data_error(&err);
    assert_eq!(path, root.join("a/broken.png"));
    assert!(reason.contains("and 2 more"), "{reason}"); // half.jpg and header_only.jpg
    assert!(folder.paths().contains(&half));
}

#[cfg(unix)]
#[test]
fn fifo_named_like_an_image_is_never_opened() {
    let root = temp_dir("fifo");
    write_solid(&root.join("a/ok.png"), 4, 4, [1, 1, 1]);
    write_solid(&root.join("b/ok.png"), 4, 4, [2, 2, 2]);
    let fifo = root.join("a/pipe.jpg");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());

    // Opening a FIFO for reading blocks until a writer comes: run everything on a thread
    // with a deadline, so a regression fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    let (root2, fifo2) = (root.clone(), fifo.clone());
    std::thread::spawn(move || {
        let strict = ImageFolder::open(&root2, 4, 4).and_then(|f| {
            let mut loader = DataLoader::new(f, 4);
            let batches: candle_core::Result<Vec<_>> = loader.epoch(0).collect();
            batches.map(|_| ())
        });
        let direct = load_image(&fifo2, 4, 4).map(|_| ());
        let skipping = ImageFolder::builder(&root2, 4, 4)
            .skip_invalid(true)
            .build()
            .map(|f| (f.len(), f.skipped().to_vec()));
        let _ = tx.send((strict, direct, skipping));
    });
    let (strict, direct, skipping) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("reading the image folder blocked on a FIFO");
    for err in [strict.unwrap_err(), direct.unwrap_err()] {
        let (path, reason) = data_error(&err);
        assert_eq!(path, fifo);
        assert!(reason.contains("not a regular file (a FIFO)"), "{reason}");
    }
    let (len, skipped) = skipping.unwrap();
    assert_eq!(len, 2);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, fifo);
}

#[cfg(unix)]
#[test]
fn non_utf8_class_folder_names_work() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let root = temp_dir("non-utf8");
    let latin1 = OsStr::from_bytes(b"caf\xe9"); // "café" in Latin-1: not UTF-8
    write_solid(&root.join(latin1).join("0.png"), 4, 4, [200, 0, 0]);
    write_solid(&root.join("dogs/0.png"), 4, 4, [0, 200, 0]);
    write_solid(&root.join("dogs/1.png"), 4, 4, [0, 200, 0]);
    let folder = ImageFolder::open(&root, 4, 4).unwrap();
    assert_eq!(folder.class_folders()[0], latin1);
    assert_eq!(folder.class_names()[0], "caf\u{FFFD}");
    assert_eq!(folder.class_counts(), [1, 2]);
    let red: Vec<f32> = folder
        .image(0)
        .unwrap()
        .get(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(red.iter().all(|&v| v == 200.0), "{red:?}");
    // Explicit class names as OsStr, and as a split checked against another.
    let folder = ImageFolder::builder(&root, 4, 4)
        .class_names([OsStr::new("dogs"), latin1])
        .build()
        .unwrap();
    assert_eq!(folder.labels(), [0, 0, 1]);
}
