use convnet::prelude::*;

// A ResNet downsampling block written without its projection: `identity` cannot take a
// stride or `padding = same`, so the fixes name a projection or the other branch.
convnet! {
    pub Net(32, 8, 8) {
        add {
            { conv2d(64, 3, stride = 2, padding = 1), relu, conv2d(64, 3, padding = 1) },
            identity,
        }
    }

    pub Net2(32, 8, 8) {
        add {
            identity,
            { conv2d(128, 3, stride = 2, padding = 1) },
        }
    }
}

fn main() {}
