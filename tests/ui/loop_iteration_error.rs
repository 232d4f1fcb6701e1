use convnet::prelude::*;

// A shape error found while inferring shapes names the iteration it happened in.
convnet! {
    pub Downsampling(3, 32, 32) {
        for (filters, stride) in [(16, 1), (32, 2), (64, 4)] {
            conv2d(filters, 3, stride = stride),
            max_pool2d(3),
        }
    }
}

// So does a bad value found while unrolling, in nested loops.
convnet! {
    pub Regularised(64) {
        for stage in 1..=2 {
            for rate in [0.25, 0.5 * stage] {
                dropout(rate),
            }
            linear(64),
        }
    }
}

fn main() {}
