//! Naming a description's layers PyTorch's way: `_:` (a layer that opens no scope),
//! `sequential { ... }` (children numbered by position), labelled projections and
//! single-layer branches, and the error for two layers with one path.

mod common;
use common::one_error;
use proc_macro2::TokenStream;
use quote::quote;

/// The variable builder prefixes (`vb.pp("...")`) of the expansion: the layers' paths.
fn paths(description: TokenStream) -> Vec<String> {
    let out = convnet_dsl::expand(description).to_string();
    assert!(!out.contains("compile_error"), "{out}");
    out.split("pp (\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[track_caller]
fn has(paths: &[String], expected: &[&str]) {
    for e in expected {
        assert!(paths.iter().any(|p| p == e), "no `{e}` in {paths:?}");
    }
}

#[test]
fn an_unnamed_residual_names_its_layers_and_labelled_projection_in_the_enclosing_scope() {
    let p = paths(quote! {
        block basic(c, stride = 1) {
            _: residual(project = downsample: sequential { conv2d(c, 1, stride = stride, bias = false), batch_norm }) {
                conv1: conv2d(c, 3, stride = stride, padding = 1, bias = false), bn1: batch_norm, relu,
                conv2: conv2d(c, 3, padding = 1, bias = false), bn2: batch_norm,
            }
            relu,
        }
        pub Net(8, 16, 16) {
            layer1: sequential { basic(16, stride = 2), basic(16) },
        }
    });
    has(
        &p,
        &[
            "layer1.0.conv1",
            "layer1.0.bn2",
            "layer1.0.downsample.0",
            "layer1.0.downsample.1",
            "layer1.1.conv2",
        ],
    );
    assert!(
        !p.iter()
            .any(|p| p.contains("block") || p.contains("project")),
        "{p:?}"
    );
}

#[test]
fn sequential_numbers_by_position_and_unnamed_blocks_join_its_numbering() {
    // VGG's `features`: every layer counts, relus and pools too.
    let p = paths(quote! {
        block stage(c, convs) {
            for i in 1..=convs { conv2d(c, 3, padding = 1), relu }
            max_pool2d(2),
        }
        pub Vgg(3, 16, 16) {
            features: sequential { for (c, n) in [(4, 1), (8, 2)] { _: stage(c, n) } },
            flatten,
            classifier: sequential { linear(8), relu, dropout(0.5), linear(2) },
        }
    });
    has(
        &p,
        &[
            "features.0",
            "features.3",
            "features.5",
            "classifier.0",
            "classifier.3",
        ],
    );
    // A labelled layer keeps its label and takes a position.
    let p = paths(quote! {
        pub N(3, 8, 8) { s: sequential { conv2d(4, 1), relu, head: conv2d(4, 1), conv2d(4, 1) } }
    });
    has(&p, &["s.0", "s.head", "s.3"]);
}

#[test]
fn an_unnamed_merge_and_branch_name_squeeze_excitation_as_torchvision() {
    let p = paths(quote! {
        block se(squeeze, channels = in_channels) {
            _: multiply {
                identity,
                _: { global_avg_pool2d(keepdims = true), fc1: conv2d(squeeze, 1), relu, fc2: conv2d(channels, 1), sigmoid },
            }
        }
        pub N(16, 8, 8) {
            block: sequential { conv2d(16, 1), se(4), conv2d(16, 1) },
        }
    });
    has(&p, &["block.0", "block.1.fc1", "block.1.fc2", "block.2"]);
}

#[test]
fn a_single_layer_branch_is_the_branch() {
    let p = paths(quote! {
        block basic_conv(c, k) { conv: conv2d(c, k, padding = k / 2, bias = false), bn: batch_norm, relu }
        pub N(8, 8, 8) {
            inception: concat {
                branch1: basic_conv(4, 1),
                branch2: sequential { basic_conv(4, 1), basic_conv(4, 3) },
                conv2d(4, 1),
                branch4: sequential { max_pool2d(3, stride = 1, padding = 1), basic_conv(4, 1) },
            },
        }
    });
    has(
        &p,
        &[
            "inception.branch1.conv",
            "inception.branch2.1.bn",
            "inception.branch3",
            "inception.branch4.1.conv",
        ],
    );
}

#[test]
fn unnamed_layers_share_the_enclosing_counters() {
    // The residual's `conv2d`s are `conv1`, `conv2` of the block, the one after it `conv3`.
    let p = paths(quote! {
        pub N(4, 8, 8) { b: { _: residual { conv2d(4, 1), conv2d(4, 1) }, conv2d(4, 1) } }
    });
    has(&p, &["b.conv1", "b.conv2", "b.conv3"]);
}

#[test]
fn two_layers_with_one_path_are_an_error() {
    one_error(
        quote! { pub N(4, 8, 8) { conv: conv2d(4, 1), _: residual { conv: conv2d(4, 1) } } },
        &[
            "has the path `conv` of an earlier `conv2d`",
            "label one of them differently",
        ],
    );
    one_error(
        quote! { pub N(4, 8, 8) { s: sequential { conv2d(4, 1), 0: conv2d(4, 1) } } },
        &["the path `s.0`"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { residual(project = conv2d(4, 1)) { project: conv2d(4, 1) } } },
        &["the path `block1.project`"],
    );
}

#[test]
fn unnamed_needs_a_layer_holding_others() {
    one_error(
        quote! { pub N(4, 8, 8) { s: sequential { _: conv2d(4, 1) } } },
        &[
            "`_:` is for a layer that holds others",
            "`conv2d` holds none",
        ],
    );
    one_error(
        quote! { pub N(4, 8, 8) { sequential } },
        &["`sequential` needs a body"],
    );
}
