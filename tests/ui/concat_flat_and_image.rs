use convnet::prelude::*;

convnet! {
    pub Net(16, 8, 8) {
        concat {
            identity,
            { global_avg_pool2d, linear(8) },
        }
    }

    pub Net2(16, 8, 8) {
        concat {
            global_avg_pool2d,
            { conv2d(8, 1) },
        }
    }
}

fn main() {}
