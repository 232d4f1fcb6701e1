//! Tensor operations candle lacks or does slowly: depthwise convolution and padded,
//! overlapping pooling.
//!
//! Every op takes and returns NCHW candle tensors. Padding is explicit (top, bottom, left,
//! right) so TensorFlow's asymmetric "same" padding is expressible.

mod composite;

pub use composite::{avg_pool2d, depthwise_conv2d, max_pool2d, pad2d_with};

/// Explicit spatial padding of a 2-d op: rows added at the top and bottom, columns at the left
/// and right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Pad2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad2d {
    /// No padding.
    pub const ZERO: Pad2d = Pad2d {
        top: 0,
        bottom: 0,
        left: 0,
        right: 0,
    };

    /// The same padding on every side.
    pub const fn uniform(p: usize) -> Self {
        Pad2d {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// `ph` rows above and below, `pw` columns left and right.
    pub const fn symmetric(ph: usize, pw: usize) -> Self {
        Pad2d {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }

    /// True when no side is padded.
    pub const fn is_zero(&self) -> bool {
        self.top == 0 && self.bottom == 0 && self.left == 0 && self.right == 0
    }

    /// `Some(p)` when all four sides are padded by the same `p`.
    pub const fn as_uniform(&self) -> Option<usize> {
        if self.top == self.bottom && self.top == self.left && self.top == self.right {
            Some(self.top)
        } else {
            None
        }
    }
}

/// Window geometry of a 2-d sliding-window op (convolution or pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Window height and width.
    pub kernel: (usize, usize),
    /// Step between windows, vertical and horizontal.
    pub stride: (usize, usize),
    /// Spacing between window taps (1 = dense).
    pub dilation: (usize, usize),
    /// Explicit padding.
    pub pad: Pad2d,
}

impl Window2d {
    /// A dense window of `kernel` with `stride` and `pad`.
    pub const fn new(kernel: (usize, usize), stride: (usize, usize), pad: Pad2d) -> Self {
        Window2d {
            kernel,
            stride,
            dilation: (1, 1),
            pad,
        }
    }

    /// Output height and width for an input of `h` x `w`, or `None` when the (dilated)
    /// window does not fit the padded input.
    pub const fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let eh = self.dilation.0 * (self.kernel.0 - 1) + 1;
        let ew = self.dilation.1 * (self.kernel.1 - 1) + 1;
        let ph = h + self.pad.top + self.pad.bottom;
        let pw = w + self.pad.left + self.pad.right;
        if eh > ph || ew > pw || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some(((ph - eh) / self.stride.0 + 1, (pw - ew) / self.stride.1 + 1))
    }
}
