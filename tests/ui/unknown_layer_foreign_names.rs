use convnet::prelude::*;

// PyTorch and Keras names, and a misspelling: each gets what this DSL writes.
convnet! {
    pub Net(3, 32, 32) {
        Conv2d(16, 3),
        BatchNorm2d,
        ReLU,
        maxpool2d(2),
        adaptive_avg_pool2d(1),
        Flatten,
        Dense(10),
    }
}

fn main() {}
