use convnet::prelude::*;

mod nets {
    use convnet::prelude::*;

    convnet! {
        pub Stem(3, 32, 32) -> (16, 16, 16) {
            conv2d(16, 3, stride = 2, padding = same), relu,
        }
    }
}

convnet! {
    pub Net(3, 32, 32) -> (10) {
        model(nets::Stem),
        global_avg_pool2d,
        linear(10),
    }
}

fn main() {}
