//! The synthetic shapes dataset: layout, determinism, and that the image-folder path reads it.

mod common;

use common::temp_dir;
use convnet_runtime::data::{Batches, DataLoader, ImageFolder, SyntheticShapes};

fn listing(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for split in ["train", "validation", "test"] {
        for class in SyntheticShapes::CLASS_NAMES {
            let folder = dir.join(split).join(class);
            let mut names: Vec<_> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out
}

#[test]
fn writes_an_image_folder_that_the_loader_reads() {
    let dir = temp_dir("synthetic");
    let shapes = SyntheticShapes::new()
        .image_size(32, 32)
        .per_class(6, 3, 2)
        .seed(4);
    shapes.write(&dir).unwrap();
    for (split, n) in [("train", 6), ("validation", 3), ("test", 2)] {
        let folder = ImageFolder::open(dir.join(split), 24, 24).unwrap();
        assert_eq!(folder.class_names(), ["circles", "squares"]);
        assert_eq!(folder.len(), 2 * n);
        assert_eq!(folder.labels().iter().filter(|&&l| l == 0).count(), n);
        let exts: std::collections::HashSet<String> = folder
            .paths()
            .iter()
            .map(|p| p.extension().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            exts,
            ["jpg".to_string(), "png".to_string()].into_iter().collect()
        );
        let mut loader = DataLoader::new(folder, 4);
        for batch in loader.epoch(0) {
            let batch = batch.unwrap();
            assert_eq!(&batch.inputs.dims()[1..], [3, 24, 24]);
            // Noisy images: not flat.
            let v: Vec<f32> = batch.inputs.flatten_all().unwrap().to_vec1().unwrap();
            let (lo, hi) = v
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            assert!(hi - lo > 50.0);
        }
    }
    // Same settings: a no-op that leaves identical files; same seed elsewhere: same bytes.
    let before = listing(&dir);
    shapes.write(&dir).unwrap();
    assert_eq!(listing(&dir), before);
    let again = temp_dir("synthetic-again");
    shapes.write(&again).unwrap();
    assert_eq!(listing(&again), before);
    // Another seed: other images, written over the old ones.
    shapes.clone().seed(5).write(&again).unwrap();
    let other = listing(&again);
    assert_eq!(other.len(), before.len());
    assert_ne!(other, before);
}

#[test]
fn shapes_differ_by_class_and_refuses_foreign_folders() {
    let shapes = SyntheticShapes::new().image_size(16, 16);
    assert_eq!(shapes.image(0, 0, 3).len(), 16 * 16 * 3);
    assert_eq!(shapes.image(0, 0, 3), shapes.image(0, 0, 3));
    assert_ne!(shapes.image(0, 0, 3), shapes.image(0, 1, 3));
    assert_ne!(shapes.image(0, 0, 3), shapes.image(1, 0, 3));

    let dir = temp_dir("synthetic-foreign");
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let err = shapes.write(&dir).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
    assert!(dir.join("precious.txt").exists());
}
