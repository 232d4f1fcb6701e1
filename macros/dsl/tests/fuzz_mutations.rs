//! The macro never panics: 10,000 randomly mutated descriptions (tokens deleted, duplicated,
//! swapped, numbers changed, identifiers replaced) each expand to valid Rust items, which are
//! either the generated code or `compile_error!`s.

use proc_macro2::{Group, Literal, TokenStream, TokenTree};
use quote::quote;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn seeds() -> Vec<TokenStream> {
    vec![
        quote! {
            block unit(c, stride = 1) {
                if stride == 1 && c == in_channels { residual { conv2d(c, 3, padding = same) } }
                else if stride > 1 { conv2d(c, 3, stride = stride, padding = same) }
                else { conv2d(c, 1) }
            }
            block se(c) { multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(4, 1), relu, conv2d(c, 1), sigmoid } } }
            pub Graph(3, 16, 16) -> (10) {
                conv2d(16, 3, padding = same),
                mixed: concat {
                    { conv2d(8, 1) },
                    wide: { conv2d(8, 1), conv2d(8, 3, padding = same) },
                    { max_pool2d(3, stride = 1, padding = same), conv2d(8, 1) },
                    identity,
                }
                se(in_channels),
                add { identity, conv2d(in_channels, 3, padding = same) }
                unit(40), unit(40, stride = 2), unit(48),
                skip: max_pool2d(2),
                conv2d(in_channels, 3, padding = same),
                concat { identity, @skip }
                global_avg_pool2d, linear(10),
            }
        },
        quote! {
            /// Mini-Xception.
            pub MiniXception(3, 180, 180) -> (1) {
                rescale(1.0 / 255.0),
                conv2d(32, 5, bias = false),
                for size in [32, 64, 128, 256, 512] {
                    residual(project = conv2d(size, 1, stride = 2, padding = same, bias = false)) {
                        batch_norm, relu,
                        separable_conv2d(size, 3, padding = same, bias = false),
                        batch_norm, relu,
                        separable_conv2d(size, 3, padding = same, bias = false),
                        max_pool2d(3, stride = 2, padding = same),
                    }
                }
                global_avg_pool2d, dropout(0.5), linear(1),
            }
        },
        quote! {
            block basic_down(filters, stride = 2) {
                residual(project = { conv2d(filters, 1, stride = stride, bias = false), batch_norm }) {
                    conv2d(filters, 3, stride = stride, padding = 1, bias = false), batch_norm, relu,
                    conv2d(filters, 3, padding = (1, 1, 1, 1), bias = false), batch_norm,
                }
                relu,
            }
            pub Stem(3, 32, 32) -> (16, 16, 16) { conv2d(16, 3, stride = 2, padding = same), leaky_relu(0.1) }
            pub Net(3, 32, 32) -> (10) {
                Stem,
                for (f, s) in [(32, 2), (64, 2)] { basic_down(f, s) }
                residual(project = auto) { depthwise_conv2d(3, multiplier = 2, padding = same), avg_pool2d(3, 1, padding = 1) }
                assert_shape(128, 4, 4),
                zero_pad2d((1, 0, 1, 0)), global_max_pool2d, flatten, batch_norm, dropout(0.2), linear(10), softmax,
            }
            Outer(3, 32, 32) { model(crate::Net, output = (10)), sigmoid, gelu, silu, tanh }
        },
        quote! {
            pub Modern(3, 16, 16) -> (10) {
                conv2d(8, 3, padding = same), relu6, group_norm(4, eps = 1e-5),
                residual {
                    depthwise_conv2d(7, padding = same), layer_norm2d(eps = 1e-6),
                    conv2d(32, 1), hard_swish, conv2d(8, 1), layer_scale(1e-6), drop_path(0.1, seed = 3),
                }
                conv2d(16, 2, stride = 2),
                conv_transpose2d(8, (2, 3), stride = 2, padding = 1, output_padding = 1, dilation = 1, bias = false),
                upsample2d((2, 1), mode = bilinear), upsample2d, crop2d((1, 1, 2, 2)), center_crop(4, 4),
                global_avg_pool2d(keepdims = true), hard_sigmoid, reshape(8), linear(10),
            }
        },
        // PyTorch's pooling modes, channel slices and shuffles, per-pixel linear layers and a
        // 1-channel spatial gate.
        quote! {
            pub Channels(8, 15, 15) -> (8, 4, 4) {
                max_pool2d(3, stride = 2, ceil_mode = true),
                avg_pool2d(3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = true),
                concat {
                    channel_slice(0, in_channels / 2),
                    { channel_slice(in_channels / 2), channel_linear(4, bias = false), gelu },
                }
                channel_shuffle(2),
                multiply { identity, { conv2d(1, 3, padding = 1), sigmoid } }
            }
        },
        // Loops, ranges and arithmetic near the edges of i64, blocks calling blocks.
        quote! {
            block unit(size, k = 3) { conv2d(size * 2 - size, k, padding = same), relu }
            block pair(size) { unit(size), unit(size, k = 1) }
            pub Loops(4, 16, 16) -> (4, 16, 16) {
                for i in 0..=2 { for (s, k) in [(4, 1), (4, 3)] { unit(s, k) } }
                for j in 9223372036854775806..=9223372036854775807 { relu }
                for j in -3..-1 { pair(4) }
                for j in (1 + 1)..(10 / 5 + 2 % 3) { dropout(0.5 / j) }
            }
        },
    ]
}

