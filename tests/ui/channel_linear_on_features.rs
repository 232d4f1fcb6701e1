use convnet::prelude::*;

convnet! {
    pub Net(8, 6, 6) {
        global_avg_pool2d,
        channel_linear(16),
    }
}

fn main() {}
