use convnet::prelude::*;

convnet! {
    block relu(alpha) { leaky_relu(alpha) }
    block stage(filters) { conv2d(filters, 3) }
    block stage(filters) { conv2d(filters, 1) }

    pub Net(3, 32, 32) {
        stage(16),
    }
}

fn main() {}
