//! Generated code calls the runtime's `layers` tier (and candle), never its `ops` kernels.

use quote::quote;

#[test]
fn generated_code_calls_layers_not_ops() {
    let out = convnet_dsl::expand(quote! {
        pub N(3, 16, 16) -> (10) {
            zero_pad2d(1), conv2d(8, 3, padding = same), batch_norm, relu,
            max_pool2d(2), avg_pool2d(3, stride = 1, padding = 1),
            depthwise_conv2d(3), separable_conv2d(8, 3, padding = same), relu6, hard_swish,
            crop2d(1), upsample2d(2), conv_transpose2d(4, 2, stride = 2), group_norm(2),
            layer_norm2d, layer_scale, drop_path(0.1), dropout(0.5),
            global_avg_pool2d, linear(10), softmax,
        }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("runtime :: layers :: MaxPool2d"), "{out}");
    assert!(out.contains("runtime :: layers :: Pad2d"), "{out}");
    assert!(!out.contains("runtime :: ops"), "{out}");
}
