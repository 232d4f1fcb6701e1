//! DataLoader over tensors and image folders: batching, seeded shuffling, augmentation only
//! in training.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{temp_dir, write_fn};
use convnet_runtime::data::{Augment, Batch, Batches, DataLoader, ImageFolder, TensorDataset};

/// 23 examples whose input value is the example's index, shaped `[1, 2, 2]`.
fn indexed(n: u32) -> TensorDataset {
    let x = Tensor::arange(0u32, n, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .reshape((n as usize, 1, 1, 1))
        .unwrap()
        .repeat((1, 1, 2, 2))
        .unwrap();
    let y = Tensor::arange(0u32, n, &Device::Cpu).unwrap();
    TensorDataset::new(x, y).unwrap()
}

fn epoch_targets(loader: &mut DataLoader, epoch: usize) -> Vec<Vec<u32>> {
    loader
        .epoch(epoch)
        .map(|b| b.unwrap().targets.to_vec1::<u32>().unwrap())
        .collect()
}

#[test]
fn every_example_once_per_epoch_with_batch_sizes() {
    let mut loader = DataLoader::new(indexed(23), 5).shuffle(true).seed(3);
    assert_eq!((loader.num_batches(), loader.num_examples()), (5, 23));
    for epoch in 0..3 {
        let batches: Vec<Batch> = loader.epoch(epoch).map(|b| b.unwrap()).collect();
        let sizes: Vec<usize> = batches.iter().map(|b| b.targets.dim(0).unwrap()).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 3]);
        let mut seen = Vec::new();
        for b in &batches {
            assert_eq!(b.inputs.dims()[1..], [1, 2, 2]);
            assert_eq!(b.targets.dtype(), DType::U32);
            // Inputs travel with their targets.
            let x: Vec<f32> = b.inputs.flatten_all().unwrap().to_vec1().unwrap();
            let t = b.targets.to_vec1::<u32>().unwrap();
            for (k, &target) in t.iter().enumerate() {
                assert!(x[k * 4..k * 4 + 4].iter().all(|&v| v == target as f32));
            }
            seen.extend(t);
        }
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }

    let mut dropping = DataLoader::new(indexed(23), 5)
        .shuffle(true)
        .seed(3)
        .drop_last(true);
    assert_eq!((dropping.num_batches(), dropping.num_examples()), (4, 20));
    let batches = epoch_targets(&mut dropping, 0);
    assert_eq!(batches.len(), 4);
    assert!(batches.iter().all(|b| b.len() == 5));
    let all: std::collections::HashSet<u32> = batches.concat().into_iter().collect();
    assert_eq!(all.len(), 20);

    let mut zero = DataLoader::new(indexed(3), 0);
    assert!(zero
        .epoch(0)
        .next()
        .unwrap()
        .unwrap_err()
        .to_string()
        .contains("batch_size"));
}

