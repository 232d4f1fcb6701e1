// A duplicate label is one error: a skip to it (which could mean either layer) adds none.
use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        down: conv2d(8, 3, padding = same),
        max_pool2d(2),
        down: conv2d(16, 3, padding = same),
        max_pool2d(2),
        concat { identity, @down }
    }
}

fn main() {}
