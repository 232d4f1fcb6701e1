use convnet::prelude::*;

convnet! {
    block down(filters) { conv2d(filters, 3), up(filters) }
    block up(filters) { relu, down(filters) }

    pub Net(3, 32, 32) {
        down(16),
    }
}

fn main() {}
