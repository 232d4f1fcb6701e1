"""Keras 3 reference for `tests/keras_import.rs`: the book's mini-Xception, trained briefly
in Keras, saved both ways, and its predictions.

Writes into `tests/fixtures/keras/`:
- `mini_xception.keras` (`model.save`), an unmodified Keras 3 file; the test writes out the
  `model.weights.h5` it holds, which is the format `model.save_weights` writes, rather than
  committing the same 3 MB twice;
- `every_kind.weights.h5`, `every_kind.keras` and `every_kind_io.safetensors` (`input`
  [2, 16, 16, 3] f32 NHWC, `outputs` [2, 5]): a small model with every layer class convnet
  loads (Conv2D, BatchNormalization, DepthwiseConv2D, LayerNormalization, SeparableConv2D,
  GroupNormalization, Conv2DTranspose, Flatten + Dense), trained for 3 epochs;
- `mini_xception_io.safetensors`: `input` [2, 180, 180, 3] (u8, NHWC, the images fed to
  Keras), `probabilities` [2, 1] (f32, Keras' `model.predict` in inference mode) and
  `logits` [2, 1] (f32, the last layer's input times its kernel plus bias, before the
  sigmoid).

The model is the book's (Deep Learning with Python, 2nd ed., listing 9.5, without the data
augmentation, which is the identity at inference), built in the order the book builds it, so
Keras names its layers `conv2d`, `conv2d_1`, ... as the book's would be. It is trained for a
few steps on random images (so the batch-norm moving statistics and every weight differ from
their initial values), then saved. Regenerate with (CPU only, about a minute):

    python3 -m venv /tmp/venv-keras
    /tmp/venv-keras/bin/pip install "keras>=3" "jax[cpu]" numpy safetensors
    KERAS_BACKEND=jax /tmp/venv-keras/bin/python scripts/keras_fixture.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "keras")


def mini_xception() -> keras.Model:
    inputs = keras.Input(shape=(180, 180, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(filters=32, kernel_size=5, use_bias=False)(x)
    for size in [32, 64, 128, 256, 512]:
        residual = x
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same", use_bias=False)(residual)
        x = layers.add([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def every_kind() -> keras.Model:
    """A small model with every Keras layer class convnet loads (its DSL twin is
    `KerasKinds` in `tests/keras_import.rs`)."""
    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = layers.LayerNormalization(epsilon=1e-3)(x)
    x = layers.SeparableConv2D(12, 3, strides=2, padding="same")(x)
    x = layers.GroupNormalization(groups=4, epsilon=1e-3)(x)
    x = layers.Conv2DTranspose(6, 2, strides=2)(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(5)(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def save_every_kind(rng) -> None:
    model = every_kind()
    model.compile(optimizer="adam", loss="mse")
    x_train = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    y_train = rng.normal(size=(64, 5)).astype("float32")
    model.fit(x_train, y_train, batch_size=16, epochs=3, verbose=0)
    model.save_weights(os.path.join(OUT, "every_kind.weights.h5"))
    model.save(os.path.join(OUT, "every_kind.keras"))
    x = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    outputs = model.predict(x, verbose=0).astype("float32")
    save_file({"input": x, "outputs": outputs}, os.path.join(OUT, "every_kind_io.safetensors"))
    print("every_kind outputs", outputs.ravel().tolist())


def main() -> None:
    keras.utils.set_random_seed(1337)
    model = mini_xception()
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1337)
    x_train = rng.integers(0, 256, size=(32, 180, 180, 3)).astype("float32")
    y_train = rng.integers(0, 2, size=(32, 1)).astype("float32")
    model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0)

    # The trained weights in an uncompiled copy, so the files hold the model's weights
    # without the optimizer's (half the size); they are still Keras' own files.
    trained = mini_xception()
    trained.set_weights(model.get_weights())
    # Two short epochs leave the head near zero (logits about 0.01): a head drawn from
    # N(0, 1) makes the logits of order 1, so that a 1e-4 comparison sees every layer.
    trained.layers[-1].set_weights(
        [rng.normal(size=(512, 1)).astype("float32"), np.array([0.1], dtype="float32")]
    )
    os.makedirs(OUT, exist_ok=True)
    trained.save(os.path.join(OUT, "mini_xception.keras"))

    images = rng.integers(0, 256, size=(2, 180, 180, 3)).astype("uint8")
    x = images.astype("float32")
    probabilities = trained.predict(x, verbose=0).astype("float32")
    # The logits before the sigmoid, from the features the last layer sees (float64 head).
    features = keras.Model(trained.inputs, trained.layers[-2].output).predict(x, verbose=0)
    kernel, bias = trained.layers[-1].get_weights()
    logits = (features.astype("float64") @ kernel.astype("float64") + bias).astype("float32")
    save_file(
        {"input": images, "probabilities": probabilities, "logits": logits},
        os.path.join(OUT, "mini_xception_io.safetensors"),
    )
    print("logits", logits.ravel().tolist())
    print("probabilities", probabilities.ravel().tolist())
    moving = [w for w in model.weights if "moving_variance" in w.path]
    print("a moving variance after training:", float(np.asarray(moving[0].value).ravel()[0]))
    save_every_kind(rng)


if __name__ == "__main__":
    main()