#[test]
fn shuffle_is_a_function_of_seed_and_epoch() {
    let mut a = DataLoader::new(indexed(50), 8).shuffle(true).seed(11);
    let mut b = DataLoader::new(indexed(50), 8).shuffle(true).seed(11);
    let a0 = epoch_targets(&mut a, 0);
    let a1 = epoch_targets(&mut a, 1);
    assert_ne!(a0, a1, "epochs must differ");
    // A fresh loader jumping straight to epoch 1 (resumed training) sees the same order.
    assert_eq!(epoch_targets(&mut b, 1), a1);
    assert_eq!(epoch_targets(&mut b, 0), a0);
    assert_eq!(
        epoch_targets(&mut a, 0),
        a0,
        "replaying an epoch is identical"
    );
    let mut c = DataLoader::new(indexed(50), 8).shuffle(true).seed(12);
    assert_ne!(epoch_targets(&mut c, 0), a0, "another seed, another order");
    // The order does not depend on the batch size.
    assert_eq!(
        DataLoader::new(indexed(50), 3)
            .shuffle(true)
            .seed(11)
            .order(1)
            .into_iter()
            .map(|i| i as u32)
            .collect::<Vec<_>>(),
        a1.concat()
    );
    // Without shuffling, dataset order.
    let mut plain = DataLoader::new(indexed(10), 4);
    assert_eq!(
        epoch_targets(&mut plain, 5).concat(),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn tensor_dataset_checks_lengths_and_keeps_float_targets() {
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let err = TensorDataset::new(
        x.clone(),
        Tensor::zeros(5, DType::U32, &Device::Cpu).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[4, 3]") && err.contains("[5]"), "{err}");
    let y = Tensor::new(
        &[[0.5f32, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]],
        &Device::Cpu,
    )
    .unwrap();
    let mut loader = DataLoader::new(TensorDataset::new(x, y).unwrap(), 3);
    let first = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(first.targets.dims(), [3, 2]);
    assert_eq!(first.targets.to_vec2::<f32>().unwrap()[2], [2.5, 3.0]);
    // Augmenting a non-image dataset is a clear error.
    let mut images = DataLoader::new(indexed(4), 2)
        .augment(Augment::new().flip_horizontal())
        .training(true);
    let x2 = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let y2 = Tensor::zeros(4, DType::U32, &Device::Cpu).unwrap();
    let mut flat = DataLoader::new(TensorDataset::new(x2, y2).unwrap(), 2)
        .augment(Augment::new().flip_horizontal())
        .training(true);
    assert!(images.epoch(0).all(|b| b.is_ok()));
    let err = flat.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(err.contains("[B, C, H, W]"), "{err}");
}

/// Images with distinct, asymmetric content so any augmentation shows.
fn pattern_images() -> TensorDataset {
    let n = 12usize;
    let data: Vec<f32> = (0..n * 3 * 8 * 8)
        .map(|i| ((i * 37) % 251) as f32)
        .collect();
    let x = Tensor::from_vec(data, (n, 3, 8, 8), &Device::Cpu).unwrap();
    let y = Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap();
    TensorDataset::new(x, y).unwrap()
}

fn inputs_by_example(loader: &mut DataLoader, epoch: usize) -> Vec<(u32, Vec<f32>)> {
    let mut out = Vec::new();
    for b in loader.epoch(epoch) {
        let b = b.unwrap();
        let t = b.targets.to_vec1::<u32>().unwrap();
        for (k, &id) in t.iter().enumerate() {
            out.push((
                id,
                b.inputs
                    .get(k)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            ));
        }
    }
    out.sort_by_key(|(id, _)| *id);
    out
}

#[test]
fn augmentation_only_in_training_deterministic_and_batch_size_independent() {
    let augment = Augment::new().flip_horizontal().rotation(0.1).zoom(0.2);
    let raw = inputs_by_example(&mut DataLoader::new(pattern_images(), 4), 0);

    let mut eval = DataLoader::new(pattern_images(), 4)
        .augment(augment.clone())
        .shuffle(true)
        .seed(9);
    assert!(!eval.augments());
    assert_eq!(
        inputs_by_example(&mut eval, 0),
        raw,
        "no augmentation when not training"
    );

    let mut train = DataLoader::new(pattern_images(), 4)
        .augment(augment.clone())
        .shuffle(true)
        .seed(9)
        .training(true);
    assert!(train.augments());
    let t0 = inputs_by_example(&mut train, 0);
    assert_ne!(t0, raw, "augmentation applied in training");
    assert_eq!(
        inputs_by_example(&mut train, 0),
        t0,
        "same seed and epoch, same result"
    );
    assert_ne!(
        inputs_by_example(&mut train, 1),
        t0,
        "a new epoch, new augmentation"
    );
    let mut other_batching = DataLoader::new(pattern_images(), 5)
        .augment(augment.clone())
        .shuffle(true)
        .seed(9)
        .training(true);
    assert_eq!(
        inputs_by_example(&mut other_batching, 0),
        t0,
        "independent of batch size and order"
    );
    let mut other_seed = DataLoader::new(pattern_images(), 4)
        .augment(augment)
        .shuffle(true)
        .seed(10)
        .training(true);
    assert_ne!(inputs_by_example(&mut other_seed, 0), t0);

    // Preprocessing applies in both modes.
    let mut pre =
        DataLoader::new(pattern_images(), 4).preprocess(Augment::new().rescale(1.0 / 255.0, 0.0));
    let scaled = inputs_by_example(&mut pre, 0);
    for ((_, a), (_, b)) in scaled.iter().zip(&raw) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y / 255.0).abs() < 1e-6));
    }
}

