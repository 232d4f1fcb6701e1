//! Image-folder dataset: listing, labels, decoding, resizing, errors, split, cache, and the
//! real cats-vs-dogs photos when `CONVNET_DATA_DIR` is set.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use candle_core::{DType, Device};
use common::{temp_dir, write_fn, write_solid};
use convnet_runtime::data::{
    resize_bilinear_rgb, Batches, DataLoader, Dataset, ImageFolder, Subset,
};

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

/// Reads the real photos; set `CONVNET_DATA_DIR` to the `cats_vs_dogs` folder.
#[test]
fn real_cats_vs_dogs_validation_split() {
    let Ok(dir) = std::env::var("CONVNET_DATA_DIR") else {
        println!("skipped: set CONVNET_DATA_DIR to the cats_vs_dogs folder to run this test");
        return;
    };
    let folder = ImageFolder::builder(PathBuf::from(dir).join("validation"), 64, 64)
        .cache(true)
        .build()
        .unwrap();
    assert_eq!(folder.class_names(), ["cats", "dogs"]);
    assert_eq!(folder.len(), 500);
    assert_eq!(folder.labels().iter().filter(|&&l| l == 0).count(), 250);
    assert_eq!(folder.labels().iter().filter(|&&l| l == 1).count(), 250);
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
