//! What the layers' shape rules share: where errors go ([`At`]), the `(C, H, W)` check,
//! sliding windows with their padding, and checked parameter and FLOP counts.

use crate::error::Errors;
use crate::ir::{fmt_shape, Pad4, Padding};
use proc_macro2::Span;
use std::collections::BTreeMap;

/// Where a layer's errors go and how they name it: `conv2d` (`block1.conv2`).
pub struct At<'a> {
    /// The layer as errors name it: `` `conv2d` (`block1.conv2`) ``.
    pub who: String,
    /// The layer's kind token.
    pub span: Span,
    /// Spans of the written arguments by parameter name.
    pub arg_spans: &'a BTreeMap<&'static str, Span>,
}

impl At<'_> {
    /// The span of argument `name` if written, else the layer's.
    pub fn arg(&self, name: &str) -> Span {
        self.arg_spans.get(name).copied().unwrap_or(self.span)
    }
}

/// The product of `factors` as a parameter count, or `None` after reporting that it is too
/// large (over 2^48).
pub fn checked_params(at: &At, factors: &[usize], errors: &Errors) -> Option<usize> {
    let p = factors
        .iter()
        .try_fold(1usize, |acc, f| acc.checked_mul(*f))
        .filter(|p| *p <= 1usize << 48);
    if p.is_none() {
        errors.push(at.span, format!("{} has too many parameters", at.who));
    }
    p
}

/// FLOPs of the multiply-adds over `factors` (a multiply-add counts two), saturating.
pub fn flops(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(2u64, |acc, f| acc.saturating_mul(*f as u64))
}

/// The input as `(C, H, W)`, or `None` after reporting that a 2-d layer got a flat input.
///
/// # Shapes
/// `s` must be `(C, H, W)`.
pub fn chw(at: &At, s: &[usize], errors: &Errors) -> Option<(usize, usize, usize)> {
    match s {
        [c, h, w] => Some((*c, *h, *w)),
        // Rule: 2-d layers need (C, H, W); a flat vector has lost its spatial dims.
        _ => {
            errors.push(
                at.span,
                format!(
                    "{} needs a (channels, height, width) input but receives {}; 2-d layers cannot follow `flatten`, `linear` or global pooling",
                    at.who,
                    fmt_shape(s)
                ),
            );
            None
        }
    }
}

/// Output size and padding of a sliding window along one axis.
fn axis(
    input: usize,
    span: usize,
    stride: usize,
    padding: &Padding,
    before: usize,
    after: usize,
) -> Option<(usize, usize, usize)> {
    match padding {
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + span).saturating_sub(input);
            Some((out, total / 2, total - total / 2))
        }
        Padding::Valid => (span <= input).then(|| ((input - span) / stride + 1, 0, 0)),
        Padding::Explicit(_) => {
            let padded = input + before + after;
            (span <= padded).then(|| ((padded - span) / stride + 1, before, after))
        }
    }
}

/// Resolves a window's output size `(H', W')` and padding on an `(h, w)` input, or reports
/// why it does not fit (`what` names the window in the message: "kernel", "window").
#[allow(clippy::too_many_arguments)]
pub fn window(
    at: &At,
    errors: &Errors,
    (h, w): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: usize,
    padding: &Padding,
    what: &str,
) -> Option<(usize, usize, Pad4)> {
    let span = (dilation * (kernel.0 - 1) + 1, dilation * (kernel.1 - 1) + 1);
    let p = match padding {
        Padding::Explicit(p) => *p,
        _ => Pad4::default(),
    };
    let rows = axis(h, span.0, stride.0, padding, p.top, p.bottom);
    let cols = axis(w, span.1, stride.1, padding, p.left, p.right);
    match (rows, cols) {
        (Some((oh, top, bottom)), Some((ow, left, right))) => Some((
            oh,
            ow,
            Pad4 {
                top,
                bottom,
                left,
                right,
            },
        )),
        // Rule: the (dilated) window fits the padded input, so no dimension shrinks to zero.
        _ => {
            let dil = if dilation > 1 {
                format!(" (dilation {dilation} spans {}x{})", span.0, span.1)
            } else {
                String::new()
            };
            let (ph, pw) = (h + p.top + p.bottom, w + p.left + p.right);
            errors.push(
                at.arg("kernel"),
                format!(
                    "{} would shrink the spatial size to zero: its {}x{} {what}{dil} is larger than its {}x{} input{}; use a smaller {what}, `padding = same`, or fewer downsampling layers before it",
                    at.who,
                    kernel.0,
                    kernel.1,
                    ph,
                    pw,
                    if (ph, pw) != (h, w) { " (after padding)" } else { "" }
                ),
            );
            None
        }
    }
}
