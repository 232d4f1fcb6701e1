use convnet::prelude::*;

convnet! {
    block unit(c, stride = 1) {
        if stride { conv2d(c, 3, stride = stride, padding = same) } else { conv2d(c, 1) }
    }

    pub Net(8, 8, 8) {
        unit(16, stride = 2),
    }
}

fn main() {}
