//! The shape rules of the PyTorch conventions and channel layers, on `proc_macro2` tokens:
//! pooling's `ceil_mode` output sizes (PyTorch's formula and its last-window rule),
//! `channel_slice`, `channel_shuffle` and `channel_linear`, and `multiply`'s 1-channel gate.

mod common;
use common::errors;
use quote::quote;

/// PyTorch's pooling output size (ATen's `pooling_output_shape`, symmetric padding `p`).
fn torch_out(size: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let mut out = (size + 2 * p - k + if ceil { s - 1 } else { 0 }) / s + 1;
    if ceil && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

#[test]
fn ceil_mode_output_sizes_follow_pytorch() {
    let mut checked = 0;
    for size in 1..=20usize {
        for k in 1..=4usize {
            for s in 1..=3usize {
                for p in 0..=k / 2 {
                    if size + 2 * p < k {
                        continue;
                    }
                    for ceil in [false, true] {
                        let want = torch_out(size, k, s, p, ceil);
                        let (size_l, want_l) = (size as i64, want as i64);
                        let (k_l, s_l, p_l) = (k as i64, s as i64, p as i64);
                        // The declared output is checked by the macro: no error means equal.
                        let errs = errors(quote! {
                            pub N(2, #size_l, #size_l) -> (2, #want_l, #want_l) {
                                max_pool2d(#k_l, stride = #s_l, padding = #p_l, ceil_mode = #ceil),
                            }
                            pub A(2, #size_l, #size_l) -> (2, #want_l, #want_l) {
                                avg_pool2d(#k_l, stride = #s_l, padding = #p_l, ceil_mode = #ceil, count_include_pad = true),
                            }
                        });
                        assert!(
                            errs.is_empty(),
                            "{size} k{k} s{s} p{p} ceil {ceil}: {errs:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn ceil_mode_adds_the_overhang_to_the_runtime_window_only() {
    // 7 -> 4 with a 2x2 stride-2 pool: one extra row and column at the bottom/right, and
    // the counted padding stays the declared one (none).
    let out = convnet_dsl::expand(quote! {
        pub N(1, 7, 7) -> (1, 4, 4) { avg_pool2d(2, ceil_mode = true, count_include_pad = true) }
    })
    .to_string()
    .replace(' ', "");
    assert!(
        out.contains("Pad2d{top:0usize,bottom:1usize,left:0usize,right:1usize}"),
        "{out}"
    );
    assert!(out.contains("counted:"), "{out}");
    assert!(out.contains("counted:::convnet::__private::runtime::layers::Pad2d{top:0usize,bottom:0usize,left:0usize,right:0usize}"), "{out}");
}

#[test]
fn channel_layers_shapes() {
    let errs = errors(quote! {
        pub N(12, 5, 5) -> (8, 5, 5) {
            channel_slice(2), assert_shape(10, 5, 5),
            channel_slice(1, 9), assert_shape(8, 5, 5),
            channel_shuffle(4),
            channel_linear(6), assert_shape(6, 5, 5),
            channel_linear(8, bias = false),
        }
        pub Flat(10) -> (4) { channel_slice(3, 7) }
    });
    assert!(errs.is_empty(), "{errs:?}");
    let errs = errors(quote! { pub N(8, 4, 4) { channel_slice(8) } });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("takes channels 8..8") && errs[0].contains("`start` below 8"),
        "{errs:?}"
    );
    let errs = errors(quote! { pub N(8, 4, 4) { channel_slice(5, 3) } });
    assert!(errs[0].contains("use an `end` above 5"), "{errs:?}");
}

#[test]
fn multiply_broadcasts_one_channel_but_not_other_counts() {
    let ok = errors(quote! {
        pub N(8, 6, 6) -> (8, 6, 6) { multiply { identity, { conv2d(1, 1), sigmoid } } }
    });
    assert!(ok.is_empty(), "{ok:?}");
    let errs = errors(quote! {
        pub N(8, 6, 6) { multiply { identity, { conv2d(2, 1), sigmoid } } }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("needs 8 channels (or 1, a spatial gate)"),
        "{errs:?}"
    );
}
