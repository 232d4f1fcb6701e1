//! The `convnet!` procedural macro. All logic lives in `convnet-dsl` so it can be unit-tested
//! on `proc_macro2` tokens; this crate only crosses the proc-macro boundary.

use proc_macro::TokenStream;

/// Declares convolutional networks; see the `convnet` crate docs for the grammar.
#[proc_macro]
pub fn convnet(input: TokenStream) -> TokenStream {
    convnet_dsl::expand(input.into()).into()
}
