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

/// The statements of the generated forward that run a layer as a plain `Module` or a
/// `ModuleT`, and those that run a batch norm inside the layer after it.
fn calls(out: &str) -> (usize, usize, usize) {
    (
        out.matches("Module::forward(&self.").count(),
        out.matches("ModuleT::forward_t(&self.").count(),
        out.matches("NormalizedInput::forward_normalized(&self.")
            .count(),
    )
}

#[test]
fn batch_norm_feeding_a_depthwise_or_separable_convolution_runs_inside_it() {
    let out = expand(quote! {
        pub M(4, 8, 8) -> (8, 8, 8) {
            batch_norm, relu, separable_conv2d(8, 3, padding = same),
            batch_norm, depthwise_conv2d(3, padding = same),
        }
    });
    assert!(!out.contains("compile_error"), "{out}");
    // Both batch norms run inside the convolution after them; their fields remain, the first
    // with its relu fused and the second without.
    assert_eq!(calls(&out), (0, 0, 2), "{out}");
    assert!(
        out.contains("NormalizedInput::forward_normalized(&self.sep1,&self.bn1,&x,train)"),
        "{out}"
    );
    assert_eq!(out.matches("layers::batch_norm2d(").count(), 2, "{out}");
    assert!(
        out.contains("momentum:0.01f64},true,vb.pp(\"bn1\")"),
        "{out}"
    );
    assert!(
        out.contains("momentum:0.01f64},false,vb.pp(\"bn2\")"),
        "{out}"
    );
    // The summary keeps a row per layer, relu included.
    assert_eq!(out.matches("SummaryRow{").count(), 5, "{out}");
}

#[test]
fn batch_norm_stays_apart_when_its_output_is_used_elsewhere_or_feeds_another_layer() {
    for body in [
        // The normalised tensor is a skip's source.
        quote!(n: batch_norm, separable_conv2d(4, 3, padding = same), concat { identity, @n }),
        // So is the relu's output.
        quote!(batch_norm, r: relu, depthwise_conv2d(3, padding = same), concat { identity, @r }),
        // A layer that does not take a normalised input.
        quote!(
            batch_norm,
            relu,
            conv2d(4, 3, padding = same),
            concat { identity, identity }
        ),
        // The batch norm ends a residual body: the add, not the convolution, reads it.
        quote!(
            residual { batch_norm },
            depthwise_conv2d(3, padding = same),
            concat { identity, identity }
        ),
    ] {
        let out = expand(quote! { pub M(4, 8, 8) -> (8, 8, 8) { #body } });
        assert!(!out.contains("compile_error"), "{body}: {out}");
        let (_, module_t, normalized) = calls(&out);
        assert_eq!((module_t, normalized), (1, 0), "{body}: {out}");
    }
}

#[test]
fn max_pool_after_a_separable_convolution_runs_inside_it() {
    let out = expand(quote! {
        pub M(4, 8, 8) -> (8, 2, 2) {
            batch_norm, relu, separable_conv2d(8, 3, padding = same),
            max_pool2d(3, stride = 2, padding = same),
            separable_conv2d(8, 3, padding = same), max_pool2d(2),
        }
    });
    assert!(!out.contains("compile_error"), "{out}");
    let pooled = "PooledOutput::forward_pooled(&self.";
    assert_eq!(out.matches(pooled).count(), 2, "{out}");
    assert!(
        out.contains("forward_pooled(&self.sep1,::core::option::Option::Some(&self.bn1),&::convnet::__private::runtime::layers::MaxPool2d{window:::convnet::__private::runtime::layers::Window2d::new((3usize,3usize),(2usize,2usize),"),
        "{out}"
    );
    assert!(
        out.contains("forward_pooled(&self.sep2,::core::option::Option::None,&"),
        "{out}"
    );
    assert_eq!(calls(&out), (0, 0, 0), "{out}");
    assert_eq!(out.matches("SummaryRow{").count(), 6, "{out}");
}

#[test]
fn pooling_stays_apart_when_the_convolution_output_is_used_or_the_pool_averages() {
    for body in [
        quote!(s: separable_conv2d(4, 3, padding = same), max_pool2d(1), concat { identity, @s }),
        quote!(separable_conv2d(8, 3, padding = same), avg_pool2d(1)),
        quote!(conv2d(8, 1), max_pool2d(1)),
    ] {
        let out = expand(quote! { pub M(4, 8, 8) -> (8, 8, 8) { #body } });
        assert!(!out.contains("compile_error"), "{body}: {out}");
        assert!(!out.contains("forward_pooled"), "{body}: {out}");
        // The convolution and the pool each run on their own.
        assert_eq!(calls(&out).0, 1, "{body}: {out}");
        let pool = "Module::forward(&::convnet::__private::runtime::layers::";
        assert_eq!(out.matches(pool).count(), 1, "{body}: {out}");
    }
}
