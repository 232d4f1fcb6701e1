//! The shape and argument rules of the modern layers (upsampling, transposed convolution,
//! cropping, reshape, normalisation, drop path, keep-dims pooling): each mistake expands to
//! one `compile_error!` naming the layer and what was expected.

mod common;
use common::{errors, one_error};
use quote::quote;

#[test]
fn valid_uses_expand_without_errors() {
    let errs = errors(quote! {
        pub Ok(4, 8, 8) -> (6, 1, 1) {
            upsample2d((2, 3), mode = nearest), crop2d((1, 2, 3, 4)), center_crop(5, 5),
            conv_transpose2d(6, 3, stride = 2, padding = 1, output_padding = 1),
            group_norm(3), layer_norm2d, layer_scale, drop_path(0.2, seed = 1),
            relu6, hard_sigmoid, hard_swish, global_max_pool2d(keepdims = true),
        }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn upsampling_beyond_the_size_limit_is_an_error() {
    one_error(
        quote! { pub N(1, 1024, 1024) { upsample2d(4096) } },
        &[
            "`upsample2d` (`upsample1`)",
            "4194304x4194304",
            "upsample less",
        ],
    );
}

#[test]
fn upsample_mode_is_nearest_or_bilinear() {
    one_error(
        quote! { pub N(1, 4, 4) { upsample2d(mode = valid) } },
        &["`nearest` or `bilinear`", "`valid`"],
    );
}

#[test]
fn conv_transpose_padding_cannot_remove_the_whole_output() {
    one_error(
        quote! { pub N(2, 1, 1) { conv_transpose2d(2, 2, padding = 1) } },
        &[
            "`conv_transpose2d`",
            "removes the whole 2x2 output",
            "padding below 1",
        ],
    );
}

#[test]
fn crop_must_leave_something() {
    one_error(
        quote! { pub N(2, 4, 6) { crop2d((2, 2, 0, 0)) } },
        &[
            "`crop2d` (`crop1`)",
            "removes 4 rows and 0 columns of a 4x6 input",
        ],
    );
    one_error(
        quote! { pub N(2, 4, 6) { crop2d(same) } },
        &["`cropping` of `crop2d`", "`same`"],
    );
}

#[test]
fn center_crop_is_no_larger_than_its_input() {
    one_error(
        quote! { pub N(2, 4, 6) { center_crop(4, 7) } },
        &["cannot crop 4x7 out of a 4x6 input", "at most 4x6"],
    );
}

#[test]
fn reshape_keeps_the_element_count_and_takes_a_shape() {
    one_error(
        quote! { pub N(2, 4, 6) { reshape((2, 4, 5)) } },
        &["cannot reshape (2, 4, 6) (48 elements) to (2, 4, 5) (40 elements)"],
    );
    one_error(
        quote! { pub N(2, 4, 6) { reshape((6, 8)) } },
        &["(C, H, W) or (features)", "`(6, 8)`"],
    );
}

#[test]
fn arguments_are_checked() {
    one_error(
        quote! { pub N(2, 4, 4) { drop_path(1.0) } },
        &["`rate` of `drop_path`", "[0, 1)"],
    );
    one_error(
        quote! { pub N(2, 4, 4) { group_norm(0) } },
        &["`groups` of `group_norm`"],
    );
    one_error(
        quote! { pub N(2, 4, 4) { layer_norm2d(eps = 0.0) } },
        &["`eps` of `layer_norm2d`"],
    );
    one_error(
        quote! { pub N(2, 4, 4) { global_avg_pool2d(keepdims = 1) } },
        &["`keepdims` of `global_avg_pool2d`"],
    );
    one_error(
        quote! { pub N(2, 4, 4) { group_norm(2, 3) } },
        &["too many arguments", "group_norm(groups, eps = 1e-5)"],
    );
}

#[test]
fn keepdims_pooling_keeps_a_feature_map_for_2d_layers() {
    // Without keepdims the pooled vector cannot feed a 2-d layer; with it, it can.
    one_error(
        quote! { pub N(2, 4, 4) { global_avg_pool2d, conv2d(3, 1) } },
        &["needs a (channels, height, width) input"],
    );
    assert!(errors(
        quote! { pub N(2, 4, 4) -> (3, 1, 1) { global_avg_pool2d(keepdims = true), conv2d(3, 1) } }
    )
    .is_empty());
}
