use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) {
        for i in 1..=4 {
            max_pool2d(2),
        }
    }
}

fn main() {}
