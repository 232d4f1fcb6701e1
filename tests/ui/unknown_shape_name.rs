use convnet::prelude::*;

convnet! {
    block inverted(expand) {
        residual {
            conv2d(in_chanels * expand, 1), relu6,
            depthwise_conv2d(3, padding = same),
            conv2d(in_channels / expand, 1),
        }
    }

    pub Net(8, 6, 6) {
        inverted(6),
    }

    pub Head(8, 6, 6) {
        flatten,
        linear(in_height),
    }
}

fn main() {}
