use convnet::prelude::*;

convnet! {
    pub Net(8, 10, 10) {
        residual(project = auto) {
            conv2d(16, 3), conv2d(16, 3),
        }
    }
}

fn main() {}
