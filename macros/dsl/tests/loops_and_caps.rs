//! Loops on the edges: overflowing or huge ranges, runaway nesting stopped by the caps (and
//! fast), and errors that name the iteration they happened in.

mod common;
use common::errors;
use proc_macro2::TokenStream;
use quote::quote;
use std::time::{Duration, Instant};

/// The one error of an expansion.
fn one_error(input: TokenStream) -> String {
    let errors = errors(input);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn overflowing_ranges_are_errors() {
    let e = one_error(quote! { pub Net(3, 8, 8) { for i in 0..=9223372036854775807 { relu } } });
    assert!(
        e.contains("`0..=9223372036854775807` has 9223372036854775808 iterations"),
        "{e}"
    );
    let e = one_error(quote! {
        pub Net(3, 8, 8) { for i in -9223372036854775807..9223372036854775807 { relu } }
    });
    assert!(e.contains("18446744073709551614 iterations"), "{e}");
    let e =
        one_error(quote! { pub Net(3, 8, 8) { for i in 0..(9223372036854775807 + 1) { relu } } });
    assert!(e.contains("integer overflow"), "{e}");
}

#[test]
fn runaway_nested_loops_stop_at_the_iteration_cap_at_once() {
    let start = Instant::now();
    let e = one_error(quote! {
        pub Net(3, 8, 8) -> (3, 8, 8) { for i in 0..10000 { for j in 0..10000 { relu } } }
    });
    let elapsed = start.elapsed();
    eprintln!("nested 0..10000 loops rejected in {elapsed:?}");
    assert!(e.contains("past 100,000 loop iterations"), "{e}");
    // Unrolling all 10^8 iterations would take minutes; stopping at the cap takes well
    // under a second in release builds (generous bound for loaded machines).
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // Empty bodies add no layers but still count as iterations.
    let e = one_error(quote! {
        pub Net(3, 8, 8) { for i in 0..10000 { for j in 0..10000 { } } }
    });
    assert!(e.contains("past 100,000 loop iterations"), "{e}");
}

#[test]
fn runaway_layers_stop_at_the_node_cap_without_cascading() {
    let e = one_error(quote! {
        pub Net(3, 8, 8) -> (10) {
            for i in 0..20000 { relu, relu, relu, relu, relu, relu }
            flatten, linear(10),
        }
    });
    assert!(e.contains("more than 100,000 layers"), "{e}");
    // Blocks multiply too, without any loop: 10^6 layers from 6 lines.
    let e = one_error(quote! {
        block b1() { relu, relu, relu, relu, relu, relu, relu, relu, relu, relu }
        block b2() { b1, b1, b1, b1, b1, b1, b1, b1, b1, b1 }
        block b3() { b2, b2, b2, b2, b2, b2, b2, b2, b2, b2 }
        block b4() { b3, b3, b3, b3, b3, b3, b3, b3, b3, b3 }
        block b5() { b4, b4, b4, b4, b4, b4, b4, b4, b4, b4 }
        block b6() { b5, b5, b5, b5, b5, b5, b5, b5, b5, b5 }
        pub Net(3, 8, 8) { b6 }
    });
    assert!(e.contains("more than 100,000 layers"), "{e}");
}

#[test]
fn errors_name_the_failing_iteration() {
    let e = one_error(quote! {
        pub Net(3, 32, 32) {
            for (filters, stride) in [(16, 1), (32, 2), (64, 4)] {
                conv2d(filters, 3, stride = stride), max_pool2d(3),
            }
        }
    });
    assert!(
        e.ends_with("(in iteration `filters = 64, stride = 4` of the `for` loop)"),
        "{e}"
    );
    let e = one_error(quote! {
        pub Net(64) {
            for stage in 1..=2 { for rate in [0.25, 0.5 * stage] { dropout(rate) } linear(64) }
        }
    });
    assert!(
        e.ends_with("(in iteration `stage = 2`, `rate = 1.0` of the nested `for` loops)"),
        "{e}"
    );
    // A mistake every iteration repeats is reported once, with the first iteration.
    let e = one_error(quote! {
        pub Net(3, 16, 16) { for size in [8, 16, 32] { conv2d(sise, 3) } }
    });
    assert!(
        e.ends_with("(in iteration `size = 8` of the `for` loop)"),
        "{e}"
    );
    // Outside loops there is no note.
    let e = one_error(quote! { pub Net(3, 2, 2) { conv2d(8, 3) } });
    assert!(!e.contains("iteration"), "{e}");
}

#[test]
fn shapes_too_large_are_errors_not_overflows() {
    // 2^20 channels x (2^20)^2 pixels would overflow a flatten on 64 bits.
    let e = errors(quote! {
        pub Net(1048576, 1, 1) {
            for i in 0..128 { zero_pad2d(4096) }
            flatten,
        }
    });
    assert!(
        e.iter()
            .any(|e| e.contains("more than 2^40 values per example")),
        "{e:#?}"
    );
}
