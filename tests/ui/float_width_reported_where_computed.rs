// A float reaching an integer argument through a block parameter is reported at the
// caller's expression that made it, with the fix.
use convnet::prelude::*;

convnet! {
    block se(squeeze, channels = in_channels) {
        multiply { identity, { global_avg_pool2d(keepdims = true), conv2d(squeeze, 1), relu, conv2d(channels, 1), sigmoid } }
    }

    pub Net(16, 8, 8) {
        se(in_channels * 0.25),
    }
}

fn main() {}
