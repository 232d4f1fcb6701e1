use convnet::prelude::*;

convnet! {
    pub Stem(3, 32, 32) -> (16, 16, 16) {
        conv2d(16, 3, stride = 2, padding = same), relu,
    }
}

convnet! {
    pub Net(3, 64, 64) -> (10) {
        model(Stem, output = (16, 16, 16)),
        global_avg_pool2d,
        linear(10),
    }
}

fn main() {}
