// A call in a layer argument is a function call: an unknown one is named as such.
use convnet::prelude::*;

convnet! {
    pub Net(8, 8, 8) {
        conv2d(round_to(in_channels * 3, 8), 1),
    }
}

fn main() {}
