//! The language of bodies and blocks: imported blocks (the fetch-and-splice round trip run
//! here by hand), blocks and layers as block arguments with defaults, `let`, functions,
//! conditional values, and a wrong-typed value reported where it was computed.

mod common;
use common::{errors, one_error};
use proc_macro2::TokenStream;
use quote::quote;

/// `const TOTAL_PARAMS : usize = N` of the expansion.
fn total_params(out: &str, model: &str) -> usize {
    let at = out
        .find(&format!("impl {model}"))
        .unwrap_or_else(|| panic!("no impl {model} in {out}"));
    let rest = &out[at..];
    let k = rest.find("TOTAL_PARAMS : usize =").unwrap() + "TOTAL_PARAMS : usize =".len();
    let digits: String = rest[k..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '_')
        .filter(|c| *c != '_')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("TOTAL_PARAMS of {model}: {}", &rest[k..k + 80]))
}

/// Plays the part of the block's hidden macro: finds the `macro_rules!` the defining
/// invocation generated for `block`, and splices its payload as that macro would.
fn hidden_macro_payload(defining: &str, block: &str) -> TokenStream {
    let marker = format!("@ import $ local [$ ($ path) *] {block} {{");
    let at = defining
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden macro for `{block}` in {defining}"));
    let body_start = at + marker.len();
    // The payload runs to the brace that closes it.
    let mut depth = 1;
    let mut end = body_start;
    for (i, c) in defining[body_start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            end = body_start + i;
            break;
        }
    }
    defining[body_start..end].parse().unwrap()
}

#[test]
fn a_block_definition_exports_a_hidden_macro_with_its_visibility() {
    let out = convnet_dsl::expand(quote! {
        pub block se(ch, gate = sigmoid) {
            multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(ch / 4, 1), relu, conv2d(ch, 1), gate } }
        }
        block helper(c) { conv2d(c, 1), se(c) }
        pub(crate) block uses_helper(c) { helper(c) }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    // `pub`: exported from the crate, imported under the block's name.
    assert!(
        out.contains("# [macro_export] macro_rules ! __convnet_block_se_"),
        "{out}"
    );
    assert!(out.contains("pub use __convnet_block_se_"), "{out}");
    // Private: a crate-local macro imported privately; `pub(crate)` keeps its visibility.
    assert!(out.contains("use __convnet_block_helper_"), "{out}");
    assert!(!out.contains("pub use __convnet_block_helper_"), "{out}");
    assert!(
        out.contains("pub (crate) use __convnet_block_uses_helper_"),
        "{out}"
    );
    // A block carries the blocks it uses, transitively.
    let payload = hidden_macro_payload(&out, "uses_helper").to_string();
    assert!(payload.contains("block helper"), "{payload}");
    assert!(payload.contains("block se"), "{payload}");
    let payload = hidden_macro_payload(&out, "se").to_string();
    assert!(!payload.contains("block helper"), "{payload}");
}

