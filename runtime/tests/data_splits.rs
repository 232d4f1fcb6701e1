//! Labels across splits: split folders opened together must share the training split's
//! class folders (same names, same order, none empty); hidden folders and files are ignored;
//! the class count must fit the loss; per-class counts.

mod common;

use std::path::Path;

use common::{temp_dir, write_solid};
use convnet_runtime::data::{ImageFolder, LabelMode, Subset};
use convnet_runtime::error::Error;
use convnet_runtime::loss::Loss;

/// Writes `root/<split>/<class>/<i>.png` for each `(class, count)`.
fn write_split(root: &Path, split: &str, classes: &[(&str, usize)]) {
    for (class, count) in classes {
        for i in 0..*count {
            write_solid(
                &root.join(split).join(class).join(format!("{i}.png")),
                4,
                4,
                [i as u8, 10, 20],
            );
        }
    }
}

/// The path and reason of a runtime `Error::Data` inside a candle error.
fn data_error(err: &candle_core::Error) -> (std::path::PathBuf, String) {
    match Error::find(err) {
        Some(Error::Data { path, reason }) => (path.clone(), reason.clone()),
        other => panic!("expected Error::Data, got {other:?} from {err}"),
    }
}

#[test]
fn splits_with_other_class_folders_are_an_error_naming_both_lists_and_folders() {
    let root = temp_dir("splits-mismatch");
    write_split(&root, "train", &[("cats", 2), ("dogs", 2)]);
    // Today each split would label its own sorted folders: `dog` 0, `kitten` 1 (swapped).
    write_split(&root, "validation", &[("dog", 1), ("kitten", 1)]);
    let err = ImageFolder::splits(&root, ["train", "validation"], 4, 4).unwrap_err();
    let (path, reason) = data_error(&err);
    assert_eq!(path, root.join("validation"));
    let message = err.to_string();
    for needle in [
        r#"["dog", "kitten"]"#,
        r#"["cats", "dogs"]"#,
        &root.join("train").display().to_string(),
        &root.join("validation").display().to_string(),
    ] {
        assert!(message.contains(needle), "missing {needle}: {message}");
    }
    assert!(reason.contains("different classes"), "{reason}");

    // The same check for a split built on its own against the training split.
    let train = ImageFolder::open(root.join("train"), 4, 4).unwrap();
    let err = ImageFolder::builder(root.join("validation"), 4, 4)
        .classes_of(&train)
        .build()
        .unwrap_err();
    assert_eq!(data_error(&err).0, root.join("validation"));
    let validation = ImageFolder::open(root.join("validation"), 4, 4).unwrap();
    let err = train.check_same_classes(&validation).unwrap_err();
    assert!(err.to_string().contains(r#"["dog", "kitten"]"#), "{err}");
}

#[test]
fn test_split_missing_a_class_is_an_error() {
    // A test split with only `dogs/` would label dogs 0 ("cats"): an untrained model then
    // scores accuracy 1.0.
    let root = temp_dir("splits-missing-class");
    write_split(&root, "train", &[("cats", 2), ("dogs", 2)]);
    write_split(&root, "validation", &[("cats", 1), ("dogs", 1)]);
    write_split(&root, "test", &[("dogs", 3)]);
    let err = ImageFolder::splits(&root, ["train", "validation", "test"], 4, 4).unwrap_err();
    let (path, _) = data_error(&err);
    assert_eq!(path, root.join("test"));
    assert!(err.to_string().contains(r#"["dogs"]"#), "{err}");
}

#[test]
fn class_order_follows_the_training_split_and_explicit_names_carry_over() {
    let root = temp_dir("splits-order");
    write_split(&root, "train", &[("a", 1), ("b", 2), ("c", 1)]);
    write_split(&root, "test", &[("a", 1), ("b", 1), ("c", 1)]);
    let [train, test] = ImageFolder::builder(&root, 4, 4)
        .class_names(["c", "a", "b"])
        .build_splits(["train", "test"])
        .unwrap();
    assert_eq!(train.class_names(), ["c", "a", "b"]);
    assert_eq!(test.class_names(), ["c", "a", "b"]);
    assert_eq!(test.labels(), [0, 1, 2]);
    // A reversed order for the test split alone is caught.
    let err = ImageFolder::builder(root.join("test"), 4, 4)
        .class_names(["b", "a", "c"])
        .classes_of(&train)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the same classes in another order"),
        "{err}"
    );
}

#[test]
fn hidden_folders_and_files_are_ignored() {
    let root = temp_dir("hidden");
    write_split(&root, "train", &[("cats", 2), ("dogs", 3)]);
    let train = root.join("train");
    // Jupyter's checkpoint folder would otherwise become class 0 (labels 1 and 2 then go
    // into binary cross-entropy and the loss comes out negative).
    write_solid(&train.join(".ipynb_checkpoints/0.png"), 4, 4, [0, 0, 0]);
    // macOS AppleDouble files are not images; a hidden sub-folder inside a class too.
    std::fs::write(train.join("cats/._0.png"), b"\x00\x05\x16\x07 not an image").unwrap();
    write_solid(&train.join("dogs/.thumbs/0.png"), 4, 4, [0, 0, 0]);

    let folder = ImageFolder::open(&train, 4, 4).unwrap();
    assert_eq!(folder.class_names(), ["cats", "dogs"]);
    assert_eq!(folder.len(), 5);
    assert_eq!(folder.class_counts(), [2, 3]);
    assert!(folder
        .paths()
        .iter()
        .all(|p| !p.to_string_lossy().contains("/.")));
}

#[test]
fn empty_class_folder_is_an_error_naming_it() {
    let root = temp_dir("empty-class");
    write_split(&root, "train", &[("cats", 2)]);
    std::fs::create_dir_all(root.join("train/dogs")).unwrap();
    std::fs::write(root.join("train/dogs/notes.txt"), "no images").unwrap();
    let err = ImageFolder::open(root.join("train"), 4, 4).unwrap_err();
    let (path, reason) = data_error(&err);
    assert_eq!(path, root.join("train/dogs"));
    assert!(reason.contains("no images"), "{reason}");
    // Also through build_splits, for a later split.
    write_split(&root, "ok", &[("cats", 1), ("dogs", 1)]);
    std::fs::create_dir_all(root.join("test/cats")).unwrap();
    write_split(&root, "test", &[("dogs", 1)]);
    let err = ImageFolder::splits(&root, ["ok", "test"], 4, 4).unwrap_err();
    assert_eq!(data_error(&err).0, root.join("test/cats"));
}

#[test]
fn class_counts_are_reported_per_split() {
    let root = temp_dir("counts");
    write_split(&root, "train", &[("cats", 3), ("dogs", 5)]);
    write_split(&root, "validation", &[("cats", 2), ("dogs", 1)]);
    let [train, validation] = ImageFolder::splits(&root, ["train", "validation"], 4, 4).unwrap();
    assert_eq!(train.class_counts(), [3, 5]);
    assert_eq!(validation.class_counts(), [2, 1]);
    // After a seeded validation split, counts cover only that subset.
    let subset = ImageFolder::builder(root.join("train"), 4, 4)
        .validation_split(0.25, Subset::Validation)
        .seed(3)
        .build()
        .unwrap();
    assert_eq!(subset.class_counts().iter().sum::<usize>(), 2);
    // build_splits takes split folders, so it rejects a validation_split.
    let err = ImageFolder::builder(&root, 4, 4)
        .validation_split(0.2, Subset::Training)
        .build_splits(["train"])
        .unwrap_err();
    assert!(matches!(
        Error::find(&err),
        Some(Error::InvalidArgument { .. })
    ));
}

#[test]
fn class_count_must_fit_the_loss_and_the_model_output() {
    let root = temp_dir("fit-loss");
    write_split(&root, "two", &[("cats", 1), ("dogs", 1)]);
    write_split(&root, "three", &[("a", 1), ("b", 1), ("c", 1)]);
    let two = ImageFolder::open(root.join("two"), 4, 4).unwrap();
    let three = ImageFolder::open(root.join("three"), 4, 4).unwrap();

    two.check_classes_fit(&Loss::BinaryCrossEntropy, &[1])
        .unwrap();
    let err = three
        .check_classes_fit(&Loss::BinaryCrossEntropy, &[1])
        .unwrap_err();
    let (path, reason) = data_error(&err);
    assert_eq!(path, root.join("three"));
    assert!(
        reason.contains("exactly 2 classes, found 3") && reason.contains(r#"["a", "b", "c"]"#),
        "{reason}"
    );
    let err = two
        .check_classes_fit(&Loss::BinaryCrossEntropy, &[2])
        .unwrap_err();
    assert!(err.to_string().contains("1 output"), "{err}");

    three
        .check_classes_fit(&Loss::SparseCategoricalCrossEntropy, &[3])
        .unwrap();
    let err = three
        .check_classes_fit(&Loss::SparseCategoricalCrossEntropy, &[2])
        .unwrap_err();
    assert!(
        err.to_string().contains("one model output per class (3)"),
        "{err}"
    );
    let one_hot = ImageFolder::builder(root.join("three"), 4, 4)
        .label_mode(LabelMode::Categorical)
        .build()
        .unwrap();
    assert!(one_hot
        .check_classes_fit(&Loss::SparseCategoricalCrossEntropy, &[3])
        .is_err());
    // One-hot labels go with the one-hot loss, class indices do not.
    one_hot
        .check_classes_fit(&Loss::CategoricalCrossEntropy, &[3])
        .unwrap();
    let err = three
        .check_classes_fit(&Loss::CategoricalCrossEntropy, &[3])
        .unwrap_err();
    assert!(err.to_string().contains("not Int"), "{err}");
    one_hot
        .check_classes_fit(&Loss::MeanSquaredError, &[3])
        .unwrap();
}
