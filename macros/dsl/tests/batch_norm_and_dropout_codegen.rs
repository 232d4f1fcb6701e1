//! What `batch_norm(variance = ...)` and `dropout` generate: the moving-variance convention
//! reaches the runtime layer (Keras' biased one by default), a bad word is a clear error, and
//! dropout becomes the runtime's seeded layer.

use quote::quote;

fn expand(tokens: proc_macro2::TokenStream) -> String {
    convnet_dsl::expand(tokens).to_string().replace(' ', "")
}

#[test]
fn batch_norm_variance_defaults_to_biased_and_accepts_unbiased() {
    let out = expand(quote! {
        pub M(3, 8, 8) -> (4, 8, 8) {
            conv2d(4, 3, padding = same), batch_norm, relu,
            conv2d(4, 3, padding = same), batch_norm(variance = unbiased),
            conv2d(4, 3, padding = same), batch_norm(variance = biased),
        }
    });
    assert!(!out.contains("compile_error"), "{out}");
    assert_eq!(out.matches("RunningVariance::Biased").count(), 2, "{out}");
    assert_eq!(out.matches("RunningVariance::Unbiased").count(), 1, "{out}");
}

#[test]
fn batch_norm_variance_other_word_is_an_error_listing_the_choices() {
    let out = convnet_dsl::expand(quote! {
        pub M(3, 8, 8) -> (3, 8, 8) { batch_norm(variance = same) }
    })
    .to_string();
    assert!(
        out.contains("`variance` of `batch_norm` is `biased` or `unbiased`, found `same`"),
        "{out}"
    );
    let out = convnet_dsl::expand(quote! {
        pub M(3, 8, 8) -> (3, 8, 8) { batch_norm(variance = unbiassed) }
    })
    .to_string();
    assert!(out.contains("did you mean `unbiased`?"), "{out}");
}

#[test]
fn dropout_is_the_runtime_seeded_layer() {
    let out = expand(quote! {
        pub M(8) -> (2) { dropout(0.5), linear(2), dropout(0.0) }
    });
    assert!(!out.contains("compile_error"), "{out}");
    assert_eq!(
        out.matches("layers::Dropout::from_global_seed(").count(),
        1,
        "{out}"
    );
    assert!(!out.contains("ops::dropout"), "{out}");
}