const IDENTS: &[&str] = &[
    "channel_slice",
    "channel_shuffle",
    "channel_linear",
    "ceil_mode",
    "count_include_pad",
    "conv2d",
    "relu",
    "residual",
    "project",
    "auto",
    "same",
    "valid",
    "stride",
    "padding",
    "block",
    "for",
    "in",
    "size",
    "linear",
    "flatten",
    "max_pool2d",
    "batch_norm",
    "model",
    "assert_shape",
    "pub",
    "Net",
    "groups",
    "upsample2d",
    "conv_transpose2d",
    "reshape",
    "crop2d",
    "keepdims",
    "bilinear",
    "concat",
    "add",
    "multiply",
    "identity",
    "in_channels",
    "in_height",
    "in_features",
    "if",
    "else",
];

fn random_literal(rng: &mut StdRng) -> TokenTree {
    let lit = match rng.gen_range(0..8) {
        0 => Literal::i64_unsuffixed(0),
        1 => Literal::i64_unsuffixed(-1),
        2 => Literal::u64_unsuffixed(u64::MAX),
        3 => Literal::i64_unsuffixed(1 << 40),
        4 => Literal::i64_unsuffixed(i64::MAX),
        5 => Literal::f64_unsuffixed(f64::MAX),
        6 => Literal::string("x"),
        _ => Literal::i64_unsuffixed(rng.gen_range(1..600)),
    };
    TokenTree::Literal(lit)
}

/// Applies one random mutation somewhere in `tokens` (possibly inside a group).
fn mutate(tokens: Vec<TokenTree>, rng: &mut StdRng) -> Vec<TokenTree> {
    let mut tokens = tokens;
    if tokens.is_empty() {
        return vec![random_literal(rng)];
    }
    let i = rng.gen_range(0..tokens.len());
    let descend = matches!(tokens[i], TokenTree::Group(_)) && rng.gen_bool(0.7);
    if descend {
        let TokenTree::Group(g) = &tokens[i] else {
            unreachable!()
        };
        let inner = mutate(g.stream().into_iter().collect(), rng);
        let mut ng = Group::new(g.delimiter(), inner.into_iter().collect());
        ng.set_span(g.span());
        tokens[i] = TokenTree::Group(ng);
        return tokens;
    }
    match rng.gen_range(0..5) {
        0 => {
            tokens.remove(i);
        }
        1 => {
            let t = tokens[i].clone();
            tokens.insert(i, t);
        }
        2 => {
            let j = rng.gen_range(0..tokens.len());
            tokens.swap(i, j);
        }
        3 => tokens[i] = random_literal(rng),
        _ => {
            let name = IDENTS[rng.gen_range(0..IDENTS.len())];
            tokens[i] = TokenTree::Ident(proc_macro2::Ident::new(
                name,
                proc_macro2::Span::call_site(),
            ));
        }
    }
    tokens
}

#[test]
fn ten_thousand_mutations_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let seeds = seeds();
    let (mut generated, mut rejected) = (0, 0);
    for case in 0..10_000 {
        let seed = &seeds[case % seeds.len()];
        let mut tokens: Vec<TokenTree> = seed.clone().into_iter().collect();
        for _ in 0..rng.gen_range(1..4) {
            tokens = mutate(tokens, &mut rng);
        }
        let input: TokenStream = tokens.into_iter().collect();
        let output = catch_unwind(AssertUnwindSafe(|| convnet_dsl::expand(input.clone())))
            .unwrap_or_else(|_| panic!("expansion panicked on: {input}"));
        let text = output.to_string();
        if text.contains("compile_error") {
            rejected += 1;
        } else {
            generated += 1;
        }
        if let Err(e) = syn::parse2::<syn::File>(output) {
            panic!("expansion of `{input}` is not valid Rust items: {e}");
        }
    }
    // Both outcomes must occur, or the mutations are not exercising the checks.
    assert!(
        generated > 100 && rejected > 1000,
        "generated {generated}, rejected {rejected}"
    );
}

#[test]
fn unmutated_seeds_expand_without_errors() {
    for seed in seeds() {
        let out = convnet_dsl::expand(seed).to_string();
        assert!(!out.contains("compile_error"), "{out}");
    }
}
