use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) -> (10) {
        conv2d(8, 3) relu,
        global_avg_pool2d,
        linear(10),
    }
}

fn main() {
    let _ = Net::TOTAL_PARAMS;
    let _ = Net::summary;
}