#[test]
fn a_use_fetches_the_block_and_the_spliced_invocation_expands() {
    let user = quote! {
        use crate::blocks::{se as excite, helper};
        pub Net(16, 8, 8) -> (16, 8, 8) { excite(16), helper(16) }
    };
    // First round: a call of the first import's macro, passing the whole invocation on.
    let first = convnet_dsl::expand(user.clone()).to_string();
    assert!(
        first.starts_with(
            "crate :: blocks :: se ! { @ convnet_import excite [crate :: blocks :: se]"
        ),
        "{first}"
    );
    let defining = convnet_dsl::expand(quote! {
        pub block se(ch, gate = sigmoid) {
            multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(ch / 4, 1), relu, conv2d(ch, 1), gate } }
        }
        pub block helper(c) { conv2d(c, 1), se(c) }
    })
    .to_string();
    let se = hidden_macro_payload(&defining, "se");
    let helper = hidden_macro_payload(&defining, "helper");
    // Second round, as `se!` would call it: the block spliced in; now `helper` is fetched.
    let second = quote! { @import excite [crate::blocks::se] se { #se } #user };
    let out = convnet_dsl::expand(second.clone()).to_string();
    assert!(out.starts_with("crate :: blocks :: helper ! {"), "{out}");
    // Last round: everything there, the model expands.
    let third = quote! { @import helper [crate::blocks::helper] helper { #helper } #second };
    let out = convnet_dsl::expand(third).to_string();
    assert!(!out.contains("compile_error"), "{out}");
    let se_params = (16 * 4 + 4) + (4 * 16 + 16);
    assert_eq!(
        total_params(&out, "Net"),
        se_params + (16 * 16 + 16) + se_params
    );
    // The import's name (`excite`) names the layer, as a local block's would.
    assert!(out.contains("excite1_multiply1_branch2_conv1"), "{out}");
}

#[test]
fn an_error_inside_an_imported_block_is_at_the_callers_token_and_says_where() {
    let defining = convnet_dsl::expand(quote! {
        pub block squeeze(ch) { conv2d(ch, 3), conv2d(ch, 5) }
    })
    .to_string();
    let payload = hidden_macro_payload(&defining, "squeeze");
    let errs = errors(quote! {
        @import squeeze [crate::blocks::squeeze] squeeze { #payload }
        use crate::blocks::squeeze;
        pub Net(4, 6, 6) { squeeze(4) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .contains("in block `squeeze` imported from `crate::blocks::squeeze`, layer `conv2`"),
        "{errs:?}"
    );
}

#[test]
fn two_imported_blocks_may_use_helpers_of_the_same_name() {
    let errs = errors(quote! {
        @import a [x::a] a { block helper(c) { conv2d(c, 1) } pub block a(c) { helper(c) } }
        @import b [y::b] b { block helper(c) { conv2d(c, 3, padding = same) } pub block b(c) { helper(c) } }
        use x::a; use y::b;
        pub Net(4, 6, 6) -> (8, 6, 6) { a(4), b(8) }
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn layers_and_blocks_are_block_arguments_with_defaults() {
    let out = convnet_dsl::expand(quote! {
        block cna(c, k = 3, norm = batch_norm, act = relu) {
            conv2d(c, k, padding = same, bias = false), norm, act
        }
        block twice(c) { conv2d(c, 1), conv2d(c, 1) }
        pub Net(3, 8, 8) -> (8, 8, 8) {
            cna(8),
            cna(8, act = hard_swish, norm = batch_norm(eps = 1e-5, momentum = 0.1)),
            cna(8, norm = none, act = { relu6, dropout(0.1) }),
            cna(8, act = twice(8)),
            cna(8, k = 1, norm = group_norm(2), act = sigmoid),
        }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    let conv = |i: usize, o: usize, k: usize| i * o * k * k;
    let expected = (conv(3, 8, 3) + 16)
        + (conv(8, 8, 3) + 16)
        + conv(8, 8, 3)
        + (conv(8, 8, 3) + 16 + 2 * (64 + 8))
        + (conv(8, 8, 1) + 16);
    // batch norm's moving statistics count too (as in Keras): 2 * C more per batch norm.
    let bn_stats = 3 * 16;
    assert_eq!(total_params(&out, "Net"), expected + bn_stats);
    assert!(
        out.contains("1e-5") || out.contains("1e-05") || out.contains("0.00001"),
        "{out}"
    );
}

#[test]
fn a_layer_parameter_used_wrongly_is_one_clear_error() {
    one_error(
        quote! { block b(act = relu) { conv2d(4, 1), act(0.2) } pub N(4, 4, 4) { b } },
        &["`act` is the layer `relu` passed to the block, complete with its arguments"],
    );
    one_error(
        quote! { block b(act) { conv2d(4, 1), act } pub N(4, 4, 4) { b(3) } },
        &["`act` is the value `3` here, not a layer"],
    );
}

#[test]
fn let_functions_and_conditional_values_compute_widths() {
    let out = convnet_dsl::expand(quote! {
        block inverted(out, ratio = 4.0) {
            let hidden = make_divisible(in_channels * ratio, 8),
            let squeeze = max(8, hidden / 4),
            conv2d(hidden, 1),
            conv2d(if squeeze > 8 { squeeze } else { 1 }, 1),
            conv2d(min(out, round(2.6)), 1),
            conv2d(floor(7.9) + ceil(0.1), 1),
        }
        pub Net(10, 4, 4) -> (8, 4, 4) { inverted(64) }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    // hidden = make_divisible(40.0, 8) = 40; squeeze = max(8, 10) = 10; min(64, 3) = 3; 7 + 1 = 8.
    let expected = (10 * 40 + 40) + (40 * 10 + 10) + (10 * 3 + 3) + (3 * 8 + 8);
    assert_eq!(total_params(&out, "Net"), expected);
}

#[test]
fn make_divisible_is_torchvisions() {
    // torchvision's `_make_divisible(v, 8)`: nearest multiple, at least 8, never 10% below v.
    for (v, want) in [
        (16.0 * 0.25, 8),
        (72.0 / 4.0, 24),
        (37.0, 40),
        (35.0, 32),
        (35.9, 40),
        (44.0, 48),
        (120.0 * 0.75, 88),
    ] {
        let errs = errors(quote! {
            pub N(1, 4, 4) { assert_shape(1, 4, 4), conv2d(make_divisible(#v, 8), 1), assert_shape(#want, 4, 4) }
        });
        assert!(
            errs.is_empty(),
            "make_divisible({v}, 8) != {want}: {errs:?}"
        );
    }
}

#[test]
fn a_float_where_an_integer_belongs_is_reported_where_it_was_computed() {
    let errs = errors(quote! {
        block se(squeeze) { conv2d(squeeze, 1) }
        pub N(8, 4, 4) { se(in_channels * 0.25) }
    });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`squeeze` is `2.0`, computed here"),
        "{errs:?}"
    );
    assert!(
        errs[0].contains("`c / 2` rather than `c * 0.5`"),
        "{errs:?}"
    );
    let errs = errors(quote! { pub N(8, 4, 4) { let w = in_channels * 0.5, conv2d(w, 1) } });
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("`w` is `4.0`, computed here"), "{errs:?}");
}

#[test]
fn a_function_call_in_an_argument_is_named_as_one() {
    one_error(
        quote! { pub N(8, 4, 4) { conv2d(round_to(in_channels, 8), 1) } },
        &[
            "unknown function `round_to` in `filters` of `conv2d`",
            "functions: min, max",
        ],
    );
    one_error(
        quote! { pub N(8, 4, 4) { conv2d(maxx(in_channels, 8), 1) } },
        &["unknown function `maxx`", "did you mean `max`?"],
    );
}

#[test]
fn a_let_that_fails_reports_once() {
    one_error(
        quote! { pub N(8, 4, 4) { let w = nope * 2, conv2d(w, 1), conv2d(w, 1) } },
        &["unknown name `nope`"],
    );
}

#[test]
fn defaults_set_layer_arguments_for_the_invocation_and_the_rest_of_a_body() {
    let out = convnet_dsl::expand(quote! {
        defaults { batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased) }
        block cbr(c) { conv2d(c, 3, padding = same), batch_norm, relu }
        pub Net(3, 8, 8) {
            cbr(4),
            defaults { conv2d(bias = false), batch_norm(eps = 0.25) }
            cbr(4),
            batch_norm(eps = 0.5),
        }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    // The invocation's eps everywhere it is not overridden, the body's after its `defaults`,
    // and an argument written on a layer wins.
    assert_eq!(out.matches("eps : 0.00001f64").count(), 1, "{out}");
    assert_eq!(out.matches("eps : 0.25f64").count(), 1, "{out}");
    assert_eq!(out.matches("eps : 0.5f64").count(), 1, "{out}");
    assert_eq!(out.matches("momentum : 0.1f64").count(), 3, "{out}");
    // The second conv has no bias: 3x3x3x4 + 4 and 3x3x4x4; three batch norms of 4 channels.
    assert_eq!(
        total_params(&out, "Net"),
        (3 * 9 * 4 + 4) + 4 * 9 * 4 + 3 * 16
    );
}

#[test]
fn a_wrong_default_is_one_error_at_the_default() {
    one_error(
        quote! { defaults { batch_norm(momentun = 0.1) } pub N(4, 4, 4) { batch_norm } },
        &["`batch_norm` has no argument `momentun`; did you mean `momentum`?"],
    );
    one_error(
        quote! { defaults { conv2d(stride = 0.5) } pub N(4, 4, 4) { conv2d(4, 1), conv2d(4, 1) } },
        &["`stride` of `conv2d`"],
    );
    one_error(
        quote! { block b(c) { conv2d(c, 1) } defaults { b(c = 2) } pub N(4, 4, 4) { b(4) } },
        &["`b` is a block"],
    );
}

#[test]
fn labelled_groups_scope_their_layers_and_numeric_labels_mirror_pytorch_paths() {
    let out = convnet_dsl::expand(quote! {
        pub Net(3, 8, 8) {
            features: {
                0: { 0: conv2d(4, 3, padding = 1), 1: batch_norm, 2: relu },
                1: { block: { 0: conv2d(4, 1) } },
            },
            stem: { conv2d(4, 1) }
        }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("pp (\"features.0.1\")"), "{out}");
    assert!(out.contains("pp (\"features.1.block.0\")"), "{out}");
    assert!(out.contains("features_0_0"), "{out}");
    assert!(out.contains("features_1_block_0"), "{out}");
    assert!(out.contains("stem_conv1"), "{out}");
    // An unlabelled group in a chain stays an error, with the fix.
    one_error(
        quote! { pub N(3, 8, 8) { { conv2d(4, 1) } } },
        &["label the group (`name: { ... }`)"],
    );
    one_error(
        quote! { pub N(3, 8, 8) { 0: conv2d(4, 1), 0: conv2d(4, 1) } },
        &["duplicate layer name `0`"],
    );
}

#[test]
fn a_duplicate_label_is_one_error() {
    one_error(
        quote! { pub N(4, 8, 8) { a: conv2d(16, 1), max_pool2d(2), a: conv2d(8, 1), add { identity, @a } } },
        &["duplicate layer name `a` in this scope; rename one of them"],
    );
    one_error(
        quote! { pub N(4, 8, 8) { for i in 0..3 { a: conv2d(8, 1) } concat { identity, @a } } },
        &[
            "duplicate layer name `a`",
            "inside a `for` loop repeats its label",
        ],
    );
}

#[test]
fn loop_index_and_loop_count_run_over_a_loop_nest() {
    // EfficientNet's stochastic depth: 0.2 * block / blocks over stages of 1, 2 and 3 blocks.
    let out = convnet_dsl::expand(quote! {
        pub Net(4, 4, 4) {
            for (stage, layers) in [(1, 1), (2, 2), (3, 3)] {
                for i in 1..=layers { drop_path(0.2 * loop_index / loop_count) }
            }
            for c in [8, 16] { assert_shape(4, 4, 4), let total = loop_count, conv2d(4 + 0 * c * total, 1) }
        }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    // Six innermost iterations: rates 0, 0.2/6, ..., 0.2*5/6 in order.
    let rates: Vec<f64> = (0..6).map(|k| 0.2 * k as f64 / 6.0).collect();
    let mut at = 0;
    for r in &rates[1..] {
        let text = format!("{r:?}");
        let found = out[at..]
            .find(&text[..6])
            .unwrap_or_else(|| panic!("rate {r} not in order: {out}"));
        at += found + 1;
    }
    // A count that depends on the input's shape is reported when used.
    one_error(
        quote! { pub N(4, 4, 4) { for s in 0..2 { if in_channels > 2 { for i in 0..2 { drop_path(0.1 * loop_index / loop_count) } } } } },
        &["`loop_count` is unknown here"],
    );
}
