"""An LSTM sequence classifier with graphc.nn: which of three waveforms (sine, square, sawtooth), at a
random frequency and phase and with noise, a sequence of 32 samples is.  The LSTM runs as one compiled
loop (``gc.scan``) inside the training step; back-propagation through time is its gradient.
"""

import numpy as np

import graphc.nn as nn

rng = np.random.default_rng(0)
n, steps = 1500, 32
kinds = rng.integers(0, 3, n)
t = np.arange(steps)[None, :] * rng.uniform(0.15, 0.45, (n, 1)) + rng.uniform(0, 2 * np.pi, (n, 1))
waves = np.stack([np.sin(t), np.sign(np.sin(t)), (t / np.pi) % 2 - 1])  # (3, n, steps)
x = waves[kinds, np.arange(n)] + 0.2 * rng.normal(size=(n, steps))
x = x[:, :, None].astype("float32")  # (batch, time, features)
y = kinds.astype("int64")
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]

nn.set_random_seed(0)
model = nn.Sequential([
    nn.Input((steps, 1)),
    nn.LSTM(32),
    nn.Dense(3, activation="softmax"),
])
model.compile(optimizer=nn.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=12, batch_size=32, validation_split=0.1, verbose=2)

loss, accuracy = model.evaluate(x_test, y_test)
print(f"test accuracy {accuracy:.4f} on {len(y_test)} sequences")
assert accuracy >= 0.9, f"test accuracy {accuracy:.4f} < 0.9"
