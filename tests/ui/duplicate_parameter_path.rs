use convnet::prelude::*;

convnet! {
    /// The residual opens no scope, so its `conv1` meets the block's own.
    block basic(c) {
        conv1: conv2d(c, 3, padding = 1),
        _: residual { conv1: conv2d(c, 3, padding = 1), relu },
    }

    pub Net(8, 16, 16) {
        layer1: sequential { basic(8) },
    }
}

fn main() {}
