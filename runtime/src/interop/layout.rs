//! Layout adaptation between frameworks' conventions for the same parameter.

use candle_core::{Result, Tensor};

fn squeezed(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Whether a tensor of shape `found` can stand for a variable of shape `expected`: the same
/// shape, or the same after removing unit dimensions (a linear layer's `[o, i]` and a 1x1
/// convolution's `[o, i, 1, 1]`; a layer scale's `(C)` and `(C, 1, 1)`).
pub fn compatible(found: &[usize], expected: &[usize]) -> bool {
    found == expected || squeezed(found) == squeezed(expected)
}

/// `t` in the layout of a variable of shape `expected`: as it is when the shapes are equal,
/// reshaped when they differ only by unit dimensions (see `compatible`); `None` when they
/// differ otherwise.
///
/// # Shapes
/// `t`: any shape compatible with `expected`; returns `expected`.
pub fn adapt(t: &Tensor, expected: &[usize]) -> Result<Option<Tensor>> {
    if t.dims() == expected {
        Ok(Some(t.clone()))
    } else if compatible(t.dims(), expected) {
        Ok(Some(t.reshape(expected)?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn unit_dimensions_are_adapted_and_other_shapes_are_not() {
        let conv = Tensor::arange(0f32, 6., &Device::Cpu)
            .unwrap()
            .reshape((3, 2, 1, 1))
            .unwrap();
        let linear = adapt(&conv, &[3, 2]).unwrap().unwrap();
        assert_eq!(linear.dims(), &[3, 2]);
        assert_eq!(
            linear.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 1., 2., 3., 4., 5.]
        );
        assert!(compatible(&[16, 1, 1], &[16]));
        assert!(
            !compatible(&[2, 3], &[3, 2]),
            "a transpose is not a reshape"
        );
        assert!(adapt(&conv, &[2, 3]).unwrap().is_none());
        assert!(adapt(&conv, &[6]).unwrap().is_none());
    }
}
