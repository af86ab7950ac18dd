"""The classic Keras example, with only the imports changed: a Sequential stack of Dense layers
500 -> 50 -> 500 trained with SGD on mean squared error, ``fit(x, y, epochs=50, batch_size=64)``.

The Keras original imports ``from keras.models import Sequential``, ``from keras.layers import Dense,
Activation`` and ``from keras.optimizers import SGD``; every other line is the same.
"""

import numpy as np

from graphc.nn.layers import Activation, Dense
from graphc.nn.models import Sequential
from graphc.nn.optimizers import SGD

# data with a 20-dimensional structure that a 50-unit bottleneck can learn to reproduce
rng = np.random.default_rng(0)
x = (rng.normal(size=(1024, 20)) @ rng.normal(size=(20, 500)) / 20).astype("float32")
y = x

model = Sequential()
model.add(Dense(50, input_dim=500))
model.add(Activation("tanh"))
model.add(Dense(500))

sgd = SGD(learning_rate=0.1, momentum=0.9)
model.compile(loss="mean_squared_error", optimizer=sgd)
history = model.fit(x, y, epochs=50, batch_size=64, verbose=2)
model.summary()

first, last = history.history["loss"][0], history.history["loss"][-1]
mse = float(np.mean((model.predict(x) - y) ** 2))
print(f"loss {first:.4f} -> {last:.4f}; reconstruction mse {mse:.4f} of variance {float(np.var(y)):.4f}")
assert abs(mse - model.evaluate(x, y)) < 1e-4 * max(mse, 1e-3)
assert last < 0.3 * first and mse < 0.35 * np.var(y), "training did not learn the reconstruction"
