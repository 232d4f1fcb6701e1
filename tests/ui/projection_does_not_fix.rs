use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(32, 3),
        residual(project = conv2d(64, 1)) {
            conv2d(64, 3, padding = same), relu,
            max_pool2d(2, padding = same),
        }
    }
}

fn main() {}
