use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        for (filters, stride) in [(16, 1), (32, 2, 1)] {
            conv2d(filters, 3, stride = stride),
        }
    }
}

fn main() {}
