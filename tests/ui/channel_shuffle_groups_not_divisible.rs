use convnet::prelude::*;

convnet! {
    pub Net(12, 6, 6) {
        channel_shuffle(5),
    }
}

fn main() {}
