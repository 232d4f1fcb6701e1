use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(32, 3),
        residual {
            conv2d(64, 3, padding = same), relu,
        }
    }
}

fn main() {}
