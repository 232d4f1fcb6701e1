use convnet::prelude::*;

convnet! {
    pub Net(8, 8, 8) {
        conv_transpose2d(4, 3, stride = 2, output_padding = 2),
    }
}

fn main() {}
