use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        mixed: concat {
            { conv2d(8, 1) },
            { conv2d(8, 3, stride = 2) },
        }
    }
}

fn main() {}
