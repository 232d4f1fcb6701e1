use convnet::prelude::*;

convnet! {
    pub Net(8, 6, 6) {
        concat {
            channel_slice(0, 4),
            { channel_slice(4, 12), conv2d(4, 1) },
        }
    }
}

fn main() {}
