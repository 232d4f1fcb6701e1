use convnet::prelude::*;

convnet! {
    block stage(filters, convs = 2) {
        for i in 1..=convs { conv2d(filters, 3, padding = same), relu }
    }

    pub Net(3, 32, 32) {
        stage(filter = 16),
    }
}

fn main() {}
