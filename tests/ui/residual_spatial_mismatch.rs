use convnet::prelude::*;

convnet! {
    pub Net(32, 32, 32) {
        residual {
            conv2d(32, 3, padding = same), relu,
            max_pool2d(2),
        }
    }
}

fn main() {}
