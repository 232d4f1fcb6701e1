//! Reading PyTorch's files: `torch.save` zip-pickles (`.pt`, `.pth`, `.bin`), flat or with the
//! state dict nested under a key, and safetensors.

use crate::error::Error;
use candle_core::pickle::{read_pth_tensor_info, PthTensors, TensorInfo};
use candle_core::{Device, Result, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Keys under which training checkpoints commonly nest the state dict, tried in this order
/// when the file's top level holds no tensors.
pub const STATE_DICT_KEYS: &[&str] = &[
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "model_ema",
];

/// The tensors of a weights file, in the file's order when it has one.
#[derive(Debug, Clone)]
pub struct SourceTensors {
    /// The file read.
    pub path: PathBuf,
    /// The key the state dict was nested under, if any.
    pub key: Option<String>,
    /// `(name, tensor)` in the file's order (on the CPU, in the file's dtype).
    pub tensors: Vec<(String, Tensor)>,
    /// Whether the order means anything: `torch.save` keeps the state dict's (registration)
    /// order; a safetensors file does not keep one (PyTorch's writer sorts by dtype and name).
    pub ordered: bool,
}

fn err(path: &Path, reason: impl Into<String>) -> candle_core::Error {
    Error::checkpoint(path, reason).into()
}

/// Reads a `torch.save` file or a safetensors file (told apart by content, not by name).
/// With `key`, the state dict is the entry `key` of the top-level dict; without, the top
/// level when it holds tensors, else the first of [`STATE_DICT_KEYS`] it has.
pub fn read_pytorch(path: impl AsRef<Path>, key: Option<&str>) -> Result<SourceTensors> {
    let path = path.as_ref();
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path)
        .map_err(|e| candle_core::Error::from(Error::io("open", path, e)))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| candle_core::Error::from(Error::io("read", path, e)))?;
    if n == 4 && &magic == b"PK\x03\x04" {
        read_pth(path, key)
    } else {
        if let Some(key) = key {
            return Err(err(
                path,
                format!("a safetensors file has no nested keys (asked for `{key}`)"),
            ));
        }
        read_safetensors(path)
    }
}

fn read_safetensors(path: &Path) -> Result<SourceTensors> {
    let map = crate::checkpoint::load_tensors(path)?;
    let mut tensors: Vec<(String, Tensor)> = map.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(SourceTensors {
        path: path.to_path_buf(),
        key: None,
        tensors,
        ordered: false,
    })
}

fn read_pth(path: &Path, key: Option<&str>) -> Result<SourceTensors> {
    // The tensors under `key`; `None` when the file has no such key.
    let infos = |key: Option<&str>| -> Result<Option<Vec<TensorInfo>>> {
        match read_pth_tensor_info(path, false, key) {
            Ok(t) => Ok(Some(t)),
            Err(e) if key.is_some() && e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(err(path, format!("not a readable torch.save file: {e}"))),
        }
    };
    let (key, infos) = match key {
        Some(k) => match infos(Some(k))? {
            Some(found) => (Some(k.to_string()), found),
            None => {
                return Err(err(
                    path,
                    format!("the file has no state dict under the key `{k}`"),
                ))
            }
        },
        None => {
            let mut found = None;
            for k in std::iter::once(None).chain(STATE_DICT_KEYS.iter().map(|k| Some(*k))) {
                match infos(k)? {
                    Some(t) if !t.is_empty() => {
                        found = Some((k.map(str::to_string), t));
                        break;
                    }
                    _ => {}
                }
            }
            found.ok_or_else(|| {
                err(
                    path,
                    format!(
                        "no tensors at the top level and no state dict under any of \
                         {STATE_DICT_KEYS:?}; name the key"
                    ),
                )
            })?
        }
    };
    // candle's unpickler reverses each batch of a dict's items; `torch.save` numbers the
    // storages (`data/0`, `data/1`, ...) as it meets them, in the dict's order: sort by that.
    let mut infos = infos;
    infos.sort_by_key(|info| {
        let storage = info
            .path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        (storage.unwrap_or(u64::MAX), info.layout.start_offset())
    });
    let lazy = PthTensors::new(path, key.as_deref())
        .map_err(|e| err(path, format!("not a readable torch.save file: {e}")))?;
    let mut tensors = Vec::with_capacity(infos.len());
    for info in &infos {
        let t = lazy
            .get(&info.name)
            .map_err(|e| err(path, format!("tensor `{}`: {e}", info.name)))?
            .ok_or_else(|| err(path, format!("tensor `{}` vanished", info.name)))?;
        tensors.push((info.name.clone(), t.to_device(&Device::Cpu)?));
    }
    Ok(SourceTensors {
        path: path.to_path_buf(),
        key,
        tensors,
        ordered: true,
    })
}
