"""A convolutional network on scikit-learn's bundled handwritten digits (8x8 images, 10 classes) with
graphc.nn: >= 97% accuracy on held-out digits.  Needs scikit-learn (``pip install -e ".[examples]"``).

Images are NCHW in graphc: ``(samples, 1, 8, 8)``.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphc.nn as nn

digits = load_digits()
x = (digits.images / 16.0).astype("float32")[:, None, :, :]  # (1797, 1, 8, 8)
y = digits.target.astype("int64")
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

nn.set_random_seed(0)
model = nn.Sequential([
    nn.Input((1, 8, 8)),
    nn.Conv2D(32, 3, padding="same", activation="relu"),
    nn.Conv2D(32, 3, padding="same", activation="relu"),
    nn.MaxPool2D(2),
    nn.Dropout(0.25),
    nn.Flatten(),
    nn.Dense(128, activation="relu"),
    nn.Dropout(0.3),
    nn.Dense(10, activation="softmax"),
])
model.compile(optimizer=nn.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

model.fit(x_train, y_train, epochs=25, batch_size=32, validation_split=0.1, verbose=2)

loss, accuracy = model.evaluate(x_test, y_test)
predicted = np.argmax(model.predict(x_test), axis=1)
print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f} on {len(y_test)} digits")
assert abs(accuracy - np.mean(predicted == y_test)) < 1e-6
assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} < 0.97"
