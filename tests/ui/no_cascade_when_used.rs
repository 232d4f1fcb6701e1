use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) -> (10) {
        conv2d(8, 3),
        linear(10),
    }
}

fn main() -> candle_core::Result<()> {
    let varmap = VarMap::new();
    let model = Net::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let x = Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu)?;
    let _ = model.forward_t(&x, false)?;
    println!("{} {}", Net::summary(), Net::TOTAL_PARAMS);
    Ok(())
}