#[test]
fn image_folder_loader_yields_model_ready_batches() {
    let root = temp_dir("loader-images");
    for i in 0..5u32 {
        for (class, base) in [("cats", 10u32), ("dogs", 200)] {
            write_fn(
                &root.join(format!("{class}/{i}.png")),
                20 + i,
                15,
                |x, y| [(base + x) as u8, (base + y) as u8, base as u8],
            );
        }
    }
    let folder = ImageFolder::builder(&root, 12, 10)
        .cache(true)
        .build()
        .unwrap();
    let mut loader = DataLoader::new(folder, 4)
        .shuffle(true)
        .seed(1)
        .device(Device::Cpu);
    let batches: Vec<Batch> = loader.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].inputs.dims(), [4, 3, 12, 10]);
    assert_eq!(batches[0].inputs.dtype(), DType::F32);
    assert_eq!(batches[2].inputs.dims(), [2, 3, 12, 10]);
    for b in &batches {
        let t = b.targets.to_vec1::<u32>().unwrap();
        // Blue channel is the class's constant: 10 for cats (0), 200 for dogs (1).
        let blue: Vec<f32> = b
            .inputs
            .narrow(1, 2, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (k, &label) in t.iter().enumerate() {
            let want = if label == 0 { 10.0 } else { 200.0 };
            assert!(blue[k * 120..(k + 1) * 120].iter().all(|&v| v == want));
        }
    }
}

#[test]
fn prefetching_gives_the_same_batches_and_stops_cleanly() {
    let augment = Augment::new().flip_horizontal().rotation(0.1);
    let make = |prefetch| {
        DataLoader::new(pattern_images(), 5)
            .shuffle(true)
            .seed(2)
            .augment(augment.clone())
            .training(true)
            .prefetch(prefetch)
    };
    let (mut sync, mut ahead) = (make(0), make(2));
    for epoch in 0..2 {
        let a: Vec<Batch> = sync.epoch(epoch).map(|b| b.unwrap()).collect();
        let b: Vec<Batch> = ahead.epoch(epoch).map(|b| b.unwrap()).collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x.targets.to_vec1::<u32>().unwrap(),
                y.targets.to_vec1::<u32>().unwrap()
            );
            let xv: Vec<f32> = x.inputs.flatten_all().unwrap().to_vec1().unwrap();
            let yv: Vec<f32> = y.inputs.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(xv, yv);
        }
    }
    // Stopping early (e.g. a NaN callback) does not hang or leak a blocked worker forever.
    assert_eq!(ahead.epoch(3).take(1).count(), 1);

    // An error reaches the consumer and ends the epoch.
    let root = temp_dir("prefetch-error");
    write_fn(&root.join("a/0.png"), 4, 4, |_, _| [0, 0, 0]);
    std::fs::write(root.join("a/1.png"), b"garbage").unwrap();
    write_fn(&root.join("a/2.png"), 4, 4, |_, _| [0, 0, 0]);
    let mut loader = DataLoader::new(ImageFolder::open(&root, 4, 4).unwrap(), 1).prefetch(4);
    let results: Vec<_> = loader.epoch(0).collect();
    assert_eq!(results.len(), 2);
    assert!(results[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("1.png"));
}
