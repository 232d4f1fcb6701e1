//! The rules of the graph constructs (`concat`, `add`, `multiply` with `{ ... }` branches and
//! `identity`) and of the shape names (`in_channels`, ...): valid graphs expand without
//! errors, and each mistake expands to one `compile_error!` naming the merge, the branch,
//! both shapes and the fix.

mod common;
use common::{errors, one_error};
use quote::quote;

#[test]
fn inception_densenet_and_gates_expand_without_errors() {
    let errs = errors(quote! {
        block dense(growth) { concat { identity, { batch_norm, relu, conv2d(growth, 3, padding = same) } } }
        pub Graph(3, 16, 16) -> (24, 16, 16) {
            mixed: concat {
                conv2d(4, 1),
                { conv2d(4, 1), conv2d(8, 3, padding = same) },
                pool: { max_pool2d(3, stride = 1, padding = same), conv2d(4, 1) },
            }
            dense(4),
            multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(4, 1), relu, conv2d(20, 1), sigmoid } }
            add { identity, { conv2d(20, 3, padding = same) }, conv2d(20, 1) }
            concat { identity, { max_pool2d(2), conv2d(4, 1), upsample2d(2) } }
        }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn concat_branches_with_different_height_and_width_are_an_error() {
    one_error(
        quote! { pub N(3, 16, 16) { mixed: concat { { conv2d(4, 1) }, { conv2d(4, 3) } } } },
        &[
            "concat `mixed`",
            "branch `branch2` outputs (4, 14, 14)",
            "branch `branch1` outputs (4, 16, 16)",
            "keep 16 x 16",
            "padding = same",
        ],
    );
}

#[test]
fn added_branches_with_different_channels_are_an_error() {
    one_error(
        quote! { pub N(8, 16, 16) { add { identity, { conv2d(4, 1) } } } },
        &[
            "add `add1`",
            "branch `branch2` outputs (4, 16, 16)",
            "branch `branch1` outputs (8, 16, 16)",
            "end `branch2` with `conv2d(8, 1)`",
        ],
    );
}

#[test]
fn a_gate_with_the_wrong_channel_count_is_an_error() {
    one_error(
        quote! { pub N(32, 8, 8) { multiply { identity, gate: { global_avg_pool2d(keepdims = true), conv2d(8, 1), sigmoid } } } },
        &[
            "multiply `multiply1`",
            "branch `gate` outputs (8, 1, 1)",
            "branch `branch1` outputs (32, 8, 8)",
            "needs 32 channels",
            "conv2d(32, 1)",
        ],
    );
}

#[test]
fn a_gate_whose_spatial_size_neither_matches_nor_is_one_is_an_error() {
    one_error(
        quote! { pub N(4, 8, 8) { multiply { identity, { max_pool2d(2) } } } },
        &["(4, 4, 4)", "(4, 8, 8)", "equal or 1", "keepdims = true"],
    );
}

#[test]
fn a_merge_needs_two_branches_and_a_body() {
    one_error(
        quote! { pub N(4, 8, 8) { concat { identity } } },
        &["`concat` needs at least two branches, found 1"],
    );
    one_error(quote! { pub N(4, 8, 8) { add } }, &["`add` needs branches"]);
}

#[test]
fn branches_and_identity_outside_a_merge_are_errors() {
    one_error(
        quote! { pub N(4, 8, 8) { { relu } } },
        &["branch goes inside `concat"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { identity } },
        &["`identity` is a branch"],
    );
}

#[test]
fn a_loop_over_branches_and_duplicate_branch_labels_are_errors() {
    one_error(
        quote! { pub N(4, 8, 8) { concat { identity, for i in 0..2 { relu } } } },
        &["`for` loops cannot make the branches of `concat`"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { concat { a: { relu }, a: { relu } } } },
        &["duplicate layer name `a`"],
    );
}

#[test]
fn an_error_inside_a_branch_names_its_path() {
    one_error(
        quote! { pub N(4, 8, 8) { mixed: concat { identity, wide: { conv2d(4, 9) } } } },
        &["mixed.wide.conv1"],
    );
}

#[test]
fn shape_names_bind_the_current_input() {
    let errs = errors(quote! {
        block inverted(expand = 6) {
            residual {
                conv2d(in_channels * expand, 1), relu6,
                depthwise_conv2d(3, padding = same),
                conv2d(in_channels / expand, 1),
            }
        }
        pub N(8, 6, 6) -> (576) {
            inverted, inverted(4),
            concat { identity, { conv2d(in_channels, 3, padding = same) } }
            assert_shape(16, in_height, in_width),
            flatten, linear(in_features),
        }
    });
    // The declared output (576) is 16 * 6 * 6 only if `in_channels` doubled through the concat.
    assert!(errs.is_empty(), "{errs:?}");
    one_error(
        quote! { pub N(8, 6, 6) { conv2d(in_channels + 1, 1), assert_shape(8, 6, 6) } },
        &["the shape here is (9, 6, 6), not (8, 6, 6)"],
    );
}

#[test]
fn a_misspelt_shape_name_suggests_the_right_one() {
    one_error(
        quote! { pub N(8, 6, 6) { conv2d(in_channel * 2, 1) } },
        &["unknown name `in_channel`", "in_channels"],
    );
}

#[test]
fn a_shape_name_of_the_wrong_kind_of_input_is_an_error() {
    one_error(
        quote! { pub N(8, 6, 6) { flatten, linear(in_height) } },
        &[
            "`in_height` has no value here",
            "the input here is a feature vector",
        ],
    );
    one_error(
        quote! { pub N(8, 6, 6) { linear(in_features) } },
        &[
            "`in_features` has no value here",
            "the input here is an image",
        ],
    );
}

#[test]
fn a_shape_name_after_an_error_is_not_reported_again() {
    one_error(
        quote! { pub N(8, 6, 6) { conv2d(8, 9), conv2d(in_channels * 2, 1), relu } },
        &["kernel"],
    );
}

/// A shape name is a block call's positional argument like any value: MBConv written with
/// `in_channels` instead of a `block_in` parameter, through `if`, `residual`, a merge and
/// loops.
#[test]
fn shape_names_are_positional_block_arguments() {
    let errs = errors(quote! {
        block se(squeeze, channels) {
            multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(squeeze, 1), silu, conv2d(channels, 1), sigmoid } }
        }
        block mbconv_layers(expand, stride, block_in, out) {
            if expand != 1 { conv2d(block_in * expand, 1), silu }
            depthwise_conv2d(3, stride = stride, padding = 1), silu,
            se(in_channels / 4, in_channels),
            conv2d(out, 1),
        }
        block mbconv(expand, stride, out) {
            if stride == 1 && in_channels == out {
                residual { mbconv_layers(expand, stride, in_channels, out) }
            } else {
                mbconv_layers(expand, stride, in_channels, out)
            }
        }
        pub N(16, 8, 8) -> (24, 4, 4) {
            for (expand, stride, out, layers) in [(1, 1, 16, 1), (6, 2, 24, 2)] {
                mbconv(expand, stride, out),
                for i in 2..=layers { mbconv(expand, 1, out) }
            }
            mbconv_layers(6, 1, in_channels, in_channels),
        }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

/// A block parameter's default may name the block's input too.
#[test]
fn shape_names_in_block_parameter_defaults_name_the_block_input() {
    one_error(
        quote! {
            block widen(out = in_channels * 2) { conv2d(out, 1) }
            pub N(8, 6, 6) { widen, widen(4), assert_shape(5, 6, 6) }
        },
        &["the shape here is (4, 6, 6), not (5, 6, 6)"],
    );
    one_error(
        quote! {
            block widen(out = in_channels * 2) { conv2d(out, 1) }
            pub N(8, 6, 6) { widen, widen, assert_shape(5, 6, 6) }
        },
        &["the shape here is (32, 6, 6), not (5, 6, 6)"],
    );
}

/// After an earlier error the input's shape is unknown: a block call whose argument names
/// it reports nothing more (neither the shape name nor the parameter left without a value).
#[test]
fn a_shape_name_in_a_block_call_after_an_error_is_not_reported_again() {
    one_error(
        quote! {
            block widen(block_in, out) { conv2d(block_in * 2, 1), conv2d(out, 1) }
            pub N(8, 6, 6) { conv2d(8, 9), widen(in_channels, 8), relu }
        },
        &["kernel"],
    );
}

#[test]
fn skips_reach_earlier_labels_of_this_body_and_enclosing_ones() {
    let errs = errors(quote! {
        block down(c) { conv2d(c, 3, padding = same), relu }
        pub UNet(3, 16, 16) -> (8, 16, 16) {
            down1: down(8),
            max_pool2d(2),
            down2: down(16),
            max_pool2d(2),
            conv2d(16, 3, padding = same),
            upsample2d(2),
            concat { identity, @down2 }
            residual { conv2d(16, 1), add { identity, @down2 }, conv2d(32, 1) }
            upsample2d(2),
            concat { identity, @down1 }
            conv2d(8, 1),
        }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn a_skip_to_an_unknown_later_or_ended_label_is_an_error() {
    one_error(
        quote! { pub N(4, 8, 8) { down: relu, concat { identity, @dwn } } },
        &["unknown skip `@dwn`", "did you mean `down`", "`@down`"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { concat { identity, @later }, later: relu } },
        &[
            "unknown skip `@later`",
            "`later` labels a later layer",
            "move this merge after `later: ...`",
            "none",
        ],
    );
    // A later label is not "did you mean" an earlier one (another activation, here of
    // another shape).
    let errs = errors(
        quote! { pub N(4, 8, 8) { down1: conv2d(8, 1), concat { identity, @down2 }, down2: conv2d(16, 1) } },
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("`down2` labels a later layer"), "{errs:?}");
    assert!(!errs[0].contains("did you mean"), "{errs:?}");
    one_error(
        quote! { pub N(4, 8, 8) { residual { inner: relu }, concat { identity, @inner } } },
        &["`inner` labels a layer inside a block or branch that has ended"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { a: relu, @a } },
        &["`@a` is a branch", "concat { identity, @a }"],
    );
}

#[test]
fn a_skip_that_does_not_fit_names_both_shapes() {
    one_error(
        quote! { pub N(4, 8, 8) { down1: conv2d(8, 1), max_pool2d(2), concat { identity, @down1 } } },
        &[
            "concat `concat1`",
            "branch `@down1` outputs (8, 8, 8)",
            "branch `branch1` outputs (8, 4, 4)",
        ],
    );
    one_error(
        quote! { pub N(4, 8, 8) { down1: conv2d(8, 1), conv2d(4, 1), add { identity, @down1 } } },
        &[
            "branch `@down1` outputs (8, 8, 8)",
            "make the branches before it output 8 channels",
        ],
    );
}

#[test]
fn if_else_chooses_layers_from_parameters_and_shapes() {
    let errs = errors(quote! {
        block unit(c, stride = 1) {
            if stride == 1 && c == in_channels { residual { conv2d(c, 3, padding = same) } }
            else if stride > 1 { conv2d(c, 3, stride = stride, padding = same) }
            else { conv2d(c, 1) }
        }
        pub N(8, 8, 8) -> (16, 4, 4) {
            unit(8),
            assert_shape(8, 8, 8),
            unit(16),
            assert_shape(16, 8, 8),
            unit(16, stride = 2),
            if in_height < 8 && !(in_width != 4) { relu } else { conv2d(3, 1) }
        }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn an_if_condition_that_is_not_a_boolean_is_an_error() {
    one_error(
        quote! { block b(stride) { if stride { relu } } pub N(8, 8, 8) { b(2) } },
        &[
            "an `if` condition is `true` or `false`, but `stride` is an integer",
            "write `if stride != 0`",
        ],
    );
    // A float condition in a loop: one error (not one per value), and the fix keeps the
    // truth test's meaning (nonzero), not a comparison with one iteration's value.
    one_error(
        quote! { pub N(8, 8, 8) { for rate in [0.0, 0.1, 0.2] { if rate { drop_path(rate) } } } },
        &["but `rate` is a float; to test that it is nonzero, write `if rate != 0.0`"],
    );
    one_error(
        quote! { pub N(8, 8, 8) { if in_channels == same { relu } } },
        &["cannot compare `8` with `same`"],
    );
    one_error(
        quote! { pub N(8, 8, 8) { concat { identity, if true { relu } } } },
        &["`if` cannot choose the branches of `concat`"],
    );
}

#[test]
fn the_branch_not_taken_is_not_checked() {
    let errs =
        errors(quote! { pub N(8, 8, 8) -> (8, 8, 8) { if false { conv2d(4, 99) } else { relu } } });
    assert!(errs.is_empty(), "{errs:?}");
}
